package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// preflightError stops the nightly run before any borg command: the
// backup would be wrong (an empty mountpoint) or land in the wrong place.
type preflightError struct{ reason string }

func (p *preflightError) Error() string { return p.reason }

// Nightly backs up every repo of the host: preflight, then per repo the VM
// definitions, a ZFS snapshot where configured, borg create, prune and
// compact; one mail when anything failed, none when all is well.
func Nightly(ctx context.Context, e *Env) error {
	run, ctx, stop, err := e.Begin(ctx, layout.JobNightly)
	if err != nil {
		return err
	}
	defer stop()
	started := e.Now()
	lock, err := state.LockContext(ctx, e.LockPath, e.LockWait)
	if err != nil {
		return e.abort(ctx, run, started, fmt.Sprintf("cannot take the borg lock: %v", err))
	}
	defer lock.Unlock()

	if err := e.preflight(ctx); err != nil {
		return e.abort(ctx, run, started, err.Error())
	}
	var (
		sections []alert.Section
		stats    state.NightlyStats
		worst    = state.OK
	)
	for i := range e.Host.Repos {
		r := &e.Host.Repos[i]
		secs, rs := e.backupRepo(ctx, r)
		sections = append(sections, secs...)
		stats.Repos = append(stats.Repos, rs)
		for _, s := range secs {
			switch s.Status {
			case alert.StatusFailed:
				worst = state.Failed
			case alert.StatusWarning:
				if worst == state.OK {
					worst = state.Warning
				}
			}
		}
	}
	if d := e.Host.BackupDisk(); d != nil {
		if u, err := e.Usage(d.Mountpoint); err == nil {
			u.UUID, u.Mounted = d.UUID, true
			stats.Disk = u
			if u.Percent >= e.Host.DiskWarnPercent() {
				e.Mail(ctx, alert.DiskSpaceWarning(d.Mountpoint, u.Percent, u.Used, u.Size))
			}
		}
	}
	code := 0
	msg := fmt.Sprintf("%d repos backed up", len(stats.Repos))
	if worst != state.OK {
		code = 1
		if worst == state.Warning {
			code = 0
		}
		msg = "some sections did not end well"
		e.Mail(ctx, alert.NightlyFailed(alert.NightlyReport{ExitCode: 1, Started: started, Finished: e.Now(), Sections: sections, LogPath: e.LogPath}))
	}
	if err := run.Finish(worst, code, msg, stats, nil); err != nil {
		return err
	}
	if worst == state.Failed {
		return fmt.Errorf("nightly: %s", msg)
	}
	return nil
}

func (e *Env) abort(ctx context.Context, run *state.Run, started time.Time, reason string) error {
	e.logf("ABORTED: %s", reason)
	e.Mail(ctx, alert.NightlyAborted(reason, started, e.LogPath))
	if err := run.Finish(state.Aborted, 1, reason, nil, nil); err != nil { // the exit status the process ends with
		return err
	}
	return fmt.Errorf("nightly aborted: %s", reason)
}

// preflight refuses to run against an unmounted or wrong backup disk, an
// unmounted source (an empty mountpoint backed up and then pruned would
// push good archives out), or without borg.
func (e *Env) preflight(ctx context.Context) error {
	if err := e.backupDiskReady(ctx); err != nil {
		return err
	}
	for _, r := range e.Host.Repos {
		for _, mp := range r.MustBeMountpoints {
			// Only whether it is mounted matters here, which the mount
			// table answers without starting findmnt for each source.
			if !e.MountedAt(mp) {
				return &preflightError{fmt.Sprintf("%s is not mounted: refusing to back up an empty mountpoint into %s", mp, r.Name)}
			}
		}
	}
	if _, err := exec.LookPath(borgProgram()); err != nil {
		return &preflightError{"borg is not installed: " + err.Error()}
	}
	return nil
}

func borgProgram() string {
	if p, ok := tools.Paths[tools.Borg]; ok {
		return p
	}
	return tools.Borg
}

