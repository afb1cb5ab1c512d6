package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/copies"
	"github.com/borgkit/borgkit/roles/jobs/snapshot"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Sync mirrors every repo to each mirror once the nightly run is done:
// the NAS through its mount, offsite through the rrsync-restricted key.
// rsync --delete carries whatever the source is over the good copies, so
// a repo is mirrored only when it is whole and is what the nightly left
// (see sourceRefusal and mirrorRefusal); a refused repo's mirror is not
// touched. After the transfer, every mirrored repo's files are compared
// with the source's: names and sizes of all, content of those rewritten
// in place.
func Sync(ctx context.Context, e *Env) error {
	run, ctx, stop, err := e.Begin(ctx, layout.JobSync)
	if err != nil {
		return err
	}
	defer stop()
	started := e.Now()
	var report alert.SyncReport
	report.Started, report.LogPath = started, e.LogPath
	finish := func(stats state.SyncStats) error {
		status, code, msg := state.OK, 0, "all mirrors up to date"
		if len(report.Failures) > 0 {
			status, code, msg = state.Failed, 1, fmt.Sprintf("%d transfers failed or were refused", len(report.Failures))
			e.Mail(ctx, alert.SyncFailed(report))
		}
		if err := run.Finish(status, code, msg, stats, nil); err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("sync: %s", msg)
		}
		return nil
	}

	// Wait for the nightly run (or a check) to let go of the repos.
	lock, err := state.LockContext(ctx, e.LockPath, e.LockWait)
	if err != nil {
		report.Failures = append(report.Failures, alert.SyncFailure{Repo: "(all)", Target: "(all)", ExitCode: 1, Output: err.Error()})
		return finish(state.SyncStats{})
	}
	defer lock.Unlock()

	if err := e.backupDiskReady(ctx); err != nil {
		report.Failures = append(report.Failures, alert.SyncFailure{Repo: "(all)", Target: "(all)", ExitCode: 1,
			Output: "refused: " + err.Error() + "; nothing was mirrored, every mirror was left as it was"})
		return finish(state.SyncStats{})
	}
	sources, refused := e.trustedSources(ctx)
	var stats state.SyncStats
	for i := range e.Host.Mirrors {
		m := &e.Host.Mirrors[i]
		if e.revoked(m) {
			e.logf("%s: %s's unlock is revoked (%s): no push to it", m.Name, m.Host, filepath.Join(e.RevokedDir, m.Host))
			stats.Mirrors = append(stats.Mirrors, state.MirrorStats{Name: m.Name, Target: m.Host + ":" + m.Path, Status: "revoked"})
			continue
		}
		ms := e.mirror(ctx, m, sources, refused, &report)
		ms.Remote = e.remoteRepos(m)
		stats.Mirrors = append(stats.Mirrors, ms)
	}
	return finish(stats)
}

// remoteRepos are the host's repos on a borg server, which mirror m
// skips: borg writes them on the server, and a sync is never an rsync of
// them. Each is logged, so the sync says so.
func (e *Env) remoteRepos(m *config.Mirror) []string {
	var out []string
	for i := range e.Host.Repos {
		if r := &e.Host.Repos[i]; r.Remote() {
			e.logf("%s: repo %s is on a borg server (%s): not mirrored, borg writes it there", m.Name, r.Name, r.Location().Addr())
			out = append(out, r.Name)
		}
	}
	return out
}

// revoked reports whether m goes to an offsite host whose unlock was
// revoked: a stolen Pi gets nothing more from this server.
func (e *Env) revoked(m *config.Mirror) bool {
	if m.Host == "" {
		return false
	}
	return e.Revoked(m.Host)
}

// Revoked reports whether the offsite host name was revoked.
func (e *Env) Revoked(name string) bool {
	_, err := os.Lstat(filepath.Join(e.RevokedDir, name))
	return err == nil
}

// WatchedOffsites are the offsite hosts whose watchdog reports to e's host:
// those that belong to it, run the watchdog and were not revoked.
func (e *Env) WatchedOffsites() []*config.Host {
	var out []*config.Host
	for _, o := range e.Cfg.OffsiteHosts(e.Host) {
		if _, on := o.Schedule(layout.JobWatchdog); on && !e.Revoked(o.Name) {
			out = append(out, o)
		}
	}
	return out
}

// source is a repo the sync may mirror, with what the guards compare a
// mirror with.
type source struct {
	repo *config.Repo
	rec  *state.RepoRecord // nil: never recorded by a nightly
}

