package bench

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Dataset is a reproducible home-directory-like tree: the same seed gives
// the same names, sizes and bytes on every machine, so runs compare.
type Dataset struct {
	Seed  uint64
	Files int
	// Bytes is the total the generated files add up to (about, see below).
	Bytes int64
}

// DefaultDataset is the data set: ~2,000 files, ~300 MiB.
var DefaultDataset = Dataset{Seed: 1, Files: 2000, Bytes: 300 << 20}

// FileSpec is one file of the data set.
type FileSpec struct {
	Path string // relative, slash-separated
	Size int64
	// Text files compress well (zstd), the rest are incompressible like
	// photos and archives: a backup of either behaves differently.
	Text bool
}

var dirs = []string{"documents", "documents/letters", "photos/2024", "photos/2025", "code/borgkit", "code/notes", "music", "mail/inbox", "vm-images", "misc"}

// Specs lists the data set's files. Sizes are log-uniform in three classes
// (many small, some medium, a few large), then scaled so they add up to
// d.Bytes exactly.
func (d Dataset) Specs() []FileSpec {
	rng := rand.New(rand.NewPCG(d.Seed, 0x5eed))
	specs := make([]FileSpec, d.Files)
	var total float64
	raw := make([]float64, d.Files)
	for i := range specs {
		var lo, hi float64
		switch r := rng.IntN(100); {
		case r < 85:
			lo, hi = 512, 64<<10
		case r < 99:
			lo, hi = 64<<10, 2<<20
		default:
			lo, hi = 4<<20, 48<<20
		}
		raw[i] = math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
		total += raw[i]
		dir := dirs[rng.IntN(len(dirs))]
		text := rng.IntN(100) < 40
		ext := ".bin"
		if text {
			ext = ".txt"
		}
		specs[i] = FileSpec{Path: fmt.Sprintf("%s/f%04d%s", dir, i, ext), Text: text}
	}
	var sum int64
	for i := range specs {
		specs[i].Size = int64(raw[i] / total * float64(d.Bytes))
		sum += specs[i].Size
	}
	specs[0].Size += d.Bytes - sum // rounding
	return specs
}

// Generate writes the data set under dir, which must not hold it yet.
func (d Dataset) Generate(dir string) error {
	for i, s := range d.Specs() {
		if err := writeContent(filepath.Join(dir, filepath.FromSlash(s.Path)), s, d.Seed, 0, i); err != nil {
			return err
		}
	}
	return nil
}

// ChangedFraction is how much of the data set one night changes.
const ChangedFraction = 0.05

// Night applies night n's changes (n >= 1) to a tree Generate made and the
// nights before n changed: ChangedFraction of the files, chosen by the seed
// and n, get new contents of the same kind and size. It returns their paths.
func (d Dataset) Night(dir string, n int) ([]string, error) {
	specs := d.Specs()
	rng := rand.New(rand.NewPCG(d.Seed, uint64(n)))
	k := int(math.Round(float64(len(specs)) * ChangedFraction))
	var changed []string
	for _, i := range rng.Perm(len(specs))[:k] {
		s := specs[i]
		if err := writeContent(filepath.Join(dir, filepath.FromSlash(s.Path)), s, d.Seed, n, i); err != nil {
			return nil, err
		}
		changed = append(changed, s.Path)
	}
	return changed, nil
}

var words = strings.Fields(`backup restore archive segment prune compact mirror offsite
nightly borg repository chunk deduplicate encrypt passphrase keyfile header disk mount
the a of to and in is for on with that this it as be by are from at or an was`)

// writeContent writes file i as it is on night n: its bytes depend only on
// (seed, n, i), so every tool in a run sees the same tree.
func writeContent(path string, s FileSpec, seed uint64, n, i int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("data set: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("data set: %w", err)
	}
	var key [32]byte
	copy(key[:], fmt.Sprintf("%d/%d/%d", seed, n, i))
	src := rand.NewChaCha8(key)
	var r io.Reader = src
	if s.Text {
		r = &textReader{rng: rand.New(src)}
	}
	if _, err := io.CopyN(f, r, s.Size); err != nil {
		f.Close()
		return fmt.Errorf("data set: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("data set: %w", err)
	}
	return nil
}

// textReader yields words and line breaks: compressible like prose or
// source code, but never repeating, so dedup cannot cheat.
type textReader struct {
	rng *rand.Rand
	buf []byte
}

func (t *textReader) Read(p []byte) (int, error) {
	for len(t.buf) < len(p) {
		t.buf = append(t.buf, words[t.rng.IntN(len(words))]...)
		if t.rng.IntN(12) == 0 {
			t.buf = append(t.buf, '\n')
		} else {
			t.buf = append(t.buf, ' ')
		}
		if t.rng.IntN(30) == 0 {
			t.buf = fmt.Appendf(t.buf, "%d ", t.rng.Uint32())
		}
	}
	n := copy(p, t.buf)
	t.buf = t.buf[n:]
	return n, nil
}
