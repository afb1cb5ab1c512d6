package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/recovery/bundle"
)

// archiveEntry is one line of `borg list --json-lines`.
type archiveEntry struct {
	Type   string `json:"type"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	MTime  string `json:"mtime"`
	SHA256 string `json:"sha256"`
	// seq is the item's place in the archive, the order borg extracts in.
	seq int
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

// drillRepo drills one repository in three steps. First two lines run at
// the same time, each borg with a shadow and a working directory of its
// own: `borg check --repository-only` (it reads every segment, the long
// part on a real disk), and the listings that find the newest archive,
// choose the sample and read its hashes; the bundle's key check (keys)
// may still be running too. Then, once all of them are done, the restore
// of the whole sample with one borg extract and the check of each file
// against the archive's hash: the timed window has no other borg of the
// drill competing with it.
func (d *drill) drillRepo(ctx context.Context, b *borg.Workspace, m *bundle.Manifest, repo *bundle.Repo, rr *RepoResult, keys *keyCheck) {
	fail := func(format string, args ...any) {
		rr.Status = "failed"
		rr.Problems = append(rr.Problems, fmt.Sprintf(format, args...))
	}
	// The bundle does not open it: nothing to drill (a restore with these
	// keys cannot happen), and the key check says why.
	keyFailed := func(block bool) bool {
		detail, done := keys.failure(repo, block)
		if !done || detail == "" {
			return false
		}
		*rr = RepoResult{Name: rr.Name, Host: rr.Host, Copy: rr.Copy, Status: "failed",
			Problems: []string{"the bundle does not open it: " + detail}}
		return true
	}
	if keyFailed(false) {
		return
	}
	pass := ""
	if repo.Encrypted() {
		pass = filepath.Join(m.Dir, repo.Passphrase)
	}
	shadow, err := b.Shadow(rr.Copy)
	if err != nil {
		if !keyFailed(true) {
			fail("%v", err)
		}
		return
	}
	checked := make(chan checkResult, 1)
	d.p.Status("%s: borg check --repository-only", repo.Name)
	go func() { checked <- d.check(ctx, rr.Copy, pass) }()

	targets, archive, err := d.prepare(ctx, b, m, repo, shadow, pass, rr)
	c := <-checked
	rr.CheckDuration, rr.CheckOK = c.took, c.err == nil
	if c.err != nil {
		// First among the problems, as it is the first thing drilled.
		rr.Status = "failed"
		rr.Problems = append([]string{fmt.Sprintf("borg check --repository-only: %v", c.err)}, rr.Problems...)
	}
	if keyFailed(true) {
		return
	}
	if err != nil {
		fail("%v", err)
		return
	}
	if len(targets) > 0 {
		d.extract(ctx, b, pass, archive, repo, rr, targets)
	}
	if rr.Status != "failed" {
		rr.Status = "ok"
	}
}

type checkResult struct {
	took time.Duration
	err  error
}

// check runs `borg check --repository-only` on a shadow of the copy in a
// borg working directory of its own, so that it can run beside the
// listings. It reads no archive: a keyfile repo's key need not be
// imported there.
func (d *drill) check(ctx context.Context, copyDir, pass string) checkResult {
	cb, err := borg.NewWorkspace(d.work)
	if err != nil {
		return checkResult{err: err}
	}
	defer cb.Close()
	cb.Log = d.opts.Log
	shadow, err := cb.Shadow(copyDir)
	if err != nil {
		return checkResult{err: err}
	}
	t0 := d.opts.Now()
	_, err = cb.Run(ctx, pass, "check", "--bypass-lock", "--repository-only", shadow)
	return checkResult{took: d.opts.Now().Sub(t0), err: err}
}

// prepare opens the shadow, finds the newest archive and picks the files to
// restore with their hashes. A problem that still leaves something to
// restore (a missing canary) is in rr; one that stops the drill of the
// repo is the error.
func (d *drill) prepare(ctx context.Context, b *borg.Workspace, m *bundle.Manifest, repo *bundle.Repo, shadow, pass string, rr *RepoResult) ([]target, string, error) {
	// In keyfile mode the export is the key; a repokey repo is opened
	// with the key it carries, as a real restore would (the key check
	// proves the export opens it too).
	if repo.Encrypted() && repo.KeyfileMode() {
		if err := b.ImportKey(ctx, shadow, filepath.Join(m.Dir, repo.KeyExport)); err != nil {
			return nil, "", err
		}
	}
	d.p.Status("%s: listing archives", repo.Name)
	out, err := b.Run(ctx, pass, "list", "--bypass-lock", "--json", shadow)
	if err != nil {
		return nil, "", fmt.Errorf("borg list: %w", err)
	}
	var list struct {
		Archives []struct {
			Name string `json:"name"`
			Time string `json:"time"`
		} `json:"archives"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, "", fmt.Errorf("borg list --json: %w", err)
	}
	rr.Archives = len(list.Archives)
	for _, a := range list.Archives {
		t, err := borgTime(a.Time)
		if err != nil {
			return nil, "", err
		}
		if rr.Latest == "" || t.After(rr.LatestTime) {
			rr.Latest, rr.LatestTime = a.Name, t
		}
	}
	if rr.Latest == "" {
		return nil, "", errors.New("the repository holds no archive")
	}
	rr.RPO = d.start.Sub(rr.LatestTime)
	archive := shadow + "::" + rr.Latest
	targets, err := d.pick(ctx, b, pass, archive, repo, rr)
	if err != nil {
		return nil, "", err
	}
	if err := d.hashes(ctx, b, pass, archive, repo, targets); err != nil {
		return nil, "", err
	}
	return targets, archive, nil
}