// trustedSources are the repos whose directory holds a whole borg repo,
// that their last integrity check did not find damaged, and that still
// are what the nightly left; the rest are refused with a reason.
func (e *Env) trustedSources(ctx context.Context) ([]source, map[string]string) {
	failedCheck := map[string]bool{}
	for _, job := range []string{layout.JobCheck, layout.JobVerify} {
		// Each repo's last result, whatever the run: the rolling verify
		// and a check that could not run carry the results before them.
		rec, err := e.Store.Load(job)
		if err != nil {
			continue
		}
		var cs state.CheckStats
		if decodeStats(rec, &cs) == nil {
			for _, r := range cs.Repos {
				if r.Status == "failed" {
					failedCheck[r.Name] = true
				}
			}
		}
	}
	var ok []source
	refused := map[string]string{}
	for i := range e.Host.Repos {
		r := &e.Host.Repos[i]
		if r.Remote() {
			continue // see remoteRepos
		}
		if failedCheck[r.Name] {
			refused[r.Name] = "its last borg check failed; mirroring it would overwrite the good copies"
			continue
		}
		src, why := e.sourceRefusal(ctx, r)
		if why != "" {
			refused[r.Name] = why
			continue
		}
		ok = append(ok, src)
	}
	return ok, refused
}

// accepted reports whether the operator accepted repo's source as it is
// (borgkit job sync --accept-source NAME).
func (e *Env) accepted(repo string) bool { return slices.Contains(e.AcceptSource, repo) }

// sourceRefusal says why repo r must not be mirrored with --delete, from
// the repo alone and the nightly's record of it ("" when it may be):
//   - its directory is not a whole borg repo: no config with an id, no
//     complete last transaction (index.N, hints.N and integrity.N), or no
//     segment N (data/ emptied, the newest segments removed);
//   - it is not the repo the nightly backed up into (another id);
//   - segments the nightly left are gone;
//   - borg cannot list it, or archives the nightly recorded are missing
//     (deleted by hand or by an intruder).
//
// Every test is a directory listing and one small file, but the last:
// one borg list, reading the repo's manifest.
func (e *Env) sourceRefusal(ctx context.Context, r *config.Repo) (source, string) {
	src := source{repo: r}
	cfg, err := os.ReadFile(filepath.Join(r.Path, "config"))
	if err != nil || !borg.IsRepoConfig(cfg) {
		return src, r.Path + " holds no borg repository (its config is missing or not borg's)"
	}
	id, err := borg.RepoID(cfg)
	if err != nil {
		return src, fmt.Sprintf("%s/config is damaged: %v", r.Path, err)
	}
	files, err := listRepo(ctx, r.Path)
	if err != nil {
		return src, fmt.Sprintf("cannot list %s: %v", r.Path, err)
	}
	last, ok := borg.LastCommit(files.top)
	switch {
	case !ok:
		return src, fmt.Sprintf("%s has no complete transaction (index.N, hints.N and integrity.N): its index is gone; borg would rebuild it by writing to the repo", r.Path)
	case !files.segs.Has(last):
		return src, fmt.Sprintf("%s lacks segment %d, the one its last transaction ends in: its data is gone (%d segments, %s left)",
			r.Path, last, len(files.segs), alert.Size(files.segBytes))
	}
	rec, err := e.Store.LoadRepo(r.Name)
	if err != nil && !state.IsNotExist(err) {
		return src, fmt.Sprintf("cannot read the nightly's record of it: %v", err)
	}
	src.rec = rec
	accept := e.accepted(r.Name)
	if rec != nil && !accept {
		if rec.ID != "" && rec.ID != id {
			return src, fmt.Sprintf("%s is not the repo the nightly backed up into (id %.12s…, the nightly's was %.12s…): it was replaced", r.Path, id, rec.ID)
		}
		recorded, err := borg.ParseSegments(rec.Segments)
		if err != nil {
			return src, err.Error()
		}
		if gone := recorded.Minus(files.segs); len(gone) > 0 {
			return src, fmt.Sprintf("%d of the %d segments the nightly left are gone (%s; %d segments, %s left of %s)",
				len(gone), len(recorded), gone, len(files.segs), alert.Size(files.segBytes), alert.Size(rec.SegmentBytes))
		}
	}
	res, err := e.borg(ctx, r, "list", "--short", r.Path)
	if err != nil {
		return src, fmt.Sprintf("borg cannot list it: %s", tailText(append(res.Stderr, []byte(errText(res, err))...), 4))
	}
	have := strings.Fields(string(res.Stdout))
	if rec != nil && !accept {
		var missing []string
		for _, a := range rec.Archives {
			if !slices.Contains(have, a) {
				missing = append(missing, a)
			}
		}
		if len(missing) > 0 {
			return src, fmt.Sprintf("archives the nightly recorded are gone from it: %s", strings.Join(missing, ", "))
		}
	}
	if accept {
		e.acceptSource(r, rec, id, have, files)
		src.rec, _ = e.Store.LoadRepo(r.Name)
	}
	return src, ""
}

