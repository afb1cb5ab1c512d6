package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/copies"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// AuditCopy is one copy the audit compares with the repos.
type AuditCopy struct {
	copies.Copy
	// Snapshots is a copy of the repos' past (an offsite host's
	// snapshots): it names its files VERSION/PATH, each inode once and
	// none its mirror shares (those are audited as the mirror). A segment
	// the repo still has is compared with the repo's; one compaction has
	// removed with the repo's first-seen record of it. The repo's
	// segments it lacks are not "lagging".
	Snapshots bool
}

// auditCopies are the copies of this host's repos: each mirror not
// revoked, and an offsite mirror's snapshots.
func (e *Env) auditCopies() []AuditCopy {
	var out []AuditCopy
	for i := range e.Host.Mirrors {
		m := &e.Host.Mirrors[i]
		if e.revoked(m) {
			e.logf("%s: %s's unlock is revoked: not audited", m.Name, m.Host)
			continue
		}
		out = append(out, AuditCopy{Copy: e.copyOf(m)})
		if m.Host != "" {
			out = append(out, AuditCopy{Copy: e.snapshotsOf(m), Snapshots: true})
		}
	}
	return out
}

// snapshotsOf is offsite mirror m's snapshots as a copy: the hash key's
// second root, beside the mirror.
func (e *Env) snapshotsOf(m *config.Mirror) copies.Copy {
	return copies.Remote{Label: layout.SnapshotsCopy(m.Name), Shell: copies.ShellArgv(e.HashSSH, m.Host), Root: layout.HashRootSnapshots,
		Versions: true, Beside: layout.HashRootMirror, Dir: func(repo string) string { return repo }, Exec: e.Exec}
}

// Audit compares every copy of the repos with the repos by hashing files
// where they lie: a share of the segments each night, the least recently
// compared first, so that every segment of every copy is compared within
// audit.cover_days while a night reads about 1/cover_days of the bytes
// (plus what is overdue). Files outside data/ are compared by the sync
// every night. A segment that differs mails COPY MISMATCH naming the
// copy, the repo and the files.
func Audit(ctx context.Context, e *Env) error {
	run, ctx, stop, err := e.Begin(ctx, layout.JobAudit)
	if err != nil {
		return err
	}
	defer stop()
	cover := e.Host.Audit.CoverDaysOrDefault()
	stats := state.AuditStats{CoverDays: cover}
	lock, err := state.LockContext(ctx, e.LockPath, e.LockWait)
	if err != nil {
		return run.Finish(state.Failed, 1, "cannot take the borg lock: "+err.Error(), stats, nil)
	}
	defer lock.Unlock()
	if err := e.backupDiskReady(ctx); err != nil {
		// A missed night is made up by the next: what is overdue then is
		// compared first. The nightly mails about the disk.
		return run.Finish(state.Aborted, 1, "not run: "+err.Error(), stats, nil)
	}
	a := &auditor{e: e, cover: time.Duration(cover) * 24 * time.Hour, now: e.Now(), sums: map[string]map[string]copies.File{},
		srcs: map[string]repoFiles{}, seen: map[string]*state.FirstSeen{}, held: map[string]map[string]bool{}, unsure: map[string]bool{}}
	all := e.auditCopies()
	if slices.ContainsFunc(all, func(c AuditCopy) bool { return c.Snapshots }) {
		for _, r := range e.Host.Repos {
			if r.Remote() {
				continue // on a borg server, never mirrored: nothing to compare
			}
			if err := a.recordSeen(ctx, r.Name, r.Path, &stats); err != nil {
				e.logf("audit: first-seen record of %s: %v", r.Name, err)
			}
		}
	}
	var mismatches []alert.Mismatch
	failed := 0
	for _, c := range all {
		ca, ms := a.audit(ctx, c)
		stats.Copies = append(stats.Copies, ca)
		mismatches = append(mismatches, ms...)
		if ca.Status == "failed" {
			failed++
		}
	}
	a.saveSeen()
	var parts []string
	for _, c := range stats.Copies {
		parts = append(parts, fmt.Sprintf("%s: %d files, %s read, %.0f%% covered", c.Name, c.HashedFiles, alert.Size(c.HashedBytes), 100*c.Covered))
	}
	msg := "no copies to audit"
	if len(parts) > 0 {
		msg = strings.Join(parts, "; ")
	}
	switch {
	case len(mismatches) > 0:
		e.Mail(ctx, alert.CopyMismatch(e.Now(), mismatches, e.LogPath))
		if err := run.Finish(state.Failed, 1, "copies differ from the repos: "+msg, stats, nil); err != nil {
			return err
		}
		return fmt.Errorf("audit: %d copies of repos differ", len(mismatches))
	case failed > 0:
		if err := run.Finish(state.Failed, 1, fmt.Sprintf("%d copies could not be audited: %s", failed, msg), stats, nil); err != nil {
			return err
		}
		return fmt.Errorf("audit: %d copies could not be audited", failed)
	}
	return run.Finish(state.OK, 0, msg, stats, nil)
}

