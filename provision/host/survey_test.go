package host

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// surveyOf runs the survey program on this machine, as it runs on an SSH
// host, and wraps what it found as Survey does.
func surveyOf(t *testing.T, h Host, wants []Want) *surveyView {
	t.Helper()
	found, err := survey(context.Background(), h, wants)
	if err != nil {
		t.Fatal(err)
	}
	return &surveyView{Host: h, found: found}
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
	h := NewLocal("here")
	wants := []Want{
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
	out := []byte("/a\x0041ed 0 0 4096 1700000000\x00\x00--\n")
	got, err := parseSurvey(out, []byte("stat: cannot statx '/b': Permission denied\n"), wants)
	if err != nil {
		t.Fatal(err)
	}
	if got["/a"] == nil || !got["/a"].info.IsDir() {
		t.Errorf("/a: %+v", got["/a"])
	}
	if got["/b"] != nil {
		t.Errorf("/b answered from the survey despite stat's error: %+v", got["/b"])
	}
	got, err = parseSurvey(out, []byte("stat: cannot statx '/b': No such file or directory\n"), wants)
	if err != nil || got["/b"] == nil || !got["/b"].missing {
		t.Errorf("/b missing: %+v, %v", got["/b"], err)
	}
	if _, err := parseSurvey([]byte("/a\x0041ed 0 0"), nil, wants); err == nil {
		t.Error("a cut answer was taken")
	}
}