// acceptSource records repo r as it is now, on the operator's word: its
// archives, its segments, and every segment the record knew that is gone
// counted as freed, so the mirrors may drop them.
func (e *Env) acceptSource(r *config.Repo, prev *state.RepoRecord, id string, archives []string, files repoFiles) {
	var kept []string
	for _, a := range archives {
		if strings.HasPrefix(a, layout.ArchivePrefix) {
			kept = append(kept, a)
		}
	}
	newest := ""
	if len(kept) > 0 {
		newest = kept[len(kept)-1]
	}
	var gone borg.Segments
	if prev != nil {
		if recorded, err := borg.ParseSegments(prev.Segments); err == nil {
			gone = recorded.Minus(files.segs)
		}
	}
	e.logf("%s: accepting the source as it is on the operator's word: %d archives, %d segments", r.Name, len(kept), len(files.segs))
	e.saveRepoRecord(r, prev, createResult{repoID: id, figures: state.ArchiveFigures{Archive: newest}}, kept, files, gone)
	// The figures of the accepted night are not an archive's: drop them.
	if rec, err := e.Store.LoadRepo(r.Name); err == nil && len(rec.Recent) > 0 && rec.Recent[len(rec.Recent)-1].Files == 0 {
		rec.Recent = rec.Recent[:len(rec.Recent)-1]
		e.Store.SaveRepo(rec)
	}
}

// mirrorRefusal says why src must not be mirrored onto a copy holding
// dst with --delete, "" when it may: the copy has segments the source
// lacks that no nightly of borgkit removed (segments are never removed by
// anything else, short of damage), a segment whose size differs (a
// segment is never rewritten), or more files to delete than max_delete.
func mirrorRefusal(s source, src, dst repoFiles, maxDelete int, accept bool) string {
	if !accept {
		freed, err := freedSince(s.rec)
		if err != nil {
			return err.Error()
		}
		var unexplained borg.Segments
		var bytes uint64
		for _, n := range dst.segs.Minus(src.segs) {
			if !freed.Has(n) {
				unexplained = append(unexplained, n)
				bytes += uint64(dst.size[dst.segmentPath(n)])
			}
		}
		if len(unexplained) > 0 {
			return fmt.Sprintf("the source lacks %d of the mirror's %d segments (%s, %s) that no nightly compaction freed: the source lost them; "+
				"the source has %d segments, %s", len(unexplained), len(dst.segs), unexplained, alert.Size(bytes), len(src.segs), alert.Size(src.segBytes))
		}
		for _, n := range dst.segs {
			p := src.segmentPath(n)
			if src.segs.Has(n) && src.size[p] != dst.size[p] {
				return fmt.Sprintf("segment %s is %d bytes in the source and %d in the mirror: segments never change size, one side is damaged", p, src.size[p], dst.size[p])
			}
		}
	}
	if maxDelete > 0 {
		n := 0
		for _, f := range dst.files {
			if _, ok := src.size[f.Path]; !ok {
				n++
			}
		}
		if n > maxDelete {
			return fmt.Sprintf("%d files would be deleted from the mirror, more than max_delete (%d)", n, maxDelete)
		}
	}
	return ""
}

var sentRE = regexp.MustCompile(`Total bytes sent: ([\d,.]+)`)

// copyOf is mirror m as a copy the guards and the audit can list and hash.
func (e *Env) copyOf(m *config.Mirror) copies.Copy {
	if m.Host != "" {
		return copies.Remote{Label: m.Name, Shell: copies.ShellArgv(e.HashSSH, m.Host), Root: layout.HashRootMirror,
			Dir: func(repo string) string { return repo }, Exec: e.Exec}
	}
	return copies.Dir{Label: m.Name, Path: func(repo string) string { return filepath.Join(m.Path, repo) }}
}

