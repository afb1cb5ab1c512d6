package jobs

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// The archive host's own jobs (the second seed): ZFS scrubs, SMART self
// tests and the syncoid pull from the live server. Each mails only when it
// found a problem, like the others.

// pools are the ZFS pools holding the host's datasets.
func pools(h *config.Host) []string {
	var out []string
	for _, d := range h.Datasets {
		p, _, _ := strings.Cut(d.Name, "/")
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Scrub starts a scrub of every pool and reports pools that are not
// healthy now (`zpool status -x` names only those); the scrub's own result
// shows in the next run's status.
func Scrub(ctx context.Context, e *Env) error {
	return e.archiveJob(ctx, layout.JobScrub, func(ctx context.Context) []alert.Section {
		var secs []alert.Section
		for _, p := range pools(e.Host) {
			res, err := e.run(ctx, host.Command(tools.Zpool, "status", "-x", p))
			out := strings.TrimSpace(string(res.Stdout))
			if err != nil || !strings.Contains(out, "is healthy") {
				secs = append(secs, section("Pool "+p+" health", res, err, out))
				continue
			}
			res, err = e.run(ctx, host.Command(tools.Zpool, "scrub", p))
			secs = append(secs, section("Scrub of "+p, res, err, ""))
		}
		return secs
	})
}

// SmartTest starts a SMART self test (short or long) on every disk smartctl
// finds, and reports disks whose overall health assessment fails.
func SmartTest(ctx context.Context, e *Env, long bool) error {
	job, kind := layout.JobSmartShort, "short"
	if long {
		job, kind = layout.JobSmartLong, "long"
	}
	return e.archiveJob(ctx, job, func(ctx context.Context) []alert.Section {
		res, err := e.run(ctx, host.Command(tools.Smartctl, "--scan"))
		if err != nil {
			return []alert.Section{section("smartctl --scan", res, err, "")}
		}
		var secs []alert.Section
		for _, line := range strings.Split(string(res.Stdout), "\n") {
			dev, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			if !strings.HasPrefix(dev, "/dev/") {
				continue
			}
			hres, herr := e.run(ctx, host.Command(tools.Smartctl, "-H", dev))
			if herr != nil || !strings.Contains(string(hres.Stdout), "PASSED") {
				secs = append(secs, section("SMART health of "+dev, hres, herr, tailText(hres.Stdout, 12)))
				continue
			}
			tres, terr := e.run(ctx, host.Command(tools.Smartctl, "-t", kind, dev))
			secs = append(secs, section("SMART "+kind+" test of "+dev, tres, terr, ""))
		}
		return secs
	})
}

// Pull replicates the live server's dataset with syncoid through the
// host's own key (never an agent or a password prompt).
func Pull(ctx context.Context, e *Env, identity string) error {
	return e.archiveJob(ctx, layout.JobPull, func(ctx context.Context) []alert.Section {
		p := e.Host.Pull
		if p == nil {
			return []alert.Section{{Name: "syncoid", Status: alert.StatusFailed, ExitCode: 1, Output: "no pull: block for " + e.Host.Name}}
		}
		src := p.UserOrDefault() + "@" + e.Cfg.PullAddress(e.Host) + ":" + p.Source
		res, err := e.run(ctx, host.Command(tools.Syncoid, append(pullArgs(e.Cfg, e.Host, identity), src, p.Target)...))
		return []alert.Section{section("syncoid "+src+" -> "+p.Target, res, err, "")}
	})
}

// pullArgs keep syncoid's side on the live server to reads and sends of
// the pulled dataset, which is all the pull guard there allows:
//
//	--no-sync-snap     replicate the newest snapshot the live server made
//	                   itself (sanoid), instead of creating and destroying
//	                   syncoid_* snapshots there
//	--no-resume        no zpool feature probe, no `zfs send -t TOKEN`; an
//	                   interrupted pull starts again from the last common
//	                   snapshot
//	--compress=none    no compressor in the remote pipeline (the stream
//	                   crosses the tailnet, already encrypted)
//	--no-privilege-elevation  never sudo: the pull logs in as root
//
// mbuffer on the source is left out because the guard answers syncoid's
// `command -v mbuffer` with "absent". BatchMode makes an unknown host key
// or a refused key fail at once instead of waiting for a prompt.
func pullArgs(cfg *config.Config, h *config.Host, identity string) []string {
	args := []string{"--no-sync-snap", "--no-resume", "--compress=none", "--no-privilege-elevation",
		"--sshkey", identity, "--sshoption=BatchMode=yes"}
	if port := cfg.PullPort(h); port != config.DefaultSSHPort {
		args = append(args, "--sshport", strconv.Itoa(port))
	}
	return args
}

// snapshotSources takes the ZFS snapshot repo r archives from and maps
// sources under the dataset's mountpoint to paths relative to the frozen
// copy under MOUNTPOINT/.zfs/snapshot, where borg create is run, so the
// archive holds the dataset's own layout. destroy removes exactly that
// snapshot; the caller runs it whatever borg did.
func (e *Env) snapshotSources(ctx context.Context, r *config.Repo, sources []string) (rel []string, dir string, destroy func(), sec *alert.Section) {
	snap := r.Snapshot + "@" + layout.NightlySnapshot
	destroy = func() {}
	failed := func(res host.Result, err error, why string) *alert.Section {
		return &alert.Section{Name: "ZFS snapshot " + snap, Status: alert.StatusFailed, ExitCode: exitCode(res, err),
			Output: strings.TrimSpace(why + "\n" + tailText(res.Stderr, 6))}
	}
	// The mountpoint property, not /DATASET: a dataset may be mounted
	// anywhere, and its snapshots are only reachable below where it is.
	res, err := e.run(ctx, host.Command(tools.Zfs, "get", "-H", "-p", "-o", "value", "mountpoint", r.Snapshot))
	root := strings.TrimSpace(string(res.Stdout))
	if err != nil {
		return nil, "", destroy, failed(res, err, "")
	}
	if !filepath.IsAbs(root) {
		return nil, "", destroy, failed(res, nil, fmt.Sprintf("%s has mountpoint=%s: its snapshots are read under MOUNTPOINT/.zfs/snapshot, so it needs a mountpoint", r.Snapshot, root))
	}
	// A snapshot left by a killed run would make zfs snapshot fail.
	e.run(ctx, host.Command(tools.Zfs, "destroy", snap))
	res, err = e.run(ctx, host.Command(tools.Zfs, "snapshot", snap))
	if err != nil {
		return nil, "", destroy, failed(res, err, "")
	}
	destroy = func() { e.run(context.WithoutCancel(ctx), host.Command(tools.Zfs, "destroy", snap)) }
	for _, s := range sources {
		p, err := filepath.Rel(root, s)
		if err != nil || p == ".." || strings.HasPrefix(p, "../") {
			// Not on the dataset (the VM definitions): read live.
			rel = append(rel, s)
			continue
		}
		rel = append(rel, p)
	}
	return rel, filepath.Join(root, ".zfs", "snapshot", layout.NightlySnapshot), destroy, nil
}

// section is one step's result for the mail and the record.
func section(name string, res host.Result, err error, why string) alert.Section {
	if err == nil && why == "" {
		return alert.Section{Name: name, Status: alert.StatusOK}
	}
	out := strings.TrimSpace(why + "\n" + tailText(append(res.Stderr, res.Stdout...), 12))
	return alert.Section{Name: name, Status: alert.StatusFailed, ExitCode: exitCode(res, err), Output: out}
}

// archiveJob runs fn's sections as one job: a record, and one mail listing
// every section when any failed.
func (e *Env) archiveJob(ctx context.Context, job string, fn func(context.Context) []alert.Section) error {
	run, ctx, stop, err := e.Begin(ctx, job)
	if err != nil {
		return err
	}
	defer stop()
	started := e.Now()
	secs := fn(ctx)
	failed := 0
	for _, s := range secs {
		if s.Status == alert.StatusFailed {
			failed++
		}
	}
	if failed == 0 {
		return run.Finish(state.OK, 0, fmt.Sprintf("%d steps ok", len(secs)), nil, e.logged())
	}
	title := strings.ToUpper(strings.ReplaceAll(job, "_", " ")) + " FAILED"
	e.Mail(ctx, alert.JobFailed(title, started, secs, e.LogPath))
	if err := run.Finish(state.Failed, 1, fmt.Sprintf("%d of %d steps failed", failed, len(secs)), nil, e.logged()); err != nil {
		return err
	}
	return fmt.Errorf("%s: %d steps failed", job, failed)
}
