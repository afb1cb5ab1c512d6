package jobs

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Guests: each VM and nspawn container of a repo goes into archives of its
// own (vm:NAME:TIME, container:NAME:TIME), created and pruned on their own,
// so one guest's trouble is that guest's section of the mail and row of
// the dashboard, and its restore is one archive.

// guestNight is what the guests of one repo left tonight.
type guestNight struct {
	secs  []alert.Section
	stats []state.GuestStats
	// created are tonight's new archives; kept and pruned what the
	// guests' prunes said, with the earlier archives of a guest whose
	// create failed (not pruned tonight) counted as kept.
	created, kept, pruned []string
	failed                bool
}

// backupGuests backs up every guest of repo r; prev is the repo's record
// from the last night (nil: none).
func (e *Env) backupGuests(ctx context.Context, r *config.Repo, prev *state.RepoRecord) guestNight {
	var n guestNight
	for _, g := range r.Guests() {
		sec, gs, kept, pruned := e.backupGuest(ctx, r, g)
		n.secs = append(n.secs, sec...)
		n.stats = append(n.stats, gs)
		if gs.Archive != "" {
			n.created = append(n.created, gs.Archive)
		}
		if gs.Status == "failed" {
			n.failed = true
			if kept == nil && prev != nil {
				// Not pruned tonight: its archives stay as they were.
				for _, a := range prev.Archives {
					if strings.HasPrefix(a, g.ArchivePrefix()) {
						kept = append(kept, a)
					}
				}
			}
		}
		n.kept, n.pruned = append(n.kept, kept...), append(n.pruned, pruned...)
	}
	return n
}

// guestSection names a guest's section of the mail, as the seed does.
func guestSection(g config.Guest) string {
	if g.Kind == config.GuestVM {
		return "VM backup: " + g.Name
	}
	return "Container backup: " + g.Name
}