func (e *Env) mirror(ctx context.Context, m *config.Mirror, sources []source, refused map[string]string, report *alert.SyncReport) state.MirrorStats {
	ms := state.MirrorStats{Name: m.Name, Status: "ok"}
	fail := func(repo, target string, code int, out string) {
		report.Failures = append(report.Failures, alert.SyncFailure{Repo: repo, Target: target, ExitCode: code, Output: out})
		ms.Failed = append(ms.Failed, repo)
		ms.Status = "failed"
	}
	remote := m.Host != ""
	if remote {
		ms.Target = m.Host + ":" + m.Path
	} else {
		ms.Target = m.Path
		// Never write into the empty mountpoint of an unmounted share: the
		// local disk would fill, and the next mount would hide it all.
		if mp := e.mountOf(m.Path); mp != "" {
			if ok, _, err := e.Mounted(ctx, mp); err != nil || !ok {
				fail("(all)", m.Path, 1, fmt.Sprintf("refused: %s is not mounted", mp))
				ms.Status = "refused"
				return ms
			}
		}
	}
	names := make([]string, 0, len(refused))
	for name := range refused {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fail(name, ms.Target, 1, "refused: "+refused[name]+"; the mirror of it was left as it was")
		ms.Refused = append(ms.Refused, name)
	}
	cp := e.copyOf(m)
	for _, s := range sources {
		r := s.repo
		dest := filepath.Join(m.Path, r.Name) + "/"
		if remote {
			// rrsync on the target roots every path at its mount, so the
			// destination is relative.
			dest = m.Host + ":" + r.Name + "/"
		}
		src, err := listRepo(ctx, r.Path)
		if err != nil {
			fail(r.Name, dest, 1, err.Error())
			continue
		}
		dstFiles, err := cp.List(ctx, r.Name)
		if err != nil && !errors.Is(err, copies.ErrNoRepo) {
			fail(r.Name, dest, 1, fmt.Sprintf("refused: cannot list the mirror to compare it with the source: %v; the mirror was left as it was", err))
			ms.Refused = append(ms.Refused, r.Name)
			continue
		}
		if why := mirrorRefusal(s, src, readRepoFiles(dstFiles), m.MaxDelete, e.accepted(r.Name)); why != "" {
			e.logf("%s -> %s refused: %s", r.Name, dest, why)
			fail(r.Name, dest, 1, "refused: "+why+"; the mirror of it was left as it was")
			ms.Refused = append(ms.Refused, r.Name)
			continue
		}
		if !remote {
			if err := os.MkdirAll(m.Path, 0o700); err != nil {
				fail(r.Name, dest, 1, err.Error())
				continue
			}
		}
		sent, code, out := e.transfer(ctx, m, r, dest)
		ms.SentBytes += sent
		if code != 0 {
			fail(r.Name, dest, code, out)
			continue
		}
		if diff := e.compareMirror(ctx, cp, r); diff != "" {
			fail(r.Name, dest, 1, "after the transfer the mirror differs from the source: "+diff)
			continue
		}
		ms.Repos = append(ms.Repos, r.Name)
		ms.Verified = append(ms.Verified, r.Name)
	}
	if remote && ms.Status == "ok" {
		if err := e.heartbeat(ctx, m); err != nil {
			fail("(heartbeat)", m.Host+":"+layout.HeartbeatDir+"/", 1, err.Error())
		} else {
			ms.Heartbeat = e.Now()
		}
	}
	return ms
}

// transfer copies repo r to dest in two passes: the whole repo by size
// (segments never change: equal size is equal content, and a segment
// damaged in place on the source is never carried over), deleting what
// the source no longer has; then every file outside data/ by content
// (config, nonce, index.N and the like are rewritten in place, often at
// the same size: an encrypted repo's nonce is, and a mirror with an old
// nonce restored and written to would reuse AES-CTR nonces).
// A failed pass returns rsync's status and the tail of what it said.
func (e *Env) transfer(ctx context.Context, m *config.Mirror, r *config.Repo, dest string) (sent uint64, code int, out string) {
	var common []string
	if m.Host != "" {
		common = append(common, "--hard-links", "--numeric-ids", "-e", e.SSH)
	}
	mode := "-a"
	if m.Host != "" {
		mode = snapshot.PushMode
	}
	src := strings.TrimSuffix(r.Path, "/") + "/"
	bySize := append([]string{mode, "--delete", "--size-only", "--stats"}, common...)
	if m.MaxDelete > 0 {
		bySize = append(bySize, "--max-delete="+strconv.Itoa(m.MaxDelete))
	}
	byContent := append([]string{mode, "--checksum", "--stats", "--exclude=/" + borg.DataDir + "/"}, common...)
	run := e.run
	if m.Host != "" {
		run = e.push
	}
	for _, args := range [][]string{bySize, byContent} {
		res, err := run(ctx, host.Command(tools.Rsync, append(args, src, dest)...))
		if mm := sentRE.FindSubmatch(res.Stdout); mm != nil {
			n, _ := strconv.ParseUint(strings.NewReplacer(",", "", ".", "").Replace(string(mm[1])), 10, 64)
			sent += n
		}
		if err != nil {
			return sent, exitCode(res, err), tailText(append(res.Stderr, res.Stdout...), 12)
		}
	}
	return sent, 0, ""
}

