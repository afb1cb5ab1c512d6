package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// RepoRecord is what the nightly job knows of one repo across nights, in
// DIR/repos/NAME.json beside the job records. The sync compares a source
// with it before it lets rsync --delete anything on a mirror, and the
// nightly judges each new archive against the recent ones. It is written
// only after a night that changed the repo the way borgkit meant to.
type RepoRecord struct {
	Name string `json:"name"`
	Path string `json:"path"`
	// ID is the repository id (its config's, as borg create reports it).
	ID string `json:"id"`
	// Encryption is the repo's encryption mode as borg create reported it
	// ("repokey-blake2"): with Path and Updated, what lets provision trust
	// a remote repo the last nightly used instead of asking the server.
	Encryption string    `json:"encryption,omitempty"`
	Updated    time.Time `json:"updated"`
	// Archives are the nightly archives the repo kept after the prune,
	// Newest the one the night created.
	Archives []string `json:"archives"`
	Newest   string   `json:"newest"`
	// Segments are the segment numbers the repo held when the nightly
	// was done (borg.Segments ranges), SegmentBytes their total size.
	Segments     string `json:"segments"`
	SegmentCount int    `json:"segment_count"`
	SegmentBytes uint64 `json:"segment_bytes"`
	// Freed are the segments the nightly's own borg runs removed
	// (compaction, the rollback of a killed create), by night: a mirror
	// may drop these and only these.
	Freed []FreedSegments `json:"freed,omitempty"`
	// Recent are the figures of the last nights' archives, oldest first.
	Recent []ArchiveFigures `json:"recent,omitempty"`
}

// FreedSegments are the segments one night removed.
type FreedSegments struct {
	At       time.Time `json:"at"`
	Segments string    `json:"segments"`
}

// ArchiveFigures are one archive's figures, from borg create --json.
type ArchiveFigures struct {
	Archive string    `json:"archive"`
	At      time.Time `json:"at"`
	Files   int64     `json:"files"`
	// OriginalBytes is what the archive holds; NewBytes what it added to
	// the repo after deduplication (a night of mass encryption adds
	// about all of it).
	OriginalBytes uint64 `json:"original_bytes"`
	NewBytes      uint64 `json:"new_bytes"`
}

// Kinds of side records, each a directory of the state directory. LoadAll
// skips directories, so these never pass for job records.
const (
	kindRepos = "repos"
	kindAudit = "audit"
	kindSeen  = "audit-first-seen"
)

// LoadRepo reads repo's record; for a repo never recorded the error wraps
// fs.ErrNotExist.
func (s *Store) LoadRepo(name string) (*RepoRecord, error) {
	var r RepoRecord
	if err := s.loadSide(kindRepos, name, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RepoPath is where repo name's record lies.
func (s *Store) RepoPath(name string) (string, error) { return s.sidePath(kindRepos, name) }

// SaveRepo replaces the record of r.Name.
func (s *Store) SaveRepo(r *RepoRecord) error { return s.saveSide(kindRepos, r.Name, r) }

func (s *Store) sidePath(kind, name string) (string, error) {
	if !sideNameRE(name) {
		return "", fmt.Errorf("%s record %q: not a plain name", kind, name)
	}
	return filepath.Join(s.dir(), kind, name+".json"), nil
}

// sideNameRE admits the names repos and copies may have (letters, digits,
// '-', '_', '.'), never a path.
func sideNameRE(name string) bool {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return false
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

func (s *Store) loadSide(kind, name string, v any) error {
	p, err := s.sidePath(kind, name)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read %s record %s: %w", kind, name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s record %s: %s: %w", kind, name, p, err)
	}
	return nil
}

func (s *Store) saveSide(kind, name string, v any) error {
	p, err := s.sidePath(kind, name)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s record %s: %w", kind, name, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s record %s: %w", kind, name, err)
	}
	if err := writeFileAtomic(p, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s record %s: %w", kind, name, err)
	}
	return nil
}

// Coverage is the audit's memory of one copy: when each segment of each
// repo was first seen in it and last found equal to the repo's, in
// DIR/audit/COPY.json.
type Coverage struct {
	Copy  string                            `json:"copy"`
	Repos map[string]map[string]CoveredFile `json:"repos"`
	// LastMismatch is when the audit last found a file of this copy that
	// differs, and which ("repo/path").
	LastMismatch      time.Time `json:"last_mismatch,omitzero"`
	LastMismatchFiles []string  `json:"last_mismatch_files,omitempty"`
}

// CoveredFile is one segment of a copy.
type CoveredFile struct {
	Size     int64     `json:"size"`
	Seen     time.Time `json:"seen"`
	Verified time.Time `json:"verified,omitzero"`
}

// LoadCoverage reads copy's coverage; a copy never audited has an empty one.
func (s *Store) LoadCoverage(copyName string) (*Coverage, error) {
	c := &Coverage{Copy: copyName}
	if err := s.loadSide(kindAudit, copyName, c); err != nil && !IsNotExist(err) {
		return &Coverage{Copy: copyName}, err
	}
	if c.Repos == nil {
		c.Repos = map[string]map[string]CoveredFile{}
	}
	return c, nil
}

// SaveCoverage replaces c.Copy's coverage.
func (s *Store) SaveCoverage(c *Coverage) error { return s.saveSide(kindAudit, c.Copy, c) }

// FirstSeen is the audit's record of one repo's segments as it first saw
// them in the repo, in DIR/audit-first-seen/REPO.json. A segment never
// changes once written, so a copy of one that compaction has since removed
// from the repo (one only an offsite snapshot holds) is compared with
// this.
type FirstSeen struct {
	Repo     string                 `json:"repo"`
	Segments map[string]SeenSegment `json:"segments"`
}

// SeenSegment is one segment as first seen; a SHA256 still empty is one
// listed but not hashed yet (the repo's segments when the audit first
// ran, hashed a share a night).
type SeenSegment struct {
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256,omitempty"`
	Seen   time.Time `json:"seen"`
	// In is where the sum was taken: "repo", or a copy's name when the
	// repo no longer held the segment (a first sight in a snapshot).
	In string `json:"in,omitempty"`
}

// LoadFirstSeen reads repo's first-seen record; ok is false for a repo
// the audit never listed.
func (s *Store) LoadFirstSeen(repo string) (f *FirstSeen, ok bool, err error) {
	f = &FirstSeen{Repo: repo}
	err = s.loadSide(kindSeen, repo, f)
	ok = err == nil
	if IsNotExist(err) {
		err = nil
	}
	if f.Segments == nil {
		f.Segments = map[string]SeenSegment{}
	}
	return f, ok, err
}

// SaveFirstSeen replaces f.Repo's first-seen record.
func (s *Store) SaveFirstSeen(f *FirstSeen) error { return s.saveSide(kindSeen, f.Repo, f) }

// IsNotExist reports whether err says a record was never written.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
