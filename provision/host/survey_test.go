package host

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// surveyOf runs the survey program on this machine, as it runs on an SSH
// host, and wraps what it found as Survey does.
func surveyOf(t *testing.T, h Host, wants []Want) *surveyView {
	t.Helper()
	found, ran, err := survey(context.Background(), h, wants)
	if err != nil {
		t.Fatal(err)
	}
	return newSurveyView(h, found, ran)
}

// A program the survey ran (Want.Run) is answered as the host's own Run
// answers it: output, stderr, exit status and the error's kind; one it
// could not find, and any other program, go to the host.
func TestSurveyRunsAnswerAsTheHost(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "it's $HOME; `x`")
	if err := os.WriteFile(odd, []byte("a\x00b\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := NewLocal("here")
	runs := [][]string{
		{"cat", "--", odd},
		{"sh", "-c", "printf out; printf err >&2; exit 3"},
		{"sh", "-c", "echo \"${LC_ALL-unset}\""},
		{"mountpoint", "-q", "/"},
		{"mountpoint", "-q", dir},
		{"true"},
	}
	var wants []Want
	for _, r := range runs {
		wants = append(wants, Want{Run: r})
	}
	wants = append(wants, Want{Path: odd, Content: true}, Want{Run: []string{"borgkit-no-such-program"}})
	v := surveyOf(t, h, wants)
	if len(v.ran) != len(runs) {
		t.Errorf("the survey kept %d results, want %d (the missing program left to the host)", len(v.ran), len(runs))
	}
	ctx := context.Background()
	for _, r := range runs {
		got, gotErr := v.Run(ctx, Cmd{Argv: r})
		want, wantErr := h.Run(ctx, Cmd{Argv: r})
		if !bytes.Equal(got.Stdout, want.Stdout) || !bytes.Equal(got.Stderr, want.Stderr) || got.ExitCode != want.ExitCode {
			t.Errorf("%q: survey %+v, host %+v", r, got, want)
		}
		var ge, we *ExitError
		if errors.As(gotErr, &ge) != errors.As(wantErr, &we) || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%q: survey's error %v, host's %v", r, gotErr, wantErr)
		}
	}
	if b, err := v.ReadFile(ctx, odd); err != nil || string(b) != "a\x00b\n\n" {
		t.Errorf("the path beside the programs: %q, %v", b, err)
	}
	if _, err := v.Run(ctx, Cmd{Argv: []string{"borgkit-no-such-program"}}); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("a program the survey could not find: %v, want the host's not found", err)
	}
}

