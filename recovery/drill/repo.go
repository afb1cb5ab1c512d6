package drill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/borgkit/borgkit/recovery/bundle"
)

// archiveEntry is one line of `borg list --json-lines`.
type archiveEntry struct {
	Type   string `json:"type"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	MTime  string `json:"mtime"`
	SHA256 string `json:"sha256"`
}

// borgTime parses borg 1.2's archive and file times: ISO 8601 in the
// local time zone of the machine running borg (which is this one).
func borgTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.000000", "2006-01-02T15:04:05", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse borg time %q", s)
}

func (d *drill) drillRepo(ctx context.Context, b *bundle.Borg, m *bundle.Manifest, repo *bundle.Repo, rr *RepoResult) {
	fail := func(format string, args ...any) {
		rr.Status = "failed"
		rr.Problems = append(rr.Problems, fmt.Sprintf(format, args...))
	}
	shadow, err := b.Shadow(rr.Copy)
	if err != nil {
		fail("%v", err)
		return
	}
	pass := ""
	if repo.Encrypted() {
		pass = filepath.Join(m.Dir, repo.Passphrase)
		// In keyfile mode the export is the key; a repokey repo is opened
		// with the key it carries, as a real restore would (Verify already
		// proved the export opens it too).
		if repo.KeyfileMode() {
			if err := b.ImportKey(ctx, shadow, filepath.Join(m.Dir, repo.KeyExport)); err != nil {
				fail("%v", err)
				return
			}
		}
	}

	d.p.status("%s: borg check --repository-only", repo.Name)
	t0 := d.opts.Now()
	_, err = b.Run(ctx, pass, "check", "--bypass-lock", "--repository-only", shadow)
	rr.CheckDuration = d.opts.Now().Sub(t0)
	rr.CheckOK = err == nil
	if err != nil {
		fail("borg check --repository-only: %v", err)
	}

	d.p.status("%s: listing archives", repo.Name)
	out, err := b.Run(ctx, pass, "list", "--bypass-lock", "--json", shadow)
	if err != nil {
		fail("borg list: %v", err)
		return
	}
	var list struct {
		Archives []struct {
			Name string `json:"name"`
			Time string `json:"time"`
		} `json:"archives"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		fail("borg list --json: %v", err)
		return
	}
	rr.Archives = len(list.Archives)
	for _, a := range list.Archives {
		t, err := borgTime(a.Time)
		if err != nil {
			fail("%v", err)
			return
		}
		if rr.Latest == "" || t.After(rr.LatestTime) {
			rr.Latest, rr.LatestTime = a.Name, t
		}
	}
	if rr.Latest == "" {
		fail("the repository holds no archive")
		return
	}
	rr.RPO = d.start.Sub(rr.LatestTime)
	archive := shadow + "::" + rr.Latest

	targets, err := d.pick(ctx, b, pass, archive, repo, rr)
	if err != nil {
		fail("%v", err)
		return
	}
	if len(targets) == 0 {
		if rr.Status != "failed" {
			rr.Status = "ok"
		}
		return
	}
	d.extract(ctx, b, pass, archive, repo, rr, targets)
	if rr.Status != "failed" {
		rr.Status = "ok"
	}
}

// target is a file chosen for extraction, with what the archive says.
type target struct {
	archiveEntry
	canary bool
}

// pick streams the latest archive's listing and chooses the canaries plus
// a seeded reservoir sample of regular files: reproducible for a seed, and
// memory-bound however large the archive. Then it asks borg for the chosen
// files' SHA-256 (borg reads their content for that, so only for these).
func (d *drill) pick(ctx context.Context, b *bundle.Borg, pass, archive string, repo *bundle.Repo, rr *RepoResult) ([]target, error) {
	o := d.opts
	h := fnv.New64a()
	h.Write([]byte(repo.Host + "/" + repo.Name))
	rng := rand.New(rand.NewPCG(o.Seed, h.Sum64()))
	canaries := map[string]bool{}
	if repo.Canary != "" {
		canaries[strings.TrimPrefix(repo.Canary, "/")] = false
	}
	var sample []archiveEntry
	var smallest *archiveEntry
	seen := 0
	var parseErr error
	d.p.status("%s: listing %s", repo.Name, rr.Latest)
	err := b.Stream(ctx, "", pass, func(line []byte) {
		var e archiveEntry
		if err := json.Unmarshal(line, &e); err != nil {
			parseErr = fmt.Errorf("borg list --json-lines: %w", err)
			return
		}
		if e.Type != "-" {
			return
		}
		rr.ArchiveFiles++
		rr.ArchiveBytes += e.Size
		if _, ok := canaries[e.Path]; ok {
			canaries[e.Path] = true
			return
		}
		// borg shows undecodable names with surrogate escapes, which do
		// not survive JSON; such a file cannot be named back to borg.
		if !utf8.ValidString(e.Path) || strings.ContainsRune(e.Path, utf8.RuneError) {
			return
		}
		if smallest == nil || e.Size < smallest.Size {
			c := e
			smallest = &c
		}
		if e.Size > o.MaxFileSize || o.Samples < 0 {
			return
		}
		seen++
		if len(sample) < o.Samples {
			sample = append(sample, e)
		} else if j := rng.IntN(seen); j < o.Samples {
			sample[j] = e
		}
	}, nil, "list", "--bypass-lock", "--json-lines", archive)
	if err != nil {
		return nil, fmt.Errorf("borg list %s: %w", rr.Latest, err)
	}
	if parseErr != nil {
		return nil, parseErr
	}
	if len(sample) == 0 && smallest != nil && o.Samples > 0 {
		sample = append(sample, *smallest)
	}
	var targets []target
	var names []string
	for p, found := range canaries {
		if !found {
			rr.Status = "failed"
			rr.Problems = append(rr.Problems, fmt.Sprintf("canary %s is not in archive %s", "/"+p, rr.Latest))
			continue
		}
		targets = append(targets, target{archiveEntry: archiveEntry{Path: p}, canary: true})
	}
	for _, e := range sample {
		targets = append(targets, target{archiveEntry: e})
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Path < targets[j].Path })
	for _, t := range targets {
		names = append(names, "pp:"+t.Path)
	}
	if len(targets) == 0 {
		return nil, nil
	}
	d.p.status("%s: reading the archive's hashes of %d files", repo.Name, len(targets))
	sums := map[string]archiveEntry{}
	args := append([]string{"list", "--bypass-lock", "--json-lines", "--format", "{sha256}{size}{mtime}", archive}, names...)
	err = b.Stream(ctx, "", pass, func(line []byte) {
		var e archiveEntry
		if json.Unmarshal(line, &e) == nil && e.Type == "-" {
			sums[e.Path] = e
		}
	}, nil, args...)
	if err != nil {
		return nil, fmt.Errorf("borg list (sha256): %w", err)
	}
	for i := range targets {
		e, ok := sums[targets[i].Path]
		if !ok || len(e.SHA256) != 64 {
			return nil, fmt.Errorf("borg list gave no sha256 for %s", targets[i].Path)
		}
		targets[i].archiveEntry = e
	}
	return targets, nil
}

