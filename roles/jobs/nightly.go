package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
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
		suspects []alert.Suspect
		worst    = state.OK
	)
	for _, n := range e.backupRepos(ctx) {
		sections = append(sections, n.secs...)
		stats.Repos = append(stats.Repos, n.stats)
		if n.suspect != nil {
			suspects = append(suspects, *n.suspect)
			worst = worse(worst, state.Warning)
		}
		for _, s := range n.secs {
			switch s.Status {
			case alert.StatusFailed:
				worst = state.Failed
			case alert.StatusWarning:
				worst = worse(worst, state.Warning)
			}
		}
	}
	// The post-steps run once every repo's backup has returned.
	e.cleanVMXML(ctx)
	if d := e.Host.BackupDisk(); d != nil {
		if u, err := e.Usage(d.Mountpoint); err == nil {
			u.UUID, u.Mounted = d.UUID, true
			stats.Disk = u
			if u.Percent >= e.Host.DiskWarnPercent() {
				e.Mail(ctx, alert.DiskSpaceWarning(d.Mountpoint, u.Percent, u.Used, u.Size))
			}
		}
	}
	if len(suspects) > 0 {
		e.Mail(ctx, alert.SuspiciousBackup(e.Now(), suspects, e.LogPath))
	}
	code := 0
	msg := fmt.Sprintf("%d repos backed up", len(stats.Repos))
	report := alert.NightlyReport{Started: started, Finished: e.Now(), Sections: sections, LogPath: e.LogPath}
	switch worst {
	case state.Failed:
		code, msg = 1, "some sections failed"
		report.ExitCode = code
		e.Mail(ctx, alert.NightlyFailed(report))
	case state.Warning:
		code, msg = ExitWarnings, fmt.Sprintf("%d repos backed up, with warnings", len(stats.Repos))
		report.ExitCode = code
		if hasWarningSection(sections) {
			e.Mail(ctx, alert.NightlyWarnings(report))
		}
	}
	if err := run.Finish(worst, code, msg, stats, nil); err != nil {
		return err
	}
	switch worst {
	case state.Failed:
		return fmt.Errorf("nightly: %s", msg)
	case state.Warning:
		return &WarningsError{Job: layout.JobNightly, Msg: msg}
	}
	return nil
}

