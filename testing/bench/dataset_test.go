package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// small is a data set small enough for a unit test, shaped like the real one.
var small = Dataset{Seed: 7, Files: 60, Bytes: 2 << 20}

func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		h.Write([]byte(rel + "\x00"))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestDatasetDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if err := small.Generate(d); err != nil {
			t.Fatal(err)
		}
	}
	if treeDigest(t, a) != treeDigest(t, b) {
		t.Fatal("the same seed made two different trees")
	}
	other := small
	other.Seed++
	c := t.TempDir()
	if err := other.Generate(c); err != nil {
		t.Fatal(err)
	}
	if treeDigest(t, a) == treeDigest(t, c) {
		t.Fatal("another seed made the same tree")
	}
	ca, err := small.Night(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := small.Night(b, 1)
	if !slices.Equal(ca, cb) || treeDigest(t, a) != treeDigest(t, b) {
		t.Fatal("night 1 changed the two trees differently")
	}
}

func TestDatasetShape(t *testing.T) {
	specs := DefaultDataset.Specs()
	if len(specs) != 2000 {
		t.Fatalf("%d files", len(specs))
	}
	var total, largest int64
	var text int
	seen := map[string]bool{}
	for _, s := range specs {
		total += s.Size
		largest = max(largest, s.Size)
		if s.Text {
			text++
		}
		if seen[s.Path] || s.Size < 0 {
			t.Fatalf("bad spec %+v", s)
		}
		seen[s.Path] = true
	}
	if total != 300<<20 {
		t.Errorf("total %d bytes, want exactly 300 MiB", total)
	}
	if largest < 4<<20 || text < 600 || text > 1000 {
		t.Errorf("not mixed: largest file %d bytes, %d text files", largest, text)
	}
}

func TestNightChangesFivePercent(t *testing.T) {
	dir := t.TempDir()
	if err := small.Generate(dir); err != nil {
		t.Fatal(err)
	}
	before := treeDigest(t, dir)
	changed, err := small.Night(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 3 { // 5 % of 60
		t.Fatalf("%d files changed, want 3", len(changed))
	}
	if treeDigest(t, dir) == before {
		t.Fatal("night 1 changed nothing")
	}
	for _, s := range small.Specs() {
		fi, err := os.Stat(filepath.Join(dir, s.Path))
		if err != nil || fi.Size() != s.Size {
			t.Fatalf("%s: %v, size %d want %d", s.Path, err, fi.Size(), s.Size)
		}
	}
	next, _ := small.Night(dir, 2)
	if slices.Equal(changed, next) {
		t.Fatal("nights 1 and 2 changed the same files")
	}
}