// extract restores the targets with one borg extract, as a real restore
// would, timing the first file from borg's --list output, then checks each
// file against the archive's hash (and the live file when asked).
func (d *drill) extract(ctx context.Context, b *bundle.Borg, pass, archive string, repo *bundle.Repo, rr *RepoResult, targets []target) {
	o := d.opts
	dir := filepath.Join(d.work, "extract", repo.Host+"-"+repo.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		rr.Status = "failed"
		rr.Problems = append(rr.Problems, err.Error())
		return
	}
	want := map[string]bool{}
	args := []string{"extract", "--bypass-lock", "--list", archive}
	for _, t := range targets {
		want[t.Path] = true
		args = append(args, "pp:"+t.Path)
	}
	n := 0
	d.p.status("%s: extracting %d files from %s", repo.Name, len(targets), rr.Latest)
	t0 := o.Now()
	err := b.Stream(ctx, dir, pass, nil, func(line []byte) {
		if !want[string(line)] {
			return
		}
		n++
		if rr.TimeToFirstFile == 0 {
			rr.TimeToFirstFile = d.since()
		}
		d.p.tick("%s: extracting %d/%d files", repo.Name, n, len(targets))
	}, args...)
	rr.ExtractDuration = o.Now().Sub(t0)
	if err != nil {
		rr.Status = "failed"
		rr.Problems = append(rr.Problems, fmt.Sprintf("borg extract: %v", err))
	}
	d.p.status("%s: checking %d extracted files", repo.Name, len(targets))
	for _, t := range targets {
		f := FileResult{Path: "/" + t.Path, Canary: t.canary, Size: t.Size, SHA256: t.SHA256, Status: "ok"}
		got, size, err := fileSHA256(filepath.Join(dir, t.Path))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			f.Status, f.Detail = "missing", "not extracted"
		case err != nil:
			f.Status, f.Detail = "error", err.Error()
		case size != t.Size || got != t.SHA256:
			f.Status = "mismatch"
			f.Detail = fmt.Sprintf("extracted %d bytes with sha256 %s, the archive records %d bytes with %s", size, short(got), t.Size, short(t.SHA256))
		default:
			rr.Bytes += size
		}
		if f.Status != "ok" {
			rr.Status = "failed"
			rr.Problems = append(rr.Problems, fmt.Sprintf("%s: %s %s", f.Path, f.Status, f.Detail))
		} else if o.CompareLive {
			d.compareLive(&f, t, rr)
		}
		rr.Files = append(rr.Files, f)
	}
	rr.RTO = d.since()
	if rr.ExtractDuration > 0 {
		rr.Throughput = float64(rr.Bytes) / rr.ExtractDuration.Seconds()
	}
	if rr.Throughput > 0 {
		rr.EstimatedFullRestore = time.Duration(float64(rr.ArchiveBytes) / rr.Throughput * float64(time.Second))
	}
}

// compareLive sets f.Live. A live file that differs only counts as damage
// when it still has the size and mtime the archive recorded: anything else
// is an edit made since the backup.
func (d *drill) compareLive(f *FileResult, t target, rr *RepoResult) {
	live := filepath.Join(d.opts.LiveRoot, t.Path)
	fi, err := os.Stat(live)
	if err != nil {
		f.Live = "missing"
		return
	}
	got, _, err := fileSHA256(live)
	switch {
	case err != nil:
		f.Live, f.Detail = "missing", err.Error()
	case got == t.SHA256:
		f.Live = "match"
	default:
		mt, terr := borgTime(t.MTime)
		if terr == nil && fi.Size() == t.Size && fi.ModTime().Truncate(time.Microsecond).Equal(mt.Truncate(time.Microsecond)) {
			f.Live = "differs"
			rr.Status = "failed"
			rr.Problems = append(rr.Problems, fmt.Sprintf("%s: the live file has the archived size and mtime but other content (sha256 %s, archive %s)", f.Path, short(got), short(t.SHA256)))
		} else {
			f.Live = "changed"
		}
	}
}

func fileSHA256(p string) (string, int64, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return "", 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s is a %v, not a regular file", p, fi.Mode().Type())
	}
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func short(sum string) string {
	if len(sum) > 16 {
		return sum[:16]
	}
	return sum
}