// auditor is one night's audit.
type auditor struct {
	e     *Env
	cover time.Duration
	now   time.Time
	// sums caches the source's hashes within the night, by repo and
	// path: two copies due the same segment read it once.
	sums map[string]map[string]copies.File
	// sourceRead counts the source bytes hashed tonight, once each.
	sourceRead uint64
	// srcs are the repos' listings, made once a night.
	srcs map[string]repoFiles
	// seen are the repos' first-seen records; held the segments the repo
	// no longer has that a snapshot listed tonight, unsure the repos a
	// snapshot could not be listed for (their records are all kept).
	seen   map[string]*state.FirstSeen
	held   map[string]map[string]bool
	unsure map[string]bool
}

func (a *auditor) audit(ctx context.Context, c AuditCopy) (state.CopyAudit, []alert.Mismatch) {
	t0 := time.Now()
	ca := state.CopyAudit{Name: c.Name(), Status: "ok"}
	cov, err := a.e.Store.LoadCoverage(c.Name())
	if err != nil {
		a.e.logf("audit %s: %v (starting afresh)", c.Name(), err)
	}
	readBefore := a.sourceRead
	var out []alert.Mismatch
	seen := map[string]bool{}
	for i := range a.e.Host.Repos {
		r := a.e.Host.Repos[i]
		seen[r.Name] = true
		if r.Remote() {
			continue // no copy holds it: the sync never mirrors a remote repo
		}
		mm, err := a.auditRepo(ctx, c, r.Name, r.Path, cov, &ca)
		if err != nil {
			a.e.logf("audit %s of %s: %v", c.Name(), r.Name, err)
			ca.Status, ca.Error = "failed", joinErr(ca.Error, r.Name+": "+err.Error())
			continue
		}
		if len(mm.Files) > 0 {
			out = append(out, mm)
		}
	}
	for repo := range cov.Repos {
		if !seen[repo] {
			delete(cov.Repos, repo)
		}
	}
	// Coverage over every segment followed, tonight's included.
	var covered uint64
	oldest := time.Duration(0)
	for _, files := range cov.Repos {
		for _, f := range files {
			ca.Files++
			ca.Bytes += uint64(f.Size)
			age := a.now.Sub(since(f))
			if !f.Verified.IsZero() && age < a.cover {
				covered += uint64(f.Size)
			}
			oldest = max(oldest, age)
		}
	}
	ca.Covered = 1
	if ca.Bytes > 0 {
		ca.Covered = float64(covered) / float64(ca.Bytes)
	}
	ca.Oldest = oldest
	if len(out) > 0 {
		ca.Status = "mismatch"
		cov.LastMismatch, cov.LastMismatchFiles = a.now, nil
		for _, m := range out {
			for _, f := range m.Files {
				cov.LastMismatchFiles = append(cov.LastMismatchFiles, m.Repo+"/"+f)
			}
		}
	}
	ca.LastMismatch, ca.LastMismatchFiles = cov.LastMismatch, cov.LastMismatchFiles
	if err := a.e.Store.SaveCoverage(cov); err != nil {
		a.e.logf("audit %s: %v", c.Name(), err)
	}
	ca.SourceBytes = a.sourceRead - readBefore
	ca.Duration = time.Since(t0)
	a.e.logf("audit %s: %d of %d segments hashed (%s on the copy, %s of the source) in %s; %.1f%% of %s compared within %s",
		c.Name(), ca.HashedFiles, ca.Files, alert.Size(ca.HashedBytes), alert.Size(ca.SourceBytes), ca.Duration.Round(time.Millisecond),
		100*ca.Covered, alert.Size(ca.Bytes), alert.Limit(a.cover))
	return ca, out
}

