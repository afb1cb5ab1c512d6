package jobs

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs/copies"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// repoFiles is a listing of a repo's directory (in any copy) read the
// way borg writes it: immutable segments and the files around them.
type repoFiles struct {
	files    []copies.File
	size     map[string]int64
	segs     borg.Segments
	segBytes uint64
	// top are the files outside data/ (config, nonce, index.N, ...).
	top []string
}

func readRepoFiles(files []copies.File) repoFiles {
	rf := repoFiles{files: files, size: make(map[string]int64, len(files))}
	var segs []uint64
	for _, f := range files {
		rf.size[f.Path] = f.Size
		if n, ok := borg.Segment(f.Path); ok {
			segs = append(segs, n)
			rf.segBytes += uint64(f.Size)
		} else if !strings.HasPrefix(f.Path, borg.DataDir+"/") {
			rf.top = append(rf.top, f.Path)
		}
	}
	rf.segs = borg.NewSegments(segs)
	return rf
}

// segmentPath is where segment n lies in a repo (borg's default of 1000
// segments a directory), for messages.
func (rf repoFiles) segmentPath(n uint64) string {
	for _, f := range rf.files {
		if m, ok := borg.Segment(f.Path); ok && m == n {
			return f.Path
		}
	}
	return fmt.Sprintf("%s/%d/%d", borg.DataDir, n/1000, n)
}

// listRepo lists a local repo's directory.
func listRepo(ctx context.Context, dir string) (repoFiles, error) {
	files, err := copies.Dir{Label: "repo", Path: func(string) string { return dir }}.List(ctx, "")
	if err != nil {
		return repoFiles{}, err
	}
	return readRepoFiles(files), nil
}

// repoFiles lists repo r's directory for the records. A remote repo's
// directory is the borg server's: its records carry archives and figures,
// not segments, and no mirror of it is kept here to guard.
func (e *Env) repoFiles(ctx context.Context, r *config.Repo) (repoFiles, error) {
	if r.Remote() {
		return repoFiles{}, nil
	}
	return listRepo(ctx, r.Path)
}

// freedKeep is how long the record remembers the segments a night freed:
// a mirror that has not synced for longer must have its removals accepted
// by hand (borgkit job sync --accept-source).
const freedKeep = 120 * 24 * time.Hour

// maxRecent bounds the figures kept for the suspicious-night check.
const maxRecent = 60

// vanished compares the repo with what the last nightly recorded: segments
// and archives that are gone although borgkit did not remove them. A
// segment gone without a borg transaction since is damage: no backup may
// build on it. With a transaction since, borg was run by hand; the night
// goes on with a warning, and the mirrors keep their copies until the
// change is accepted.
func vanishedSegments(prev *state.RepoRecord, now repoFiles, top []string) (gone borg.Segments, byBorg bool, err error) {
	recorded, err := borg.ParseSegments(prev.Segments)
	if err != nil {
		return nil, false, fmt.Errorf("repo record %s: %w", prev.Name, err)
	}
	gone = recorded.Minus(now.segs)
	if len(gone) == 0 {
		return nil, false, nil
	}
	last, ok := borg.LastCommit(top)
	return gone, ok && last > recorded.Max(), nil
}

// createResult is what borg create --json tells of the night's archive.
type createResult struct {
	figures state.ArchiveFigures
	repoID  string
	// encryption is the repo's mode ("repokey-blake2").
	encryption string
}

// borg 1.2's prune --list lines: "Keeping archive (rule: daily #1):
// NAME  DATE [ID]" and "Pruning archive (1/2): NAME  DATE [ID]".
var (
	keepingRE = regexp.MustCompile(`(?m)^Keeping archive(?: \([^)]*\))?:\s+(\S+)`)
	pruningRE = regexp.MustCompile(`(?m)^(?:Pruning|Would prune) archive(?: \([^)]*\))?:\s+(\S+)`)
)

// pruneLists reads borg prune --list: the archives kept and pruned.
func pruneLists(stderr []byte) (kept, pruned []string) {
	for _, m := range keepingRE.FindAllSubmatch(stderr, -1) {
		kept = append(kept, string(m[1]))
	}
	for _, m := range pruningRE.FindAllSubmatch(stderr, -1) {
		pruned = append(pruned, string(m[1]))
	}
	return kept, pruned
}

// saveRepoRecord writes what tonight left of repo r. expected are the
// archives it must hold (kept by the prune, plus any that vanished
// without borgkit pruning them: the sync refuses until they are
// accepted); freed the segments tonight's borg runs removed.
func (e *Env) saveRepoRecord(r *config.Repo, prev *state.RepoRecord, cr createResult, expected []string, after repoFiles, freed borg.Segments) {
	rec := state.RepoRecord{Name: r.Name, Path: r.Path, ID: cr.repoID, Encryption: cr.encryption, Updated: e.Now(),
		Archives: expected, Newest: cr.figures.Archive,
		Segments: after.segs.String(), SegmentCount: len(after.segs), SegmentBytes: after.segBytes}
	if prev != nil {
		for _, f := range prev.Freed {
			if e.Now().Sub(f.At) < freedKeep {
				rec.Freed = append(rec.Freed, f)
			}
		}
		rec.Recent = prev.Recent
		if rec.ID == "" {
			rec.ID = prev.ID
		}
		if rec.Encryption == "" {
			rec.Encryption = prev.Encryption
		}
	}
	if len(freed) > 0 {
		rec.Freed = append(rec.Freed, state.FreedSegments{At: e.Now(), Segments: freed.String()})
	}
	if cr.figures.Archive != "" {
		rec.Recent = append(rec.Recent, cr.figures)
		if len(rec.Recent) > maxRecent {
			rec.Recent = rec.Recent[len(rec.Recent)-maxRecent:]
		}
	}
	slices.Sort(rec.Archives)
	rec.Archives = slices.Compact(rec.Archives)
	if err := e.Store.SaveRepo(&rec); err != nil {
		e.logf("%s: %v", r.Name, err)
	}
}

// noteFreed adds to repo r's record the segments a failed night's borg
// removed, the rest of the record as it was.
func (e *Env) noteFreed(ctx context.Context, r *config.Repo, prev *state.RepoRecord, before repoFiles) {
	now, err := e.repoFiles(ctx, r)
	if err != nil {
		return
	}
	freed := before.segs.Minus(now.segs)
	if len(freed) == 0 {
		return
	}
	rec := state.RepoRecord{Name: r.Name, Path: r.Path}
	if prev != nil {
		rec = *prev
	}
	rec.Freed = append(rec.Freed, state.FreedSegments{At: e.Now(), Segments: freed.String()})
	if err := e.Store.SaveRepo(&rec); err != nil {
		e.logf("%s: %v", r.Name, err)
	}
}

// freedSince is every segment the records say borgkit's own runs removed.
func freedSince(rec *state.RepoRecord) (borg.Segments, error) {
	if rec == nil {
		return nil, nil
	}
	var all []uint64
	for _, f := range rec.Freed {
		s, err := borg.ParseSegments(f.Segments)
		if err != nil {
			return nil, fmt.Errorf("repo record %s: %w", rec.Name, err)
		}
		all = append(all, s...)
	}
	return borg.NewSegments(all), nil
}