// backupDiskReady checks the host's backup disk is mounted and is the
// configured filesystem; an unmounted one is mounted once through fstab
// first (a disk plugged in after boot, which nofail let the boot skip).
func (e *Env) backupDiskReady(ctx context.Context) error {
	d := e.Host.BackupDisk()
	if d == nil {
		return nil
	}
	ok, uuid, err := e.Mounted(ctx, d.Mountpoint)
	if err != nil {
		return err
	}
	if !ok {
		e.logf("%s is not mounted; trying mount once", d.Mountpoint)
		if _, err := e.run(ctx, host.Command(tools.Mount, d.Mountpoint)); err == nil {
			ok, uuid, err = e.Mounted(ctx, d.Mountpoint)
			if err != nil {
				return err
			}
		}
	}
	if !ok {
		return &preflightError{fmt.Sprintf("backup disk %s (UUID=%s) is not mounted at %s", d.Name, d.UUID, d.Mountpoint)}
	}
	if d.UUID != "" && !strings.EqualFold(uuid, d.UUID) {
		return &preflightError{fmt.Sprintf("%s holds the filesystem UUID=%s, not the backup disk UUID=%s", d.Mountpoint, uuid, d.UUID)}
	}
	return nil
}

// backupRepo runs one repo's sections and sums them up for the dashboard.
func (e *Env) backupRepo(ctx context.Context, r *config.Repo) ([]alert.Section, state.RepoStats) {
	rs := state.RepoStats{Name: r.Name, Path: r.Path, Status: "ok", VMs: r.VMs}
	start := e.Now()
	var secs []alert.Section
	fail := func(name string, res host.Result, err error) alert.Section {
		rs.Status = "failed"
		return alert.Section{Name: name, Status: alert.StatusFailed, ExitCode: exitCode(res, err),
			Output: strings.TrimSpace(tailText(append(res.Stderr, res.Stdout...), 12) + "\n" + errText(res, err))}
	}
	if !borg.IsLocalRepo(r.Path) {
		err := fmt.Errorf("%s holds no borg repository (run borgkit provision)", r.Path)
		secs = append(secs, fail("Backup: "+r.Name, host.Result{}, err))
		return secs, rs
	}
	sources, dir, cleanup, sec := e.prepareSources(ctx, r)
	defer cleanup()
	if sec != nil {
		secs = append(secs, *sec)
		if sec.Status == alert.StatusFailed {
			rs.Status = "failed"
			return secs, rs
		}
	}

	cctx := ctx
	if d := r.TimeoutDuration(); d > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	args := []string{"create", "--stats", "--json", "--compression", r.CompressionSpec(), "--exclude-caches"}
	for _, x := range r.Excludes {
		// One argument: an exclude starting with "-" is a pattern, not
		// borg's next option.
		args = append(args, "--exclude="+x)
	}
	args = append(append(args, r.Path+"::"+layout.ArchivePrefix+"{now:%Y-%m-%dT%H:%M:%S}"), sources...)
	t0 := e.Now()
	c := borg.Cmd(e.borgEnv(r), args...)
	c.Dir = dir
	res, err := e.run(cctx, c)
	name := "Backup: " + r.Name
	switch {
	case err == nil:
		secs = append(secs, alert.Section{Name: name, Status: alert.StatusOK, Duration: e.Now().Sub(t0)})
	case res.ExitCode == 1: // borg: warning, the archive was written
		secs = append(secs, alert.Section{Name: name, Status: alert.StatusWarning, ExitCode: 1, Output: tailText(res.Stderr, 12)})
	default:
		if cctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", r.TimeoutDuration())
		}
		secs = append(secs, fail(name, res, err))
		// No prune after a failed create: the archives we have are the
		// only good ones until a create works again.
		secs = append(secs, alert.Section{Name: "Retention + compact: " + r.Name, Status: alert.StatusSkipped})
		rs.Duration = e.Now().Sub(start)
		return secs, rs
	}
	parseCreate(res.Stdout, &rs)

	t0 = e.Now()
	ret := e.Cfg.RepoRetention(e.Host, r)
	pargs := []string{"prune", "--list", "--glob-archives", layout.ArchivePrefix + "*",
		"--keep-daily", strconv.Itoa(ret.Daily), "--keep-weekly", strconv.Itoa(ret.Weekly), "--keep-monthly", strconv.Itoa(ret.Monthly)}
	if ret.Yearly > 0 {
		pargs = append(pargs, "--keep-yearly", strconv.Itoa(ret.Yearly))
	}
	res, err = e.borg(ctx, r, append(pargs, r.Path)...)
	if err != nil {
		secs = append(secs, fail("Retention + compact: "+r.Name, res, err))
		rs.Duration = e.Now().Sub(start)
		return secs, rs
	}
	rs.Archives = strings.Count(string(res.Stderr), "Keeping archive")
	// Every segment compact rewrites is a new file each mirror receives
	// whole: compact only on the policy's days, and only segments free
	// enough that the re-send stays bounded (see config.Compaction).
	pol := e.Cfg.HostCompaction(e.Host)
	if !pol.Due(t0) {
		e.logf("%s: no compaction tonight (compaction weekdays: %s)", r.Name, strings.Join(pol.Weekdays, ", "))
	} else {
		res, err = e.borg(ctx, r, "compact", "--threshold", strconv.Itoa(pol.Threshold), r.Path)
	}
	if err != nil {
		secs = append(secs, fail("Retention + compact: "+r.Name, res, err))
	} else {
		secs = append(secs, alert.Section{Name: "Retention + compact: " + r.Name, Status: alert.StatusOK, Duration: e.Now().Sub(t0)})
	}
	rs.Duration = e.Now().Sub(start)
	return secs, rs
}

