package borg

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// What a borg 1.x repository is made of on disk. Segments, data/D/N, are
// written once and never changed: a compaction writes new segments with
// higher numbers and deletes old ones, and every transaction ends with a
// new commit segment N and the files index.N, hints.N and integrity.N
// (the older ones are deleted). config, nonce and README are rewritten in
// place: their size may stay while their content changes.

// DataDir holds the segments, below the repo's directory.
const DataDir = "data"

// Segment is the number of the segment at rel, a path relative to the
// repo ("data/0/17"); ok is false for any other file.
func Segment(rel string) (n uint64, ok bool) {
	dir, file := path.Split(rel)
	parent, group := path.Split(strings.TrimSuffix(dir, "/"))
	if parent != DataDir+"/" || !digits(group) || !digits(file) {
		return 0, false
	}
	n, err := strconv.ParseUint(file, 10, 64)
	return n, err == nil
}

// Immutable reports whether the file at rel (relative to the repo) is a
// segment: equal size means equal content, unless something other than
// borg wrote it.
func Immutable(rel string) bool {
	_, ok := Segment(rel)
	return ok
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// transactionFiles end every committed transaction, each named NAME.N.
var transactionFiles = []string{"index", "hints", "integrity"}

// LastCommit is the newest transaction the repo's top-level file names
// show complete: the highest N with index.N, hints.N and integrity.N all
// present. ok is false when there is none (no index: borg would rebuild
// it by replaying every segment, writing to the repo as it does).
func LastCommit(names []string) (n uint64, ok bool) {
	count := map[uint64]int{}
	for _, name := range names {
		base, num, found := strings.Cut(name, ".")
		if !found || !slices.Contains(transactionFiles, base) || !digits(num) {
			continue
		}
		if v, err := strconv.ParseUint(num, 10, 64); err == nil {
			count[v]++
		}
	}
	for v, c := range count {
		if c == len(transactionFiles) && (!ok || v > n) {
			n, ok = v, true
		}
	}
	return n, ok
}

// RepoID is the id in a repository's config file ([repository] id = HEX).
func RepoID(config []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(config))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	section := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line
			continue
		}
		k, v, found := strings.Cut(line, "=")
		if section == "[repository]" && found && strings.TrimSpace(k) == "id" {
			id := strings.TrimSpace(v)
			if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
				return "", fmt.Errorf("repository id %q is not 64 hex digits", truncate(id, 80))
			}
			return id, nil
		}
	}
	return "", fmt.Errorf("no [repository] id")
}

// Segments is a set of segment numbers, written as ranges ("0-57,60,62-99")
// so that a repo's thousands of segments stay a short string in a record.
type Segments []uint64

// NewSegments is the set of ns, sorted and without repeats.
func NewSegments(ns []uint64) Segments {
	s := slices.Clone(ns)
	slices.Sort(s)
	return Segments(slices.Compact(s))
}

// Has reports whether n is in the set.
func (s Segments) Has(n uint64) bool {
	_, found := slices.BinarySearch(s, n)
	return found
}

// Max is the highest segment (0 for an empty set).
func (s Segments) Max() uint64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

// Minus is the segments of s not in t.
func (s Segments) Minus(t Segments) Segments {
	var out Segments
	for _, n := range s {
		if !t.Has(n) {
			out = append(out, n)
		}
	}
	return out
}

// String writes the ranges.
func (s Segments) String() string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(s[i], 10))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.FormatUint(s[j], 10))
		}
		i = j + 1
	}
	return b.String()
}

// maxSegmentRange bounds one range of a parsed set: a record is data a
// person could edit, and "0-18446744073709551615" must not allocate it.
const maxSegmentRange = 10_000_000

// ParseSegments reads what String writes.
func ParseSegments(v string) (Segments, error) {
	var out []uint64
	if v == "" {
		return nil, nil
	}
	for _, part := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("segments %q: %w", truncate(v, 80), err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a || b-a > maxSegmentRange {
				return nil, fmt.Errorf("segments %q: bad range %q", truncate(v, 80), part)
			}
		}
		for n := a; ; n++ {
			out = append(out, n)
			if n == b {
				break
			}
		}
	}
	return NewSegments(out), nil
}
