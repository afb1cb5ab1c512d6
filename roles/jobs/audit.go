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
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/copies"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// AuditCopy is one copy the audit compares with the repos.
type AuditCopy struct {
	copies.Copy
	// Partial is a copy that holds an older state of the repos (an
	// offsite snapshot): only its segments the repo still has are
	// compared, and the repo's segments it lacks are not "lagging".
	Partial bool
}

// auditCopies are the copies of this host's repos: each mirror not
// revoked, and whatever Env.ExtraCopies adds (the offsite snapshots).
func (e *Env) auditCopies() []AuditCopy {
	var out []AuditCopy
	for i := range e.Host.Mirrors {
		m := &e.Host.Mirrors[i]
		if e.revoked(m) {
			e.logf("%s: %s's unlock is revoked: not audited", m.Name, m.Host)
			continue
		}
		out = append(out, AuditCopy{Copy: e.copyOf(m)})
	}
	if e.ExtraCopies != nil {
		out = append(out, e.ExtraCopies(e)...)
	}
	return out
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
	a := &auditor{e: e, cover: time.Duration(cover) * 24 * time.Hour, now: e.Now(), sums: map[string]map[string]copies.File{}}
	var mismatches []alert.Mismatch
	failed := 0
	for _, c := range e.auditCopies() {
		ca, ms := a.audit(ctx, c)
		stats.Copies = append(stats.Copies, ca)
		mismatches = append(mismatches, ms...)
		if ca.Status == "failed" {
			failed++
		}
	}
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
	mm := alert.Mismatch{Copy: c.Name(), Repo: repo}
	src, err := listRepo(ctx, path)
	if err != nil {
		return mm, fmt.Errorf("the repo: %w", err)
	}
	dstFiles, err := c.List(ctx, repo)
	if errors.Is(err, copies.ErrNoRepo) {
		if !c.Partial {
			ca.Lagging += len(src.segs)
		}
		delete(cov.Repos, repo)
		return mm, nil
	}
	if err != nil {
		return mm, err
	}
	dst := readRepoFiles(dstFiles)
	files := cov.Repos[repo]
	if files == nil {
		files = map[string]state.CoveredFile{}
	}
	// Follow the segments both hold; forget what either dropped.
	next := map[string]state.CoveredFile{}
	for _, f := range dst.files {
		if !borg.Immutable(f.Path) {
			continue
		}
		srcSize, inSource := src.size[f.Path]
		if !inSource {
			continue // freed by compaction since the copy's last sync, or a snapshot's past
		}
		if srcSize != f.Size {
			mm.Files = append(mm.Files, fmt.Sprintf("%s: %d bytes on the copy, %d in the repo", f.Path, f.Size, srcSize))
			continue
		}
		cf, ok := files[f.Path]
		if !ok || cf.Size != f.Size {
			cf = state.CoveredFile{Size: f.Size, Seen: a.now}
		}
		next[f.Path] = cf
	}
	if !c.Partial {
		ca.Lagging += len(src.segs.Minus(dst.segs))
	}
	due := a.due(next)
	if len(due) > 0 {
		theirs, err := c.Hash(ctx, repo, due)
		if err != nil {
			cov.Repos[repo] = next
			return mm, fmt.Errorf("hash on the copy: %w", err)
		}
		ours, err := a.sourceSums(ctx, repo, path, due)
		if err != nil {
			cov.Repos[repo] = next
			return mm, fmt.Errorf("hash in the repo: %w", err)
		}
		for i, t := range theirs {
			o := ours[due[i]]
			ca.HashedFiles++
			ca.HashedBytes += uint64(t.Size)
			switch {
			case o.Err != "":
				mm.Files = append(mm.Files, fmt.Sprintf("%s: unreadable in the repo: %s", t.Path, o.Err))
			case t.Err != "":
				mm.Files = append(mm.Files, fmt.Sprintf("%s: unreadable on the copy: %s", t.Path, t.Err))
			case t.SHA256 != o.SHA256:
				mm.Files = append(mm.Files, fmt.Sprintf("%s: SHA-256 %s on the copy, %s in the repo", t.Path, t.SHA256, o.SHA256))
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
		}
	}
	return got, nil
}
