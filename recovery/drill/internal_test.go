package drill

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/recovery/bundle"
)

func TestPlanDisk(t *testing.T) {
	p := planDisk("/dev/disk/by-id/usb-test", "/b/luks/pi-backup.key", "", "borgkit-drill", "ext4", "/tmp/w/mnt")
	want := diskPlan{
		Open:   []string{"cryptsetup", "open", "--readonly", "--key-file", "/b/luks/pi-backup.key", "/dev/disk/by-id/usb-test", "borgkit-drill"},
		Mount:  []string{"mount", "-o", "ro,noload", "-t", "ext4", "/dev/mapper/borgkit-drill", "/tmp/w/mnt"},
		Umount: []string{"umount", "/tmp/w/mnt"},
		Close:  []string{"cryptsetup", "close", "borgkit-drill"},
	}
	if !slices.Equal(p.Open, want.Open) || !slices.Equal(p.Mount, want.Mount) || !slices.Equal(p.Umount, want.Umount) || !slices.Equal(p.Close, want.Close) {
		t.Errorf("plan %q\nwant %q", p, want)
	}
	p = planDisk("/img", "/k", "/b/luks/h.img", "m", "xfs", "/mnt")
	if want := []string{"cryptsetup", "open", "--readonly", "--key-file", "/k", "--header", "/b/luks/h.img", "/img", "m"}; !slices.Equal(p.Open, want) {
		t.Errorf("open with header: %q", p.Open)
	}
	if want := []string{"mount", "-o", "ro,norecovery", "-t", "xfs", "/dev/mapper/m", "/mnt"}; !slices.Equal(p.Mount, want) {
		t.Errorf("xfs mount: %q", p.Mount)
	}
	if p = planDisk("/img", "/k", "", "m", "btrfs", "/mnt"); !slices.Equal(p.Mount, []string{"mount", "-o", "ro", "-t", "btrfs", "/dev/mapper/m", "/mnt"}) {
		t.Errorf("btrfs mount: %q", p.Mount)
	}
}

func TestBorgTime(t *testing.T) {
	got, err := borgTime("2026-06-12T00:42:07.000000")
	if err != nil || !got.Equal(time.Date(2026, 6, 12, 0, 42, 7, 0, time.Local)) {
		t.Errorf("%v %v", got, err)
	}
	if _, err := borgTime("yesterday"); err == nil {
		t.Error("parsed garbage")
	}
}

func TestHumanFigures(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", in, got, want)
		}
	}
	if got := roundDur(90*time.Minute + 4*time.Second); got != "1h30m0s" {
		t.Errorf("roundDur = %q", got)
	}
	if got := cell("a|b\tc"); !strings.Contains(got, `\|`) {
		t.Errorf("cell = %q", got)
	}
}

func TestPatternLineSafe(t *testing.T) {
	for name, want := range map[string]bool{
		"srv/data/file 01.bin": true, "srv/odd\tname": true, "#hash": true, "pf:x": true, "é/ü": true,
		"": false, " lead": false, "trail ": false, "new\nline": false, "cr\r": false, "tab\t": false,
		"nbsp\u00a0": false, "\x1cfs": false,
	} {
		if got := patternLineSafe(name); got != want {
			t.Errorf("patternLineSafe(%q) = %v, want %v", name, got, want)
		}
	}
}

// Names a patterns file cannot carry go to borg as arguments; both kinds
// are listed, extracted and verified together, and nothing else is.
func TestSelectionOddNames(t *testing.T) {
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg not installed")
	}
	tmp := t.TempDir()
	b, err := borg.NewWorkspace(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	src, repoDir := filepath.Join(tmp, "src"), filepath.Join(tmp, "repo")
	odd := []string{"d/normal", "d/ lead", "d/trail ", "d/new\nline", "d/#hash", "d/pf:x", "d/tab\tin"}
	for i, n := range append(slices.Clone(odd), "d/other", "e/skipped") {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, n)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, n), bytes.Repeat([]byte{byte('a' + i)}, 100+i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "--encryption", "none", repoDir}, {"create", repoDir + "::a", "d", "e"}} {
		c := b.Command(context.Background(), "", args...)
		c.Dir = src
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("borg %s: %v: %s", args[0], err, out)
		}
	}
	for _, names := range [][]string{odd, {"d/normal", "d/#hash"}} {
		d := &drill{opts: Options{Now: time.Now}, work: t.TempDir(), start: time.Now()}
		var targets []target
		for _, n := range names {
			targets = append(targets, target{archiveEntry: archiveEntry{Path: n}})
		}
		repo := &bundle.Repo{Name: "r", Host: "h"}
		if err := d.hashes(context.Background(), b, "", repoDir+"::a", repo, targets); err != nil {
			t.Fatal(err)
		}
		rr := &RepoResult{Latest: "a"}
		d.extract(context.Background(), b, "", repoDir+"::a", repo, rr, targets)
		if len(rr.Problems) > 0 || len(rr.Files) != len(names) || rr.TimeToFirstFile <= 0 || rr.Throughput <= 0 {
			t.Errorf("%q: %+v", names, rr)
		}
		for _, f := range rr.Files {
			if f.Status != "ok" {
				t.Errorf("%+v", f)
			}
		}
		var got []string
		root := filepath.Join(d.work, "extract", "h-r")
		filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				rel, _ := filepath.Rel(root, p)
				got = append(got, rel)
			}
			return nil
		})
		slices.Sort(got)
		want := slices.Sorted(slices.Values(names))
		if !slices.Equal(got, want) {
			t.Errorf("extracted %q, want %q", got, want)
		}
	}
}

// The verifier's two paths, beside borg and after it, give the same sums;
// a file that is not there is reported as such.
func TestVerifier(t *testing.T) {
	dir := t.TempDir()
	var targets []target
	want := map[string]string{}
	for i, size := range []int{0, 1, 300 << 10, 5000} {
		p := fmt.Sprintf("d/f%d", i)
		data := bytes.Repeat([]byte{byte(i)}, size)
		if err := os.MkdirAll(filepath.Join(dir, "d"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), data, 0o600); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		want[p] = hex.EncodeToString(sum[:])
		targets = append(targets, target{archiveEntry: archiveEntry{Path: p, Size: int64(size)}})
	}
	targets = append(targets, target{archiveEntry: archiveEntry{Path: "d/absent"}})
	for _, early := range []bool{true, false} {
		v := newVerifier(dir, targets)
		if early {
			for i := range targets {
				v.finished(i)
			}
			// The background hasher has the lowest priority: give it time.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !v.hashed[3].Load(); {
				time.Sleep(10 * time.Millisecond)
			}
		}
		sums := v.sums()
		v.wait()
		for i, tg := range targets {
			s := sums[i]
			w, ok := want[tg.Path]
			if ok && (s.err != nil || s.sum != w || s.size != tg.Size) {
				t.Errorf("early %v: %s: %+v, want %s", early, tg.Path, s, w)
			}
			if !ok && !errors.Is(s.err, fs.ErrNotExist) {
				t.Errorf("early %v: %s: %+v, want not found", early, tg.Path, s)
			}
		}
	}
	var stop atomic.Bool
	stop.Store(true)
	if s := hashFile(filepath.Join(dir, "d/f2"), nil, &stop); !errors.Is(s.err, errAborted) {
		t.Errorf("stopped hash: %+v", s)
	}
}