func errText(res host.Result, err error) string {
	if err == nil || len(res.Stderr) > 0 {
		return ""
	}
	return err.Error()
}

// borgEnv is borg's environment for repo r on this host.
func (e *Env) borgEnv(r *config.Repo) borg.Env { return borg.OnHost(e.Exec, r.PassphrasePath()) }

// parseCreate reads borg create --json: the archive and the repo's totals.
func parseCreate(out []byte, rs *state.RepoStats) {
	var v struct {
		Archive struct {
			Name  string `json:"name"`
			Start string `json:"start"`
			Stats struct {
				NFiles int64 `json:"nfiles"`
			} `json:"stats"`
		} `json:"archive"`
		Cache struct {
			Stats struct {
				TotalSize   uint64 `json:"total_size"`
				TotalCSize  uint64 `json:"total_csize"`
				UniqueCSize uint64 `json:"unique_csize"`
			} `json:"stats"`
		} `json:"cache"`
	}
	if json.Unmarshal(out, &v) != nil {
		return
	}
	rs.Archive = v.Archive.Name
	if t, err := time.ParseInLocation("2006-01-02T15:04:05.000000", v.Archive.Start, time.Local); err == nil {
		rs.LastBackup = t
	}
	rs.Files = v.Archive.Stats.NFiles
	rs.OriginalSize, rs.CompressedSize, rs.DeduplicatedSize = v.Cache.Stats.TotalSize, v.Cache.Stats.TotalCSize, v.Cache.Stats.UniqueCSize
}

// prepareSources dumps VM definitions and takes the ZFS snapshot a repo
// asks for, and returns the paths to give borg create (and the directory to
// run it in), with a cleanup that destroys the snapshot.
func (e *Env) prepareSources(ctx context.Context, r *config.Repo) (sources []string, dir string, cleanup func(), sec *alert.Section) {
	sources, cleanup = append([]string(nil), r.Sources...), func() {}
	if len(r.VMs) > 0 {
		t0 := e.Now()
		name := "VM definitions: " + strings.Join(r.VMs, ", ")
		if err := os.MkdirAll(e.VMXMLDir, 0o700); err != nil {
			return nil, "", cleanup, &alert.Section{Name: name, Status: alert.StatusFailed, ExitCode: 1, Output: err.Error()}
		}
		for _, vm := range r.VMs {
			res, err := e.run(ctx, host.Command(tools.Virsh, "dumpxml", vm))
			if err == nil {
				err = os.WriteFile(filepath.Join(e.VMXMLDir, vm+".xml"), res.Stdout, 0o600)
			}
			if err != nil {
				// The disk images still go into the archive; a missing
				// definition is worth a warning, not a lost backup.
				s := alert.Section{Name: name, Status: alert.StatusWarning, ExitCode: exitCode(res, err), Output: tailText(res.Stderr, 6) + errText(res, err)}
				sec = &s
			}
		}
		if sec == nil {
			sec = &alert.Section{Name: name, Status: alert.StatusOK, Duration: e.Now().Sub(t0)}
		}
		sources = append(sources, e.VMXMLDir)
	}
	if r.Snapshot == "" {
		return sources, "", cleanup, sec
	}
	sources, dir, cleanup, snapSec := e.snapshotSources(ctx, r, sources)
	if snapSec != nil {
		return nil, "", cleanup, snapSec
	}
	return sources, dir, cleanup, sec
}