// target is a file chosen for extraction, with what the archive says.
type target struct {
	archiveEntry
	canary bool
}

// pick streams the latest archive's listing and chooses the canaries plus
// a seeded reservoir sample of regular files: reproducible for a seed, and
// memory-bound however large the archive. The listing asks for no hash:
// borg would read every file's content for it.
func (d *drill) pick(ctx context.Context, b *borg.Workspace, pass, archive string, repo *bundle.Repo, rr *RepoResult) ([]target, error) {
	o := d.opts
	h := fnv.New64a()
	h.Write([]byte(repo.Host + "/" + repo.Name))
	rng := rand.New(rand.NewPCG(o.Seed, h.Sum64()))
	canaries := map[string]int{} // path: seq, -1 until found
	if repo.Canary != "" {
		canaries[strings.TrimPrefix(repo.Canary, "/")] = -1
	}
	var sample []archiveEntry
	var smallest *archiveEntry
	seen, seq := 0, 0
	var parseErr error
	d.p.Status("%s: listing %s", repo.Name, rr.Latest)
	err := b.Stream(ctx, "", pass, func(line []byte) {
		var e archiveEntry
		if err := json.Unmarshal(line, &e); err != nil {
			parseErr = fmt.Errorf("borg list --json-lines: %w", err)
			return
		}
		e.seq = seq
		seq++
		if e.Type != "-" {
			return
		}
		rr.ArchiveFiles++
		rr.ArchiveBytes += e.Size
		if _, ok := canaries[e.Path]; ok {
			canaries[e.Path] = e.seq
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
	for p, seq := range canaries {
		if seq < 0 {
			rr.Status = "failed"
			rr.Problems = append(rr.Problems, fmt.Sprintf("canary %s is not in archive %s", "/"+p, rr.Latest))
			continue
		}
		targets = append(targets, target{archiveEntry: archiveEntry{Path: p, seq: seq}, canary: true})
	}
	for _, e := range sample {
		targets = append(targets, target{archiveEntry: e})
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Path < targets[j].Path })
	return targets, nil
}

// hashes asks borg for the SHA-256 (and size and mtime) of the chosen
// files only: borg reads their content for it.
func (d *drill) hashes(ctx context.Context, b *borg.Workspace, pass, archive string, repo *bundle.Repo, targets []target) error {
	if len(targets) == 0 {
		return nil
	}
	d.p.Status("%s: reading the archive's hashes of %d files", repo.Name, len(targets))
	opts, paths, err := d.selection(repo, "list", targets)
	if err != nil {
		return err
	}
	sums := map[string]archiveEntry{}
	args := append(append([]string{"list", "--bypass-lock", "--json-lines", "--format", "{sha256}{size}{mtime}"}, opts...), archive)
	err = b.Stream(ctx, "", pass, func(line []byte) {
		var e archiveEntry
		if json.Unmarshal(line, &e) == nil && e.Type == "-" {
			sums[e.Path] = e
		}
	}, nil, append(args, paths...)...)
	if err != nil {
		return fmt.Errorf("borg list (sha256): %w", err)
	}
	for i := range targets {
		e, ok := sums[targets[i].Path]
		if !ok || len(e.SHA256) != 64 {
			return fmt.Errorf("borg list gave no sha256 for %s", targets[i].Path)
		}
		e.seq = targets[i].seq
		targets[i].archiveEntry = e
	}
	return nil
}

// selection names the targets to borg list or extract. Each name goes as
// a "+ pf:NAME" line of a patterns file: borg looks full paths up in a
// table (a pp: pattern per file would be tried against every item of the
// archive), and the file has no argv size limit. A name such a file
// cannot carry — borg strips each line and splits at CR and LF — goes as
// a pp: argument instead. borg includes everything when no path argument
// is given: the file then ends with an exclude-all, which must not come
// with arguments (borg would try it before them).
func (d *drill) selection(repo *bundle.Repo, what string, targets []target) (opts, paths []string, err error) {
	var lines strings.Builder
	for _, t := range targets {
		if patternLineSafe(t.Path) {
			fmt.Fprintf(&lines, "+ pf:%s\n", t.Path)
		} else {
			paths = append(paths, "pp:"+t.Path)
		}
	}
	if len(paths) == 0 {
		lines.WriteString("- *\n")
	}
	// Absolute: borg extract runs in the extraction directory.
	f, err := filepath.Abs(filepath.Join(d.work, "patterns-"+what+"-"+repo.Host+"-"+repo.Name))
	if err != nil {
		return nil, nil, fmt.Errorf("patterns for borg %s: %w", what, err)
	}
	if err := os.WriteFile(f, []byte(lines.String()), 0o600); err != nil {
		return nil, nil, fmt.Errorf("patterns for borg %s: %w", what, err)
	}
	return []string{"--patterns-from", f}, paths, nil
}

// patternLineSafe reports whether name survives as a line of a borg
// patterns file: no line break in it, nothing Python's strip() removes at
// either end.
func patternLineSafe(name string) bool {
	if name == "" || strings.ContainsAny(name, "\r\n") {
		return false
	}
	first, _ := utf8.DecodeRuneInString(name)
	last, _ := utf8.DecodeLastRuneInString(name)
	edge := func(r rune) bool { return unicode.IsGraphic(r) && !unicode.IsSpace(r) }
	return edge(first) && edge(last)
}

// extract restores the targets with one borg extract, as a real restore
// would, and checks each file against the archive's hash (and the live
// file when asked).
//
// The timed window (ExtractDuration, hence Throughput) runs from the
// start of borg extract until the last file has been compared with the
// archive's hash: restore and verification, everything between asking
// for the files and knowing they are right. It leaves out what comes
// before (check, listings, the archive's hashes) and the optional
// comparison with the live files, which is not part of a restore.
//
// The files are hashed by a verifier: at the lowest priority while borg
// runs, the rest at full speed once it has exited.
func (d *drill) extract(ctx context.Context, b *borg.Workspace, pass, archive string, repo *bundle.Repo, rr *RepoResult, targets []target) {
	o := d.opts
	dir := filepath.Join(d.work, "extract", repo.Host+"-"+repo.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		rr.Status = "failed"
		rr.Problems = append(rr.Problems, err.Error())
		return
	}
	opts, paths, err := d.selection(repo, "extract", targets)
	if err != nil {
		rr.Status = "failed"
		rr.Problems = append(rr.Problems, err.Error())
		return
	}
	d.p.Status("%s: extracting %d files from %s", repo.Name, len(targets), rr.Latest)
	args := append(append([]string{"extract", "--bypass-lock"}, opts...), archive)
	t0 := o.Now()
	v := newVerifier(dir, targets)
	defer v.wait()
	stop, watched := make(chan struct{}), make(chan int)
	go d.watch(dir, repo, targets, rr, v, stop, watched)
	err = b.Stream(ctx, dir, pass, nil, nil, append(args, paths...)...)
	close(stop)
	if <-watched > 0 && rr.TimeToFirstFile == 0 {
		rr.TimeToFirstFile = d.since()
	}
	if err != nil {
		rr.Status = "failed"
		rr.Problems = append(rr.Problems, fmt.Sprintf("borg extract: %v", err))
	}
	d.p.Status("%s: checking %d extracted files", repo.Name, len(targets))
	sums := v.sums()
	for i, t := range targets {
		s := sums[i]
		f := FileResult{Path: "/" + t.Path, Canary: t.canary, Size: t.Size, SHA256: t.SHA256, Status: "ok"}
		switch {
		case errors.Is(s.err, fs.ErrNotExist):
			f.Status, f.Detail = "missing", "not extracted"
		case s.err != nil:
			f.Status, f.Detail = "error", s.err.Error()
		case s.size != t.Size || s.sum != t.SHA256:
			f.Status = "mismatch"
			f.Detail = fmt.Sprintf("extracted %d bytes with sha256 %s, the archive records %d bytes with %s", s.size, short(s.sum), t.Size, short(t.SHA256))
		default:
			rr.Bytes += s.size
		}
		rr.Files = append(rr.Files, f)
	}
	rr.ExtractDuration = o.Now().Sub(t0)
	for i, t := range targets {
		f := &rr.Files[i]
		if f.Status != "ok" {
			rr.Status = "failed"
			rr.Problems = append(rr.Problems, fmt.Sprintf("%s: %s %s", f.Path, f.Status, f.Detail))
		} else if o.CompareLive {
			d.compareLive(f, t, rr)
		}
	}
	rr.RTO = d.since()
	if rr.ExtractDuration > 0 {
		rr.Throughput = float64(rr.Bytes) / rr.ExtractDuration.Seconds()
	}
	if rr.Throughput > 0 {
		rr.EstimatedFullRestore = time.Duration(float64(rr.ArchiveBytes) / rr.Throughput * float64(time.Second))
	}
}

// watch follows a running borg extract from the files it has created:
// borg restores one file at a time, in archive order, so once a target
// exists, the ones before it are complete. It hands those to v, sets
// rr.TimeToFirstFile when the first is complete, and shows the count on
// a terminal; once stop is closed, it sends on watched how many targets
// exist.
//
// It watches instead of reading borg extract --list: borg logs every
// file it restores through Python's logging, a cost in borg's own time
// that measured as a few per cent of the restore; a stat every 10 ms
// costs next to nothing.
func (d *drill) watch(dir string, repo *bundle.Repo, targets []target, rr *RepoResult, v *verifier, stop <-chan struct{}, watched chan<- int) {
	order := make([]int, len(targets)) // target indexes in archive order
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return targets[a].seq - targets[b].seq })
	seen, handed := 0, 0
	scan := func() {
		for seen < len(order) {
			if _, err := os.Lstat(filepath.Join(dir, targets[order[seen]].Path)); err != nil {
				return
			}
			seen++
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var shown time.Time
	for {
		scan()
		for ; handed < seen-1; handed++ {
			v.finished(order[handed])
		}
		if seen >= 2 && rr.TimeToFirstFile == 0 {
			rr.TimeToFirstFile = d.since()
		}
		if seen > 0 && time.Since(shown) > 250*time.Millisecond {
			d.p.Tick("%s: extracting %d/%d files", repo.Name, seen, len(targets))
			shown = time.Now()
		}
		select {
		case <-stop:
			scan()
			watched <- seen
			return
		case <-tick.C:
		}
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
	ls := hashFile(live, nil, nil)
	got := ls.sum
	switch {
	case ls.err != nil:
		f.Live, f.Detail = "missing", ls.err.Error()
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

func short(sum string) string {
	if len(sum) > 16 {
		return sum[:16]
	}
	return sum
}