// worse is the graver of two run statuses.
func worse(a, b state.Status) state.Status {
	rank := map[state.Status]int{state.OK: 0, state.Warning: 1, state.Failed: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func hasWarningSection(secs []alert.Section) bool {
	return slices.ContainsFunc(secs, func(s alert.Section) bool { return s.Status == alert.StatusWarning })
}

// ExitWarnings is the exit status of a job that did all its work but
// mailed warnings (a file borg could not read, a suspicious archive):
// neither 0, which would hide them from a timer's or a check's view, nor
// 1, which says the work was not done.
const ExitWarnings = 4

// WarningsError ends a job that finished with warnings.
type WarningsError struct{ Job, Msg string }

func (w *WarningsError) Error() string { return w.Job + ": " + w.Msg }

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
// suspect, when set, says why the night's archive looks wrong.
func (e *Env) backupRepo(ctx context.Context, r *config.Repo) ([]alert.Section, state.RepoStats, *alert.Suspect) {
	rs := state.RepoStats{Name: r.Name, Path: r.Path, Status: "ok", VMs: r.VMs}
	start := e.Now()
	var secs []alert.Section
	fail := func(name string, res host.Result, err error) alert.Section {
		rs.Status = "failed"
		return alert.Section{Name: name, Status: alert.StatusFailed, ExitCode: exitCode(res, err),
			Output: failureText(res, err)}
	}
	name := "Backup: " + r.Name
	if r.Remote() {
		// Instead of the disk's mount: the borg server must answer.
		if err := e.reachable(ctx, r); err != nil {
			secs = append(secs, fail(name, host.Result{}, err))
			return secs, rs, nil
		}
	} else if !borg.IsLocalRepo(r.Path) {
		err := fmt.Errorf("%s holds no borg repository (run borgkit provision)", r.Path)
		secs = append(secs, fail(name, host.Result{}, err))
		return secs, rs, nil
	}
	prev, err := e.Store.LoadRepo(r.Name)
	if err != nil {
		if !state.IsNotExist(err) {
			e.logf("%s: %v (judged as a repo never recorded)", r.Name, err)
		}
		prev = nil
	}
	before, err := e.repoFiles(ctx, r)
	if err != nil {
		secs = append(secs, fail(name, host.Result{}, err))
		return secs, rs, nil
	}
	if prev != nil {
		gone, byBorg, err := vanishedSegments(prev, before, before.top)
		switch {
		case err != nil:
			e.logf("%v", err)
		case len(gone) > 0 && !byBorg:
			secs = append(secs, fail(name, host.Result{}, fmt.Errorf(
				"%d segments the last nightly left in %s are gone (%s) and no borg run since explains it: the repo is damaged. "+
					"Nothing was backed up into it tonight (a new archive would refer to data that is gone) and the mirrors keep their copies. "+
					"Run borg check --repository-only %s; restore the repo from a mirror, or repair it and then accept it as it is with "+
					"`borgkit job sync --accept-source %s`", len(gone), r.Path, gone, r.Path, r.Name)))
			return secs, rs, nil
		case len(gone) > 0:
			secs = append(secs, alert.Section{Name: "Repository: " + r.Name, Status: alert.StatusWarning, Output: fmt.Sprintf(
				"%d segments the last nightly left are gone (%s), removed by a borg run outside borgkit. The mirrors keep theirs: "+
					"the sync refuses this repo until you check it (borg check) and accept the change with `borgkit job sync --accept-source %s`.",
				len(gone), gone, r.Name)})
		}
	}
	guests := e.backupGuests(ctx, r, prev)
	secs = append(secs, guests.secs...)
	rs.Guests = guests.stats
	var expected []string
	if prev != nil {
		expected = prev.Archives
	}
	expected = slices.DeleteFunc(append(slices.Clone(expected), guests.created...),
		func(a string) bool { return slices.Contains(guests.pruned, a) })
	if len(r.Sources) == 0 {
		// A repo of guests only: no archive of its own.
		if guests.failed {
			rs.Status = "failed"
		}
		rs.Archives = len(guests.kept)
		secs = append(secs, e.compact(ctx, r, "Compact: "+r.Name))
		after, err := e.repoFiles(ctx, r)
		if err != nil {
			e.logf("%s: listing after the night: %v", r.Name, err)
		} else {
			e.saveRepoRecord(r, prev, createResult{}, expected, after, before.segs.Minus(after.segs))
		}
		rs.Duration = e.Now().Sub(start)
		return secs, rs, nil
	}
	sources, dir, cleanup, sec := e.prepareSources(ctx, r)
	defer cleanup()
	if sec != nil {
		secs = append(secs, *sec)
		if sec.Status == alert.StatusFailed {
			rs.Status = "failed"
			return secs, rs, nil
		}
	}

	args := []string{"create", "--stats", "--json", "--compression", r.CompressionSpec(), "--exclude-caches"}
	for _, x := range r.Excludes {
		// One argument: an exclude starting with "-" is a pattern, not
		// borg's next option.
		args = append(args, "--exclude="+x)
	}
	args = append(append(args, r.BorgLocation()+"::"+r.ArchivePrefixOrDefault()+"{now:%Y-%m-%dT%H:%M:%S}"), sources...)
	t0 := e.Now()
	res, err := e.borgIn(ctx, r, dir, args...)
	switch {
	case err == nil:
		secs = append(secs, alert.Section{Name: name, Status: alert.StatusOK, Duration: e.Now().Sub(t0)})
	case res.ExitCode == 1: // borg: warning, the archive was written
		secs = append(secs, alert.Section{Name: name, Status: alert.StatusWarning, ExitCode: 1, Output: tailText(res.Stderr, 12)})
	default:
		secs = append(secs, fail(name, res, err))
		// borg may have rolled back an earlier killed create, deleting
		// its uncommitted segments, which a sync may have mirrored.
		e.noteFreed(ctx, r, prev, before)
		// No prune after a failed create: the archives we have are the
		// only good ones until a create works again.
		secs = append(secs, alert.Section{Name: "Retention + compact: " + r.Name, Status: alert.StatusSkipped})
		rs.Duration = e.Now().Sub(start)
		return secs, rs, nil
	}
	cr := parseCreate(res.Stdout, &rs)
	var recent []state.ArchiveFigures
	if prev != nil {
		recent = prev.Recent
	}
	expected = append(expected, cr.figures.Archive)
	suspect := judgeArchive(r.Name, recent, cr.figures, e.Host.Thresholds.SuspiciousOrDefault())

	// Whatever happens next, the record follows the repo: the segments
	// borg removes from here on are tonight's own.
	record := func(expected []string) {
		after, err := e.repoFiles(ctx, r)
		if err != nil {
			e.logf("%s: listing after the night: %v", r.Name, err)
			return
		}
		e.saveRepoRecord(r, prev, cr, expected, after, before.segs.Minus(after.segs))
	}
	retention := "Retention + compact: " + r.Name
	if suspect != nil {
		// Keep every archive: if tonight's is the wrong one (a source
		// gone, files encrypted), the older ones are what is left.
		secs = append(secs, alert.Section{Name: retention, Status: alert.StatusSkipped,
			Output: "no prune and no compaction tonight: the new archive looks suspicious (see the SUSPICIOUS BACKUP mail)"})
		record(expected)
		rs.Status = "suspicious"
		rs.Duration = e.Now().Sub(start)
		return secs, rs, suspect
	}

	t0 = e.Now()
	res, err = e.borg(ctx, r, append(pruneArgs(r.ArchivePrefixOrDefault(), e.Cfg.RepoRetention(e.Host, r)), r.BorgLocation())...)
	if err != nil {
		secs = append(secs, fail(retention, res, err))
		record(expected)
		rs.Duration = e.Now().Sub(start)
		return secs, rs, nil
	}
	kept, pruned := pruneLists(res.Stderr)
	rs.Archives = len(kept) + len(guests.kept)
	kept, pruned = append(kept, guests.kept...), append(pruned, guests.pruned...)
	// Archives the last nightly recorded that tonight's prune neither
	// kept nor pruned were deleted outside borgkit: they stay expected,
	// so the sync refuses to carry their loss to the mirrors.
	var gone []string
	for _, a := range expected {
		if !slices.Contains(kept, a) && !slices.Contains(pruned, a) {
			gone = append(gone, a)
		}
	}
	if len(gone) > 0 {
		secs = append(secs, alert.Section{Name: "Repository: " + r.Name, Status: alert.StatusWarning, Output: fmt.Sprintf(
			"archives the last nightly recorded are gone and borgkit did not prune them: %s. The mirrors keep them: the sync refuses this repo "+
				"until you check it and accept the change with `borgkit job sync --accept-source %s`.", strings.Join(gone, ", "), r.Name)})
	}
	expected = append(kept, gone...)
	cs := e.compact(ctx, r, retention)
	if cs.Status == alert.StatusOK {
		cs.Duration = e.Now().Sub(t0)
	} else {
		rs.Status = "failed"
	}
	secs = append(secs, cs)
	record(expected)
	rs.Duration = e.Now().Sub(start)
	return secs, rs, nil
}

// pruneArgs is borg prune of the archives starting with prefix under
// retention ret, without the repo.
func pruneArgs(prefix string, ret config.Retention) []string {
	args := []string{"prune", "--list", "--glob-archives", prefix + "*",
		"--keep-daily", strconv.Itoa(ret.Daily), "--keep-weekly", strconv.Itoa(ret.Weekly), "--keep-monthly", strconv.Itoa(ret.Monthly)}
	if ret.Yearly > 0 {
		args = append(args, "--keep-yearly", strconv.Itoa(ret.Yearly))
	}
	return args
}

// compact runs borg compact on repo r when the policy says tonight. Every
// segment compact rewrites is a new file each mirror receives whole:
// compact only on the policy's days, and only segments free enough that
// the re-send stays bounded (see config.Compaction).
func (e *Env) compact(ctx context.Context, r *config.Repo, name string) alert.Section {
	pol := e.Cfg.HostCompaction(e.Host)
	if !pol.Due(e.Now()) {
		e.logf("%s: no compaction tonight (compaction weekdays: %s)", r.Name, strings.Join(pol.Weekdays, ", "))
		return alert.Section{Name: name, Status: alert.StatusOK}
	}
	res, err := e.borg(ctx, r, "compact", "--threshold", strconv.Itoa(pol.Threshold), r.BorgLocation())
	if err != nil {
		return alert.Section{Name: name, Status: alert.StatusFailed, ExitCode: exitCode(res, err),
			Output: failureText(res, err)}
	}
	return alert.Section{Name: name, Status: alert.StatusOK}
}

func errText(res host.Result, err error) string {
	if err == nil || len(res.Stderr) > 0 {
		return ""
	}
	return err.Error()
}

// borgEnv is borg's environment for repo r on this host.
func (e *Env) borgEnv(r *config.Repo) borg.Env {
	env := borg.OnHost(e.Exec, r.PassphrasePath())
	if e.RepoRSH != "" {
		env.RSH = e.RepoRSH
	}
	return env
}

// parseCreate reads borg create --json: the archive and the repo's totals.
func parseCreate(out []byte, rs *state.RepoStats) createResult {
	var v struct {
		Archive struct {
			Name  string `json:"name"`
			Start string `json:"start"`
			Stats struct {
				NFiles       int64  `json:"nfiles"`
				OriginalSize uint64 `json:"original_size"`
				Deduplicated uint64 `json:"deduplicated_size"`
			} `json:"stats"`
		} `json:"archive"`
		Cache struct {
			Stats struct {
				TotalSize   uint64 `json:"total_size"`
				TotalCSize  uint64 `json:"total_csize"`
				UniqueCSize uint64 `json:"unique_csize"`
			} `json:"stats"`
		} `json:"cache"`
		Repository struct {
			ID string `json:"id"`
		} `json:"repository"`
		Encryption struct {
			Mode string `json:"mode"`
		} `json:"encryption"`
	}
	if json.Unmarshal(out, &v) != nil {
		return createResult{}
	}
	rs.Archive = v.Archive.Name
	if t, err := time.ParseInLocation("2006-01-02T15:04:05.000000", v.Archive.Start, time.Local); err == nil {
		rs.LastBackup = t
	}
	rs.Files = v.Archive.Stats.NFiles
	rs.OriginalSize, rs.CompressedSize, rs.DeduplicatedSize = v.Cache.Stats.TotalSize, v.Cache.Stats.TotalCSize, v.Cache.Stats.UniqueCSize
	rs.ArchiveBytes, rs.NewBytes = v.Archive.Stats.OriginalSize, v.Archive.Stats.Deduplicated
	return createResult{repoID: v.Repository.ID, encryption: v.Encryption.Mode, figures: state.ArchiveFigures{
		Archive: v.Archive.Name, At: rs.LastBackup, Files: v.Archive.Stats.NFiles,
		OriginalBytes: v.Archive.Stats.OriginalSize, NewBytes: v.Archive.Stats.Deduplicated}}
}

// prepareSources takes the ZFS snapshot a repo asks for, and returns the
// paths to give borg create (and the directory to run it in), with a
// cleanup that destroys the snapshot.
func (e *Env) prepareSources(ctx context.Context, r *config.Repo) (sources []string, dir string, cleanup func(), sec *alert.Section) {
	sources, cleanup = append([]string(nil), r.Sources...), func() {}
	if r.Snapshot == "" {
		return sources, "", cleanup, nil
	}
	sources, dir, cleanup, sec = e.snapshotSources(ctx, r, sources)
	if sec != nil {
		return nil, "", cleanup, sec
	}
	return sources, dir, cleanup, nil
}