// since is when a segment was last known equal, or first seen.
func since(f state.CoveredFile) time.Time {
	if f.Verified.IsZero() {
		return f.Seen
	}
	return f.Verified
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// auditRepo compares tonight's share of repo's segments in copy c.
func (a *auditor) auditRepo(ctx context.Context, c AuditCopy, repo, path string, cov *state.Coverage, ca *state.CopyAudit) (alert.Mismatch, error) {
	mm := alert.Mismatch{Copy: c.Name(), Repo: repo, Snapshots: c.Snapshots}
	src, err := a.source(ctx, repo, path)
	if err != nil {
		return mm, fmt.Errorf("the repo: %w", err)
	}
	dstFiles, err := c.List(ctx, repo)
	if c.Snapshots && err != nil && !errors.Is(err, copies.ErrNoRepo) {
		a.unsure[repo] = true
	}
	if errors.Is(err, copies.ErrNoRepo) {
		if !c.Snapshots {
			ca.Lagging += len(src.segs)
		}
		delete(cov.Repos, repo)
		return mm, nil
	}
	if err != nil {
		return mm, err
	}
	files := cov.Repos[repo]
	if files == nil {
		files = map[string]state.CoveredFile{}
	}
	seen := a.seenOf(repo)
	// Follow the segments both hold (a snapshot's past: those the repo
	// or its first-seen record knows); forget what either dropped.
	next := map[string]state.CoveredFile{}
	for _, f := range dstFiles {
		seg := segmentOf(c, f.Path)
		if !borg.Immutable(seg) {
			continue
		}
		srcSize, inSource := src.size[seg]
		switch {
		case !inSource && !c.Snapshots:
			continue // freed by compaction since the copy's last sync
		case !inSource:
			a.hold(repo, seg)
			if rec, ok := seen.Segments[seg]; ok && rec.SHA256 != "" && rec.Size != f.Size {
				mm.Files = append(mm.Files, fmt.Sprintf("%s: %d bytes on the copy, %d when first seen in the %s", f.Path, f.Size, rec.Size, rec.In))
				continue
			}
		case srcSize != f.Size:
			mm.Files = append(mm.Files, fmt.Sprintf("%s: %d bytes on the copy, %d in the repo", f.Path, f.Size, srcSize))
			continue
		}
		cf, ok := files[f.Path]
		if !ok || cf.Size != f.Size {
			cf = state.CoveredFile{Size: f.Size, Seen: a.now}
		}
		next[f.Path] = cf
	}
	if c.Snapshots {
		carryCoverage(files, next)
	} else {
		ca.Lagging += len(src.segs.Minus(readRepoFiles(dstFiles).segs))
	}
	due := a.due(next)
	if len(due) > 0 {
		theirs, err := c.Hash(ctx, repo, due)
		if err != nil {
			cov.Repos[repo] = next
			return mm, fmt.Errorf("hash on the copy: %w", err)
		}
		var inRepo []string
		for _, p := range due {
			if _, ok := src.size[segmentOf(c, p)]; ok {
				inRepo = append(inRepo, segmentOf(c, p))
			}
		}
		ours, err := a.sourceSums(ctx, repo, path, inRepo)
		if err != nil {
			cov.Repos[repo] = next
			return mm, fmt.Errorf("hash in the repo: %w", err)
		}
		for i, t := range theirs {
			seg := segmentOf(c, due[i])
			o, where := ours[seg], "in the repo"
			if _, ok := src.size[seg]; !ok {
				o, where = a.firstSeen(c, repo, seg, t)
			}
			ca.HashedFiles++
			ca.HashedBytes += uint64(t.Size)
			switch {
			case o.Err != "":
				mm.Files = append(mm.Files, fmt.Sprintf("%s: unreadable in the repo: %s", t.Path, o.Err))
			case t.Err != "":
				mm.Files = append(mm.Files, fmt.Sprintf("%s: unreadable on the copy: %s", t.Path, t.Err))
			case t.SHA256 != o.SHA256:
				mm.Files = append(mm.Files, fmt.Sprintf("%s: SHA-256 %s on the copy, %s %s", t.Path, t.SHA256, o.SHA256, where))
			default:
				cf := next[t.Path]
				cf.Verified = a.now
				next[t.Path] = cf
			}
		}
	}
	cov.Repos[repo] = next
	sort.Strings(mm.Files)
	return mm, nil
}

// segmentOf is the repo's path of a copy's file: a snapshot's
// VERSION/PATH is PATH.
func segmentOf(c AuditCopy, p string) string {
	if c.Snapshots {
		_, p, _ = strings.Cut(p, "/")
	}
	return p
}

// carryCoverage keeps a snapshot file's coverage when the file is named
// from a newer snapshot tonight (retention removed the one it was named
// from): the same segment, the same size, no longer listed by its old
// name.
func carryCoverage(old, next map[string]state.CoveredFile) {
	gone := map[string]state.CoveredFile{}
	for p, cf := range old {
		if _, ok := next[p]; !ok {
			_, seg, _ := strings.Cut(p, "/")
			gone[seg] = cf
		}
	}
	for p, cf := range next {
		if _, ok := old[p]; ok {
			continue
		}
		_, seg, _ := strings.Cut(p, "/")
		if g, ok := gone[seg]; ok && g.Size == cf.Size {
			next[p] = g
			delete(gone, seg)
		}
	}
}

// due picks tonight's share of files: every one that would pass the cover
// period before the next night's run, then the least recently compared
// until about 1/cover of the bytes is read.
func (a *auditor) due(files map[string]state.CoveredFile) []string {
	type cand struct {
		path string
		f    state.CoveredFile
	}
	var all []cand
	var total int64
	for p, f := range files {
		all = append(all, cand{p, f})
		total += f.Size
	}
	sort.Slice(all, func(i, j int) bool {
		ti, tj := since(all[i].f), since(all[j].f)
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		// A file never compared before one compared at the same time
		// (first seen the night the other was last compared).
		if vi, vj := all[i].f.Verified.IsZero(), all[j].f.Verified.IsZero(); vi != vj {
			return vi
		}
		return all[i].path < all[j].path
	})
	days := int64(a.cover / (24 * time.Hour))
	budget := (total + days - 1) / max(days, 1)
	// A run a day at about the same time: a segment must be compared
	// tonight when waiting for tomorrow's run (plus some slack for a late
	// start) would take it past the cover period.
	deadline := a.cover - 24*time.Hour - 6*time.Hour
	var out []string
	for _, c := range all {
		overdue := a.now.Sub(since(c.f)) >= deadline
		if !overdue && budget <= 0 {
			break
		}
		out = append(out, c.path)
		budget -= c.f.Size
	}
	slices.Sort(out)
	return out
}

// source is repo's listing, made once a night.
func (a *auditor) source(ctx context.Context, repo, path string) (repoFiles, error) {
	if src, ok := a.srcs[repo]; ok {
		return src, nil
	}
	src, err := listRepo(ctx, path)
	if err == nil {
		a.srcs[repo] = src
	}
	return src, err
}

// seenOf is repo's first-seen record (an empty one when none was read).
func (a *auditor) seenOf(repo string) *state.FirstSeen {
	if a.seen[repo] == nil {
		a.seen[repo] = &state.FirstSeen{Repo: repo, Segments: map[string]state.SeenSegment{}}
	}
	return a.seen[repo]
}

// hold notes a segment the repo no longer has that a snapshot holds: its
// first-seen record stays.
func (a *auditor) hold(repo, seg string) {
	if a.held[repo] == nil {
		a.held[repo] = map[string]bool{}
	}
	a.held[repo][seg] = true
}

// recordSeen keeps the first-seen record of repo's segments: a segment
// new since the last audit is hashed in the repo tonight (the nights'
// new segments, a small read), one the repo held when the audit first ran
// a cover period's share a night. The segments the mirrors' audit hashes
// in the repo are recorded as they go (sourceSums).
func (a *auditor) recordSeen(ctx context.Context, repo, path string, stats *state.AuditStats) error {
	src, err := a.source(ctx, repo, path)
	if err != nil {
		return err
	}
	seen, existed, err := a.e.Store.LoadFirstSeen(repo)
	if err != nil {
		a.e.logf("audit: %v (starting afresh)", err)
	}
	a.seen[repo] = seen
	var fresh, backlog []string
	var total int64
	for p, size := range src.size {
		if !borg.Immutable(p) {
			continue
		}
		total += size
		rec, ok := seen.Segments[p]
		if !ok {
			rec = state.SeenSegment{Size: size, Seen: a.now}
			seen.Segments[p] = rec
			if existed {
				fresh = append(fresh, p)
				continue
			}
		}
		if rec.SHA256 == "" {
			backlog = append(backlog, p)
		}
	}
	sort.Slice(backlog, func(i, j int) bool {
		ti, tj := seen.Segments[backlog[i]].Seen, seen.Segments[backlog[j]].Seen
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return backlog[i] < backlog[j]
	})
	days := int64(a.cover / (24 * time.Hour))
	budget := (total + days - 1) / max(days, 1)
	need := fresh
	for _, p := range backlog {
		if budget <= 0 {
			break
		}
		need = append(need, p)
		budget -= src.size[p]
	}
	if _, err := a.sourceSums(ctx, repo, path, need); err != nil {
		return err
	}
	var read uint64
	for _, p := range need {
		read += uint64(src.size[p])
	}
	stats.FirstSeenFiles += len(need)
	stats.FirstSeenBytes += read
	a.e.logf("audit %s: %d new segments and %d of %d not yet recorded hashed in the repo for the first-seen record (%s)",
		repo, len(fresh), len(need)-len(fresh), len(backlog), alert.Size(read))
	return nil
}

// firstSeen is what a snapshot's segment the repo no longer holds is
// compared with: its first-seen record, and the words for it. A segment
// never hashed before the repo dropped it is recorded as the snapshot has
// it now (nothing older exists to compare with), and says so in the log.
func (a *auditor) firstSeen(c AuditCopy, repo, seg string, theirs copies.File) (copies.File, string) {
	seen := a.seenOf(repo)
	if rec, ok := seen.Segments[seg]; ok && rec.SHA256 != "" {
		return copies.File{Path: seg, Size: rec.Size, SHA256: rec.SHA256}, "when first seen in the " + rec.In + " on " + rec.Seen.Format(time.DateOnly)
	}
	if theirs.Err == "" {
		seen.Segments[seg] = state.SeenSegment{Size: theirs.Size, SHA256: theirs.SHA256, Seen: a.now, In: c.Name()}
		a.e.logf("audit %s: %s/%s was never hashed while the repo held it: recorded as first seen here, nothing older to compare it with", c.Name(), repo, theirs.Path)
	}
	return theirs, "as first seen"
}

// saveSeen keeps each repo's first-seen record of the segments the repo
// or a snapshot still holds.
func (a *auditor) saveSeen() {
	for repo, seen := range a.seen {
		if src, ok := a.srcs[repo]; ok && !a.unsure[repo] {
			for p := range seen.Segments {
				if _, in := src.size[p]; !in && !a.held[repo][p] {
					delete(seen.Segments, p)
				}
			}
		}
		if err := a.e.Store.SaveFirstSeen(seen); err != nil {
			a.e.logf("audit: %v", err)
		}
	}
}

// sourceSums hashes the repo's side of paths, once a night each.
func (a *auditor) sourceSums(ctx context.Context, repo, path string, paths []string) (map[string]copies.File, error) {
	got := a.sums[repo]
	if got == nil {
		got = map[string]copies.File{}
		a.sums[repo] = got
	}
	var need []string
	for _, p := range paths {
		if _, ok := got[p]; !ok {
			need = append(need, p)
		}
	}
	if len(need) > 0 {
		fs, err := copies.Dir{Label: "repo", Path: func(string) string { return path }}.Hash(ctx, repo, need)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			got[f.Path] = f
			a.sourceRead += uint64(f.Size)
			a.noteSeen(repo, f)
		}
	}
	return got, nil
}

// noteSeen records a segment's sum as the repo has it, the first time it
// is hashed there; a sum that differs from the one first seen is a
// segment changed in the repo itself, which the log says.
func (a *auditor) noteSeen(repo string, f copies.File) {
	seen, ok := a.seen[repo]
	if !ok || f.Err != "" || !borg.Immutable(f.Path) {
		return
	}
	rec, ok := seen.Segments[f.Path]
	switch {
	case !ok || rec.SHA256 == "":
		seen.Segments[f.Path] = state.SeenSegment{Size: f.Size, SHA256: f.SHA256, Seen: a.now, In: "repo"}
	case rec.SHA256 != f.SHA256 || rec.Size != f.Size:
		a.e.logf("audit: %s/%s differs in the repo from when it was first seen in the %s on %s (SHA-256 %s, then %s)",
			repo, f.Path, rec.In, rec.Seen.Format(time.DateOnly), f.SHA256, rec.SHA256)
	}
}