// backupGuest creates guest g's archive and prunes its archives.
func (e *Env) backupGuest(ctx context.Context, r *config.Repo, g config.Guest) (secs []alert.Section, gs state.GuestStats, kept, pruned []string) {
	gs = state.GuestStats{Kind: g.Kind, Name: g.Name, Status: "ok"}
	name := guestSection(g)
	t0 := e.Now()
	fail := func(res host.Result, err error) ([]alert.Section, state.GuestStats, []string, []string) {
		gs.Status, gs.Duration = "failed", e.Now().Sub(t0)
		out := failureText(res, err)
		gs.Problem = firstLine(out)
		return append(secs, alert.Section{Name: name, Status: alert.StatusFailed, ExitCode: exitCode(res, err), Output: out}), gs, nil, nil
	}
	sources, res, err := e.guestSources(ctx, g)
	if err != nil {
		return fail(res, err)
	}
	args := []string{"create", "--stats", "--json", "--compression", r.CompressionSpec(),
		r.BorgLocation() + "::" + g.ArchivePrefix() + "{now:%Y-%m-%dT%H:%M:%S}"}
	res, err = e.borg(ctx, r, append(args, sources...)...)
	sec := alert.Section{Name: name, Status: alert.StatusOK}
	switch {
	case err == nil:
	case res.ExitCode == 1: // borg: warning, the archive was written
		// A running VM's disk changes while borg reads it (the seed's
		// openclaw): that guest's warning, not a failed night.
		sec.Status, sec.ExitCode, sec.Output = alert.StatusWarning, 1, tailText(res.Stderr, 12)
		gs.Status, gs.Problem = "warning", firstLine(sec.Output)
	default:
		return fail(res, err)
	}
	var rs state.RepoStats
	parseCreate(res.Stdout, &rs)
	gs.Archive, gs.LastBackup = rs.Archive, rs.LastBackup

	res, err = e.borg(ctx, r, append(pruneArgs(g.ArchivePrefix(), e.Cfg.RepoRetention(e.Host, r)), r.BorgLocation())...)
	if err != nil {
		gs.Duration = e.Now().Sub(t0)
		sec.Duration = gs.Duration
		secs = append(secs, sec, alert.Section{Name: "Retention: " + g.Kind + " " + g.Name, Status: alert.StatusFailed,
			ExitCode: exitCode(res, err), Output: strings.TrimSpace(tailText(res.Stderr, 8) + "\n" + errText(res, err))})
		// Its archives stay as they were, tonight's with them.
		return secs, gs, nil, nil
	}
	kept, pruned = pruneLists(res.Stderr)
	gs.Archives = len(kept)
	gs.Duration = e.Now().Sub(t0)
	sec.Duration = gs.Duration
	return append(secs, sec), gs, kept, pruned
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// guestSources are the paths guest g's archive holds: for a VM its saved
// definition and its file-backed disks, for a container its directory or
// raw image and its .nspawn settings when it has them.
func (e *Env) guestSources(ctx context.Context, g config.Guest) ([]string, host.Result, error) {
	if g.Kind == config.GuestContainer {
		return e.containerSources(g.Name)
	}
	res, err := e.run(ctx, host.Command(tools.Virsh, "dumpxml", g.Name))
	if err != nil {
		return nil, res, fmt.Errorf("virsh dumpxml %s: the domain is not defined here or libvirt cannot be reached", g.Name)
	}
	disks, err := domainDisks(res.Stdout)
	if err != nil {
		return nil, host.Result{}, fmt.Errorf("virsh dumpxml %s: %w", g.Name, err)
	}
	if err := os.MkdirAll(e.VMXMLDir, 0o700); err != nil {
		return nil, host.Result{}, err
	}
	xmlPath := filepath.Join(e.VMXMLDir, g.Name+".xml")
	if err := writeIfChanged(xmlPath, res.Stdout); err != nil {
		return nil, host.Result{}, err
	}
	sources := []string{xmlPath}
	for _, d := range disks {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, host.Result{}, fmt.Errorf("disk of VM %s: %w", g.Name, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, host.Result{}, fmt.Errorf("disk %s of VM %s is not a regular file", d, g.Name)
		}
		sources = append(sources, d)
	}
	return sources, host.Result{}, nil
}

// writeIfChanged keeps an unchanged definition's file as it is, so borg's
// files cache and the restore test see the same file night after night.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// domainDisks are the image files of a domain's disks (type='file'; a
// block device or network disk is not a file borg can take from here).
func domainDisks(domXML []byte) ([]string, error) {
	var dom struct {
		Disks []struct {
			Type   string `xml:"type,attr"`
			Device string `xml:"device,attr"`
			Source struct {
				File string `xml:"file,attr"`
			} `xml:"source"`
		} `xml:"devices>disk"`
	}
	if err := xml.Unmarshal(domXML, &dom); err != nil {
		return nil, fmt.Errorf("reading the domain XML: %w", err)
	}
	var files []string
	for _, d := range dom.Disks {
		if d.Type == "file" && d.Device != "cdrom" && d.Device != "floppy" && d.Source.File != "" && !slices.Contains(files, d.Source.File) {
			files = append(files, d.Source.File)
		}
	}
	return files, nil
}

// containerSources finds machine name under the machines directory, as
// machinectl does: a directory NAME or a raw image NAME.raw.
func (e *Env) containerSources(name string) ([]string, host.Result, error) {
	var sources []string
	for _, p := range []string{filepath.Join(e.MachinesDir, name), filepath.Join(e.MachinesDir, name+".raw")} {
		if fi, err := os.Lstat(p); err == nil && (fi.IsDir() || fi.Mode().IsRegular()) {
			sources = append(sources, p)
			break
		}
	}
	if len(sources) == 0 {
		return nil, host.Result{}, fmt.Errorf("container %s: neither %s nor %s.raw exists", name,
			filepath.Join(e.MachinesDir, name), filepath.Join(e.MachinesDir, name))
	}
	if p := filepath.Join(e.NspawnDir, name+".nspawn"); fileExists(p) {
		sources = append(sources, p)
	}
	return sources, host.Result{}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// cleanVMXML removes the saved definitions of domains that are gone: in
// no repo of this host and no longer defined in libvirt. A domain libvirt
// still has, or one the config still names (its backup fails and says so;
// its last definition is what would bring it back), keeps its file. When
// libvirt cannot be asked, nothing is removed.
func (e *Env) cleanVMXML(ctx context.Context) {
	ents, err := os.ReadDir(e.VMXMLDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			e.logf("VM definitions: %v", err)
		}
		return
	}
	configured := map[string]bool{}
	for _, r := range e.Host.Repos {
		for _, vm := range r.VMs {
			configured[vm] = true
		}
	}
	var stale []string
	for _, de := range ents {
		vm, ok := strings.CutSuffix(de.Name(), ".xml")
		if ok && de.Type().IsRegular() && !configured[vm] {
			stale = append(stale, vm)
		}
	}
	if len(stale) == 0 {
		return
	}
	res, err := e.run(ctx, host.Command(tools.Virsh, "list", "--all", "--name"))
	if err != nil {
		e.logf("VM definitions: not cleaned up, libvirt cannot be asked which domains exist: %s", strings.TrimSpace(tailText(res.Stderr, 2)+errText(res, err)))
		return
	}
	defined := strings.Fields(string(res.Stdout))
	for _, vm := range stale {
		if slices.Contains(defined, vm) {
			continue
		}
		if err := os.Remove(filepath.Join(e.VMXMLDir, vm+".xml")); err != nil {
			e.logf("VM definitions: %v", err)
			continue
		}
		e.logf("VM definitions: removed %s.xml (domain %s is no longer defined nor configured; its archives keep it)", vm, vm)
	}
}
