package borg

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/testing/borghome"
)

func TestMain(m *testing.M) { borghome.Main(m) }

func TestSegment(t *testing.T) {
	for _, tc := range []struct {
		rel string
		n   uint64
		ok  bool
	}{
		{"data/0/17", 17, true},
		{"data/12/12345", 12345, true},
		{"data/0", 0, false},
		{"data/0/17/x", 0, false},
		{"data/a/17", 0, false},
		{"data/0/17.tmp", 0, false},
		{"index.17", 0, false},
		{"x/data/0/1", 0, false},
		{"data//1", 0, false},
	} {
		n, ok := Segment(tc.rel)
		if n != tc.n || ok != tc.ok || Immutable(tc.rel) != tc.ok {
			t.Errorf("Segment(%q) = %d, %v; want %d, %v", tc.rel, n, ok, tc.n, tc.ok)
		}
	}
}

func TestLastCommit(t *testing.T) {
	for _, tc := range []struct {
		names []string
		n     uint64
		ok    bool
	}{
		{[]string{"config", "hints.9", "index.9", "integrity.9", "nonce"}, 9, true},
		{[]string{"hints.9", "index.9"}, 0, false},
		{[]string{"hints.9", "index.9", "integrity.9", "hints.12", "index.12", "integrity.12"}, 12, true},
		{[]string{"hints.12", "index.9", "integrity.12", "hints.9", "integrity.9"}, 9, true},
		{[]string{"index.x", "hints.x", "integrity.x"}, 0, false},
		{nil, 0, false},
	} {
		n, ok := LastCommit(tc.names)
		if n != tc.n || ok != tc.ok {
			t.Errorf("LastCommit(%v) = %d, %v; want %d, %v", tc.names, n, ok, tc.n, tc.ok)
		}
	}
}

func TestSegmentsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in   []uint64
		want string
	}{
		{nil, ""},
		{[]uint64{5}, "5"},
		{[]uint64{3, 1, 2, 2, 7, 9, 8, 11}, "1-3,7-9,11"},
	} {
		s := NewSegments(tc.in)
		if s.String() != tc.want {
			t.Errorf("%v: %q, want %q", tc.in, s.String(), tc.want)
		}
		back, err := ParseSegments(s.String())
		if err != nil || !slices.Equal(back, s) {
			t.Errorf("parse %q: %v %v", s.String(), back, err)
		}
	}
	s := NewSegments([]uint64{1, 2, 3, 9})
	if d := s.Minus(NewSegments([]uint64{2, 9})); d.String() != "1,3" || s.Max() != 9 || !s.Has(3) || s.Has(4) {
		t.Fatalf("minus %v max %d", d, s.Max())
	}
	for _, bad := range []string{"1-", "a", "5-3", "0-18446744073709551615", "1,,2"} {
		if _, err := ParseSegments(bad); err == nil {
			t.Errorf("ParseSegments(%q) accepted", bad)
		}
	}
}

// TestRepoFilesOfARealRepo reads what borg 1.2 really writes: the id of a
// new repo, its last commit and its segments.
func TestRepoFilesOfARealRepo(t *testing.T) {
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed (make deps installs it)")
	}
	repo := filepath.Join(t.TempDir(), "r")
	c := exec.Command("borg", "init", "--encryption=none", repo)
	c.Env = append(os.Environ(), Env{Copy: true}.Vars()...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("borg init: %v\n%s", err, out)
	}
	cfg, _ := os.ReadFile(filepath.Join(repo, "config"))
	id, err := RepoID(cfg)
	if err != nil || !strings.Contains(string(cfg), id) {
		t.Fatalf("id %q: %v", id, err)
	}
	ents, _ := os.ReadDir(repo)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	n, ok := LastCommit(names)
	if !ok {
		t.Fatalf("no commit in %v", names)
	}
	if _, err := os.Stat(filepath.Join(repo, "data/0", itoa(n))); err != nil {
		t.Fatalf("the last commit %d has no segment: %v", n, err)
	}
	if _, err := RepoID([]byte("[repository]\nid = nothex\n")); err == nil {
		t.Fatal("a bad id was accepted")
	}
	if _, err := RepoID([]byte("garbage")); err == nil {
		t.Fatal("garbage has an id")
	}
}

func itoa(n uint64) string { return NewSegments([]uint64{n}).String() }