// The survey's answers are the host's own: every kind of entry a plan
// meets, compared with what Lstat, ReadFile and Digest say directly.
func TestSurveyAnswersAsTheHost(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("borgkit binary "), DigestAbove/15+1)
	files := map[string][]byte{
		"small":              []byte("line 1\nline 2\n"),
		"empty":              {},
		"secret":             []byte("do not send me\n"),
		"with space\nand nl": []byte("odd name\n"),
		"big":                big,
		"just-below":         bytes.Repeat([]byte{0}, DigestAbove-1),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "small"), 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o1750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("small", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	h := NewLocal("here")
	wants := []Want{
		{Path: filepath.Join(dir, "fifo"), Content: true},
		{Path: filepath.Join(dir, "small"), Content: true},
		{Path: filepath.Join(dir, "empty"), Content: true},
		{Path: filepath.Join(dir, "secret")},
		{Path: filepath.Join(dir, "with space\nand nl"), Content: true},
		{Path: filepath.Join(dir, "big"), Content: true},
		{Path: filepath.Join(dir, "just-below"), Content: true},
		{Path: filepath.Join(dir, "sub")},
		{Path: filepath.Join(dir, "link"), Content: true},
		{Path: filepath.Join(dir, "missing"), Content: true},
		{Path: filepath.Join(dir, "small", "below-a-file")},
	}
	v := surveyOf(t, h, wants)
	ctx := context.Background()
	for _, w := range wants {
		s := v.found[w.Path]
		if s == nil {
			t.Errorf("%q: no answer", w.Path)
			continue
		}
		if filepath.Base(w.Path) == "below-a-file" {
			// This machine says ENOTDIR; sftp-server, whose host the
			// survey stands in for, says no such file.
			if _, err := v.Lstat(ctx, w.Path); !IsNotExist(err) {
				t.Errorf("below a file: %v, want not-exist", err)
			}
			continue
		}
		want, werr := h.Lstat(ctx, w.Path)
		got, gerr := v.Lstat(ctx, w.Path)
		switch {
		case IsNotExist(werr) != IsNotExist(gerr) || (werr == nil) != (gerr == nil):
			t.Errorf("%q: Lstat %v, the host says %v", w.Path, gerr, werr)
		case werr == nil && (got.Name != want.Name || got.Size != want.Size || got.Mode != want.Mode ||
			got.UID != want.UID || got.GID != want.GID || got.ModTime.Unix() != want.ModTime.Unix()):
			t.Errorf("%q: Lstat %+v, the host says %+v", w.Path, got, want)
		}
		if !w.Content {
			if s.content != nil || s.digest != "" {
				t.Errorf("%q: metadata only was wanted, the survey read the content", w.Path)
			}
			continue
		}
		if s.missing || !s.info.Mode.IsRegular() {
			continue // ReadFile goes to the host: nothing of the survey's to compare
		}
		if w.Path == filepath.Join(dir, "big") {
			d, err := h.Digest(ctx, w.Path)
			if err != nil || s.digest != d {
				t.Errorf("big: digest %q, the host says %q (%v)", s.digest, d, err)
			}
			continue
		}
		if !bytes.Equal(s.content, files[filepath.Base(w.Path)]) {
			t.Errorf("%q: content %q, want %q", w.Path, s.content, files[filepath.Base(w.Path)])
		}
	}
	if s := v.found[filepath.Join(dir, "link")]; s == nil || s.content != nil || s.info.Mode&fs.ModeSymlink == 0 {
		t.Errorf("a symlink was followed: %+v", s)
	}

	// The view answers from the survey, not the host...
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("changed behind the survey's back\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := v.ReadFile(ctx, small); err != nil || string(b) != "line 1\nline 2\n" {
		t.Errorf("ReadFile through the view: %q, %v; want the surveyed content", b, err)
	}
	// ...until something is changed through it.
	if err := v.WriteFile(ctx, filepath.Join(dir, "new"), []byte("x"), 0o600, Owner{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	if b, err := v.ReadFile(ctx, small); err != nil || string(b) != "changed behind the survey's back\n" {
		t.Errorf("after a write through the view, ReadFile gave %q, %v; want the host's", b, err)
	}
}

// A path stat cannot reach for another reason than "no such file" is left
// to the host, which reports the real error.
func TestSurveyLeavesOtherErrorsToTheHost(t *testing.T) {
	wants := []Want{{Path: "/a"}, {Path: "/b", Content: true}}
	out := []byte("/a\x00d 755 0 0 4096 1700000000.25\x00\x00")
	got, err := parseSurvey(out, []byte("find: '/b': Permission denied\n"), wants, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got["/a"] == nil || !got["/a"].info.IsDir() {
		t.Errorf("/a: %+v", got["/a"])
	}
	if got["/b"] != nil {
		t.Errorf("/b answered from the survey despite stat's error: %+v", got["/b"])
	}
	got, err = parseSurvey(out, []byte("find: '/b': No such file or directory\n"), wants, nil)
	if err != nil || got["/b"] == nil || !got["/b"].missing {
		t.Errorf("/b missing: %+v, %v", got["/b"], err)
	}
	if _, err := parseSurvey([]byte("/a\x00d 755 0 0"), nil, wants, nil); err == nil {
		t.Error("a cut answer was taken")
	}
}

// A listed directory's entries are the host's ReadDir, names with odd
// bytes and hidden ones included; an empty directory lists nothing, a
// missing one is missing, a symlink to one and an unlisted one are left
// to the host.
func TestSurveyListsAsTheHost(t *testing.T) {
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	for _, p := range []string{"repo-a/data", "repo b\nnl", ".heartbeat", "empty"} {
		if err := os.MkdirAll(filepath.Join(mirror, p), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mirror, "repo-a", "config"), []byte("[repository]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mirror, "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("mirror", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	h := NewLocal("here")
	ctx := context.Background()
	wants := []Want{
		{Path: mirror, List: true},
		{Path: filepath.Join(mirror, "repo-a"), List: true},
		{Path: filepath.Join(mirror, "empty"), List: true},
		{Path: filepath.Join(dir, "gone"), List: true},
		{Path: filepath.Join(dir, "link"), List: true},
		{Path: filepath.Join(mirror, "repo-a", "config"), Content: true},
		{Path: filepath.Join(mirror, "stray")},
	}
	v := surveyOf(t, h, wants)
	for _, w := range wants[:3] {
		if s := v.found[w.Path]; s == nil || !s.listed {
			t.Fatalf("%s: not listed: %+v", w.Path, s)
		}
		want, werr := h.ReadDir(ctx, w.Path)
		got, gerr := v.ReadDir(ctx, w.Path)
		if werr != nil || gerr != nil || len(got) != len(want) {
			t.Fatalf("%s: ReadDir %v (%v), the host says %v (%v)", w.Path, got, gerr, want, werr)
		}
		for i := range want {
			g, h := got[i], want[i]
			if g.Name != h.Name || g.Mode != h.Mode || g.Size != h.Size || g.UID != h.UID || g.GID != h.GID || g.ModTime.Unix() != h.ModTime.Unix() {
				t.Errorf("%s: entry %+v, the host says %+v", w.Path, g, h)
			}
		}
	}
	if _, err := v.ReadDir(ctx, filepath.Join(dir, "gone")); !IsNotExist(err) {
		t.Errorf("a missing directory: %v, want not-exist", err)
	}
	if s := v.found[filepath.Join(dir, "link")]; s == nil || s.listed {
		t.Errorf("a symlink was listed: %+v", s)
	}
	if s := v.found[filepath.Join(mirror, "stray")]; s == nil || s.listed {
		t.Errorf("an entry not asked for was listed: %+v", s)
	}
	if b, err := v.ReadFile(ctx, filepath.Join(mirror, "repo-a", "config")); err != nil || string(b) != "[repository]\n" {
		t.Errorf("the content beside the listings: %q, %v", b, err)
	}
	// The listing is the survey's: an entry made since is not in it.
	if err := os.Mkdir(filepath.Join(mirror, "later"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.ReadDir(ctx, mirror); len(got) != 5 {
		t.Errorf("the view listed %d entries, want the survey's 5", len(got))
	}
}

// A directory listed with its contents answers for its entries: Lstat of
// each (and of a name it lacks), ReadFile of a small file and of a
// symlink to one as the host reads them (two symlinks to one file, a file
// also wanted on its own); a large file, a directory and a symlink to a
// large file are left to the host for their content. A bin directory
// listed without contents answers Lstat alone.
func TestSurveyListsWithContents(t *testing.T) {
	dir := t.TempDir()
	cron, bin, lib := filepath.Join(dir, "cron.d"), filepath.Join(dir, "bin"), filepath.Join(dir, "lib")
	for _, d := range []string{cron, bin, lib, filepath.Join(cron, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{
		filepath.Join(cron, "job"):           []byte("0 1 * * * root backup.sh\n"),
		filepath.Join(cron, ".hidden"):       []byte("x\n"),
		filepath.Join(cron, "big"):           bytes.Repeat([]byte("b"), DigestAbove),
		filepath.Join(lib, "unit.service"):   []byte("[Service]\nExecStart=/bin/true\n"),
		filepath.Join(lib, "large.service"):  bytes.Repeat([]byte("#"), DigestAbove+1),
		filepath.Join(bin, "backup.sh"):      []byte("#!/bin/sh\nborg create\n"),
		filepath.Join(dir, "wanted-content"): []byte("wanted\n"),
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for link, to := range map[string]string{"linked.service": "../lib/unit.service", "alias.service": "../lib/unit.service",
		"large-link.service": "../lib/large.service", "dangling": "../nowhere"} {
		if err := os.Symlink(to, filepath.Join(cron, link)); err != nil {
			t.Fatal(err)
		}
	}
	h := NewLocal("here")
	ctx := context.Background()
	v := surveyOf(t, h, []Want{
		{Path: filepath.Join(dir, "wanted-content"), Content: true},
		{Path: filepath.Join(cron, "job"), Content: true}, // and in the listing
		{Path: bin, List: true},
		{Path: cron, List: true, Content: true},
	})
	ents, err := h.ReadDir(ctx, cron)
	if err != nil || len(ents) != 8 {
		t.Fatalf("the host lists %d entries (%v)", len(ents), err)
	}
	for _, e := range append(ents, FileInfo{Name: "absent"}) {
		p := filepath.Join(cron, e.Name)
		s := v.lookup(p)
		if s == nil {
			t.Errorf("%s: not answered by the survey", e.Name)
			continue
		}
		want, werr := h.Lstat(ctx, p)
		got, gerr := v.Lstat(ctx, p)
		if IsNotExist(werr) != IsNotExist(gerr) || werr == nil && (got.Name != want.Name || got.Mode != want.Mode || got.Size != want.Size ||
			got.UID != want.UID || got.GID != want.GID || got.ModTime.Unix() != want.ModTime.Unix()) {
			t.Errorf("%s: Lstat %+v (%v), the host says %+v (%v)", e.Name, got, gerr, want, werr)
		}
		wantContent := e.Name == "job" || e.Name == ".hidden" || e.Name == "linked.service" || e.Name == "alias.service"
		if (s.content != nil) != wantContent {
			t.Errorf("%s: content read %v, want %v", e.Name, s.content != nil, wantContent)
		}
		wb, werr := h.ReadFile(ctx, p)
		gb, gerr := v.ReadFile(ctx, p)
		if !bytes.Equal(wb, gb) || (werr == nil) != (gerr == nil) {
			t.Errorf("%s: ReadFile %d bytes (%v), the host says %d (%v)", e.Name, len(gb), gerr, len(wb), werr)
		}
	}
	// A program looked up in the bin directory: there, or not, without
	// asking the host.
	if s := v.lookup(filepath.Join(bin, "backup.sh")); s == nil || s.missing || !s.info.Mode.IsRegular() || s.content != nil {
		t.Errorf("bin/backup.sh: %+v, want its metadata alone", s)
	}
	if s := v.lookup(filepath.Join(bin, "test")); s == nil || !s.missing {
		t.Errorf("bin/test: %+v, want missing", s)
	}
	if b, err := v.ReadFile(ctx, filepath.Join(dir, "wanted-content")); err != nil || string(b) != "wanted\n" {
		t.Errorf("the content wanted beside the listings: %q, %v", b, err)
	}
	// The answers are the survey's: a file changed or made since is not
	// seen through the view.
	if err := os.WriteFile(filepath.Join(cron, "job"), []byte("changed\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "test"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, _ := v.ReadFile(ctx, filepath.Join(cron, "job")); string(b) != string(files[filepath.Join(cron, "job")]) {
		t.Errorf("job through the view: %q, want the surveyed content", b)
	}
	if _, err := v.Lstat(ctx, filepath.Join(bin, "test")); !IsNotExist(err) {
		t.Errorf("bin/test made after the survey: %v, want the survey's not-exist", err)
	}
}

// A guarded program (Want.Guard) runs in the survey only where its file
// has the digest asked for: a program of someone else's at that path is
// never run, and its Run goes to the host.
func TestSurveyRunsGuardedOnlyOnTheirDigest(t *testing.T) {
	h := NewLocal("here")
	// sha256sum as the survey finds it on PATH, noting each file it
	// hashed from stdin: the guard's own reading of the program, which a
	// guard of a large wanted file must not need (the survey hashed it).
	real, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	fromStdin := filepath.Join(bin, "stdin.log")
	wrapper := "#!/bin/sh\n[ $# -le 1 ] && echo hashed >>" + fromStdin + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "sha256sum"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	for _, tc := range []struct {
		name  string
		big   bool // DigestAbove or more, and wanted: the survey's own digest is the guard's
		guard func(ours string) string
		runs  bool
	}{
		{"its digest", false, func(ours string) string { return ours }, true},
		{"another digest", false, func(string) string { return strings.Repeat("0", 64) }, false},
		{"large, its digest", true, func(ours string) string { return ours }, true},
		{"large, another digest", true, func(string) string { return strings.Repeat("0", 64) }, false},
		{"large, a digest of a longer name", true, func(string) string { return strings.Repeat("0", 64) + " *" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			prog := filepath.Join(dir, "prog")
			marker := filepath.Join(dir, "ran")
			script := []byte("#!/bin/sh\necho ran >>" + marker + "\necho version\nexit 0\n")
			if tc.big {
				script = append(script, bytes.Repeat([]byte("# padding\n"), DigestAbove/10+1)...)
			}
			if err := os.WriteFile(prog, script, 0o755); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(script)
			wants := []Want{{Run: []string{prog}, Guard: tc.guard(hex.EncodeToString(sum[:]))}}
			if tc.big {
				wants = append(wants, Want{Path: prog, Content: true})
			}
			os.Remove(fromStdin)
			v := surveyOf(t, h, wants)
			_, err := os.Stat(marker)
			if ran := err == nil; ran != tc.runs {
				t.Fatalf("the survey ran it: %v, want %v", ran, tc.runs)
			}
			if _, err := os.Stat(fromStdin); err == nil && tc.big && tc.runs {
				t.Errorf("the guard hashed the program again instead of taking the survey's digest")
			}
			if _, ok := v.ran[runKey([]string{prog})]; ok != tc.runs {
				t.Errorf("the survey answers for it: %v, want %v", ok, tc.runs)
			}
		})
	}
}

// The survey's programs run at once: the first reads what only the last
// writes, through a FIFO, and each open of a FIFO waits for the other end.
// Run one after another, the first would wait for ever (here: until the
// context ends, and the test fails).
func TestSurveyRunsProgramsAtOnce(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	reader := []string{"sh", "-c", `read -r x <"$1" && echo "got $x"`, "sh", fifo}
	other := []string{"sh", "-c", "echo between"}
	writer := []string{"sh", "-c", `echo hello >"$1"`, "sh", fifo}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := NewLocal("here")
	_, ran, err := survey(ctx, h, []Want{{Run: reader}, {Run: other}, {Run: writer}, {Path: fifo}})
	if err != nil {
		t.Fatalf("survey: %v", err)
	}
	for _, tc := range []struct {
		argv []string
		out  string
	}{{reader, "got hello\n"}, {other, "between\n"}, {writer, ""}} {
		if r, ok := ran[runKey(tc.argv)]; !ok || r.ExitCode != 0 || string(r.Stdout) != tc.out {
			t.Errorf("%q: %+v (answered: %v), want exit 0 and %q", tc.argv, r, ok, tc.out)
		}
	}
}

// The programs' records are every header first, then every output; an
// answer cut short anywhere is refused, never read as empty output.
func TestParseRuns(t *testing.T) {
	a, b := []string{"a"}, []string{"b", "x"}
	for _, tc := range []struct {
		name string
		out  string
		ok   bool
	}{
		{"whole", "0 3 1\x003 0 2\x00outEerREST", true},
		{"not found left out", "0 3 1\x00127 0 2\x00outEerREST", true},
		{"output cut", "0 3 1\x003 0 2\x00outE", false},
		{"second header missing", "0 3 1\x00outE", false},
		{"negative length", "0 -3 1\x003 0 2\x00outEerREST", false},
		{"lengths that overflow", "0 9223372036854775807 1\x003 0 2\x00outEerREST", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, rest, err := parseRuns([]byte(tc.out), [][]string{a, b})
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if r := got[runKey(a)]; string(r.Stdout) != "out" || string(r.Stderr) != "E" || r.ExitCode != 0 {
				t.Errorf("a: %+v", r)
			}
			r, found := got[runKey(b)]
			if strings.HasPrefix(tc.out, "0 3 1\x00127") {
				if found {
					t.Errorf("a program not found (127) was answered: %+v", r)
				}
			} else if string(r.Stdout) != "" || string(r.Stderr) != "er" || r.ExitCode != 3 {
				t.Errorf("b: %+v", r)
			}
			if string(rest) != "REST" {
				t.Errorf("rest %q", rest)
			}
		})
	}
}

// A host without gzip gets the survey's output as it is printed; one with
// it sends it compressed: both read the same.
func TestSurveyWithAndWithoutGzip(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "unit")
	if err := os.WriteFile(file, []byte("[Unit]\nDescription=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A PATH of the programs the survey uses, gzip left out.
	bin := t.TempDir()
	for _, p := range []string{"sh", "find", "sha256sum", "tar", "stat", "cat", "rm", "mktemp", "echo"} {
		real, err := exec.LookPath(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, filepath.Join(bin, p)); err != nil {
			t.Fatal(err)
		}
	}
	wants := []Want{{Path: file, Content: true}, {Run: []string{"echo", "ran"}}}
	for _, tc := range []struct{ name, path string }{{"with gzip", os.Getenv("PATH")}, {"without", bin}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			v := surveyOf(t, NewLocal("here"), wants)
			if s := v.found[file]; s == nil || string(s.content) != "[Unit]\nDescription=x\n" {
				t.Errorf("content: %+v", s)
			}
			if r := v.ran[runKey([]string{"echo", "ran"})]; string(r.Stdout) != "ran\n" {
				t.Errorf("run: %+v", r)
			}
		})
	}
}

func TestGunzipped(t *testing.T) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte("--\n"))
	zw.Close()
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{"plain", "--\nrest", "--\nrest", true},
		{"compressed", z.String(), "--\n", true},
		{"compressed, cut", z.String()[:z.Len()-6], "", false},
	} {
		got, err := gunzipped([]byte(tc.in))
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("%s: %q, %v", tc.name, got, err)
		}
	}
}

// A survey that cannot make its scratch directory says so, instead of
// "the digests end early" from a stream cut short.
func TestSurveySaysWhyItFailed(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	_, _, err := survey(context.Background(), NewLocal("here"), []Want{{Path: "/etc"}, {Run: []string{"true"}}})
	if err == nil || !strings.Contains(err.Error(), "mktemp -d failed") {
		t.Fatalf("survey with no scratch directory: %v", err)
	}
}