// compareMirror checks the copy of repo r against the source, file for
// file: the same names and sizes, and the same SHA-256 for every file
// outside data/. Segments are compared by content by the audit, a share
// a night. It returns what differs, "" when nothing does.
func (e *Env) compareMirror(ctx context.Context, cp copies.Copy, r *config.Repo) string {
	local := copies.Dir{Label: "source", Path: func(string) string { return r.Path }}
	srcFiles, err := local.List(ctx, r.Name)
	if err != nil {
		return err.Error()
	}
	dstFiles, err := cp.List(ctx, r.Name)
	if err != nil {
		return "cannot list the mirror: " + err.Error()
	}
	src, dst := readRepoFiles(srcFiles), readRepoFiles(dstFiles)
	var diffs []string
	for _, f := range srcFiles {
		if n, ok := dst.size[f.Path]; !ok {
			diffs = append(diffs, f.Path+" missing")
		} else if n != f.Size {
			diffs = append(diffs, fmt.Sprintf("%s %d bytes, the source's %d", f.Path, n, f.Size))
		}
	}
	for _, f := range dstFiles {
		if _, ok := src.size[f.Path]; !ok {
			diffs = append(diffs, f.Path+" not in the source")
		}
	}
	a, err := local.Hash(ctx, r.Name, src.top)
	if err != nil {
		return err.Error()
	}
	b, err := cp.Hash(ctx, r.Name, src.top)
	if err != nil {
		return "cannot hash the mirror's files: " + err.Error()
	}
	for i := range a {
		switch {
		case a[i].Err != "" || b[i].Err != "":
			diffs = append(diffs, fmt.Sprintf("%s: %s%s", a[i].Path, a[i].Err, b[i].Err))
		case a[i].SHA256 != b[i].SHA256:
			diffs = append(diffs, fmt.Sprintf("%s: SHA-256 %.12s… in the mirror, %.12s… in the source", a[i].Path, b[i].SHA256, a[i].SHA256))
		}
	}
	if len(diffs) > 8 {
		diffs = append(diffs[:8], fmt.Sprintf("and %d more", len(diffs)-8))
	}
	return strings.Join(diffs, "; ")
}

// heartbeat tells the offsite watchdog that the whole mirror arrived: it is
// written only after every repo went through.
func (e *Env) heartbeat(ctx context.Context, m *config.Mirror) error {
	dir, err := os.MkdirTemp("", "borgkit-heartbeat-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hb := filepath.Join(dir, layout.HeartbeatDir)
	if err := os.Mkdir(hb, 0o755); err != nil {
		return err
	}
	stamp := e.Now().UTC().Format("2006-01-02T15:04:05Z") + "\n"
	if err := os.WriteFile(filepath.Join(hb, layout.HeartbeatName(e.Host.Name)), []byte(stamp), 0o644); err != nil {
		return err
	}
	// -I: a heartbeat is one line and its arrival is the signal, so it is
	// always rewritten; rsync's quick check would skip a second push in
	// the same second (same size, same mtime) and the offsite host would
	// see no new arrival.
	res, err := e.push(ctx, host.Command(tools.Rsync, "-rtI", "-e", e.SSH, hb+"/", m.Host+":"+layout.HeartbeatDir+"/"))
	if err != nil {
		return fmt.Errorf("write heartbeat: %s", tailText(res.Stderr, 4))
	}
	return nil
}

// mountOf is the mountpoint of the host's share or disk holding p.
func (e *Env) mountOf(p string) string {
	var mounts []string
	for _, s := range e.Host.Shares {
		mounts = append(mounts, s.Mountpoint)
	}
	for _, d := range e.Host.Disks {
		mounts = append(mounts, d.Mountpoint)
	}
	return layout.Mountpoint(p, mounts)
}
