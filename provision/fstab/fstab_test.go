package fstab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/fstab"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
)

// The corpus under testdata: fstabs as installers, desktops, a Raspberry
// Pi and a NAS client write them, with the quirks mount(8) accepts (tabs,
// CRLF, octal escapes, indented and trailing comments, extra fields) and
// lines it skips.
func corpus(t *testing.T) map[string][]byte {
	t.Helper()
	files, _ := filepath.Glob("testdata/*.fstab")
	if len(files) < 10 {
		t.Fatalf("corpus has %d files", len(files))
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func needFindmnt(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("findmnt"); err != nil {
		t.Skip("findmnt is not installed (make deps installs util-linux): these tests compare with the real one")
	}
}

// Parse takes and skips the lines libmount does, and decodes targets as
// it does: findmnt lists the same mountpoints and names the same lines.
func TestParseAgreesWithFindmnt(t *testing.T) {
	needFindmnt(t)
	parseErr := regexp.MustCompile(`parse error at line (\d+)`)
	for name := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join("testdata", name)
			var stdout, stderr bytes.Buffer
			cmd := exec.Command("findmnt", "--tab-file", file, "--json", "-o", "TARGET")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			_ = cmd.Run() // exit 1 for an empty table
			var out struct {
				Filesystems []struct{ Target string }
			}
			if stdout.Len() > 0 {
				if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
					t.Fatalf("%v\n%s", err, stdout.String())
				}
			}
			var wantTargets []string
			for _, fs := range out.Filesystems {
				wantTargets = append(wantTargets, fs.Target)
			}
			var wantBroken []int
			for _, m := range parseErr.FindAllStringSubmatch(stderr.String(), -1) {
				n, _ := strconv.Atoi(m[1])
				wantBroken = append(wantBroken, n)
			}
			b, _ := os.ReadFile(file)
			var gotTargets []string
			var gotBroken []int
			for _, e := range fstab.Parse(b) {
				if e.Broken != "" {
					gotBroken = append(gotBroken, e.Line)
				} else {
					gotTargets = append(gotTargets, e.Target)
				}
			}
			if !slices.Equal(gotTargets, wantTargets) || !slices.Equal(gotBroken, wantBroken) {
				t.Errorf("Parse: targets %q, broken lines %v\nfindmnt: targets %q, broken lines %v", gotTargets, gotBroken, wantTargets, wantBroken)
			}
		})
	}
}

func TestMountpoint(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/backup": "/mnt/backup", "/mnt/backup/": "/mnt/backup", "/mnt//backup": "/mnt/backup",
		"/mnt/./backup/.": "/mnt/backup", `/mnt/\142ackup`: "/mnt/backup", `/mnt/a\040b`: "/mnt/a b",
		`/mnt/a\9b`: `/mnt/a\9b`, "none": "none", "swap": "swap", `/mnt/x\`: `/mnt/x\`,
	} {
		if got := fstab.Mountpoint(in); got != want {
			t.Errorf("Mountpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// borgkit's block as the recipe renders it for the example's disk and share.
const ownLines = "UUID=3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f /mnt/backup ext4 nofail,x-systemd.device-timeout=10s 0 2\n" +
	"//nas.lan/backups /mnt/nas cifs _netdev,nofail,credentials=/etc/borgkit/nas.credentials 0 0\n"

// Every file of the corpus, as the existing /etc/fstab: an ordinary line
// of the user's (an unplugged stick) never stops provisioning, a line
// mount(8) skips is a warning naming it, a clash is refused naming its
// line whatever spelling the mountpoint has, and after the run every byte
// of the user's is still there.
func TestVetWithRealFstabs(t *testing.T) {
	needFindmnt(t)
	want := map[string]struct {
		conflict string   // "" when the block goes in
		warnings []string // line numbers named
	}{
		"clash-slash.fstab":   {conflict: "line 2 already mounts /mnt/backup"},
		"clash-double.fstab":  {conflict: "line 3 already mounts /mnt/nas"},
		"clash-escaped.fstab": {conflict: "line 2 already mounts /mnt/backup"},
		"clash-dot.fstab":     {conflict: "line 2 already mounts /mnt/backup"},
		"broken.fstab":        {warnings: []string{"fstab line 2 ", "fstab line 3 ", "fstab line 4 "}},
		// /mnt (line 4) comes after /mnt/backup2 and /mnt/backups: findmnt's
		// complaint about the user's own order is theirs to read.
		"near-miss.fstab": {warnings: []string{"fstab line 2 ", "fstab line 3 "}},
	}
	for name, data := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			h := host.NewRooted("test", dir)
			os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
			os.WriteFile(filepath.Join(dir, "etc/fstab"), data, 0o644)
			b := &steps.Block{Path: "/etc/fstab", Lines: []byte(ownLines), Mode: 0o644, Owner: host.Root,
				Vet: fstab.Vet([]string{"/mnt/backup", "/mnt/nas"})}
			c, err := b.Check(context.Background(), h)
			if err != nil {
				t.Fatal(err)
			}
			w := want[name]
			if w.conflict != "" {
				if c.Action != plan.Conflict || !strings.Contains(c.Reason, w.conflict) {
					t.Fatalf("want a conflict %q, got %+v", w.conflict, c)
				}
				return
			}
			if !c.Action.Pending() {
				t.Fatalf("got %+v", c)
			}
			if len(c.Warnings) != len(w.warnings) {
				t.Errorf("warnings %q, want lines %q", c.Warnings, w.warnings)
			}
			for i, l := range w.warnings {
				if i < len(c.Warnings) && !strings.Contains(c.Warnings[i], l) {
					t.Errorf("warning %q does not name %q", c.Warnings[i], l)
				}
			}
			if err := b.Apply(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(dir, "etc/fstab"))
			if user := data; len(user) > 0 && user[len(user)-1] != '\n' {
				data = append(slices.Clone(user), '\n')
			}
			if !bytes.HasPrefix(got, data) || !strings.HasSuffix(string(got), ownLines+steps.BlockEnd+"\n") {
				t.Fatalf("the user's lines did not survive:\n%s", got)
			}
			if c, _ := b.Check(context.Background(), h); c.Action != plan.OK {
				t.Fatalf("second check: %+v", c)
			}
		})
	}
}

// findmnt's own refusals of borgkit's lines stop the plan, and only those:
// a filesystem type the disk does not have is one.
func TestVerifyRefusesBorgkitsOwnLines(t *testing.T) {
	needFindmnt(t)
	h := host.NewRooted("test", t.TempDir())
	v, err := fstab.Verify(context.Background(), h, []byte("/dev/sda1 /mnt/x ext4 defaults 0 zero\n"), nil)
	if err != nil || len(v.Errors) == 0 || !strings.Contains(strings.Join(v.Errors, " "), "pass") {
		t.Fatalf("%v %+v", err, v)
	}
	v, err = fstab.Verify(context.Background(), h, []byte(ownLines), nil)
	if err != nil || len(v.Errors) != 0 {
		t.Fatalf("a nofail disk that is not plugged in: %v %+v", err, v)
	}
	leftovers, _ := filepath.Glob(filepath.Join(os.TempDir(), "borgkit-fstab.*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary directories left behind: %v", leftovers)
	}
}

// runCounter counts the programs run on a host.
type runCounter struct {
	host.Host
	runs int
}

func (r *runCounter) Run(ctx context.Context, c host.Cmd) (host.Result, error) {
	r.runs++
	return r.Host.Run(ctx, c)
}

// Verify is one program on the host, both findmnt runs and the private
// directory included: over the offsite link each program waits a round
// trip or two. Its verdict is still findmnt's on each part: borgkit's
// broken line refused, the user's line out of order warned about with
// its line number.
func TestVerifyIsOneProgram(t *testing.T) {
	needFindmnt(t)
	h := &runCounter{Host: host.NewRooted("test", t.TempDir())}
	// /mnt after /mnt/b: findmnt's complaint about the user's order.
	others := []byte("UUID=1234 / ext4 defaults 0 1\n\n/dev/sdb2 /mnt/b ext4 defaults 0 2\n/dev/sdb4 /mnt ext4 defaults 0 2\n")
	v, err := fstab.Verify(context.Background(), h, []byte("/dev/sda1 /mnt/x ext4 defaults 0 zero\n"), others)
	if err != nil {
		t.Fatal(err)
	}
	if h.runs != 1 {
		t.Errorf("Verify ran %d programs, want 1", h.runs)
	}
	if len(v.Errors) == 0 || !strings.Contains(strings.Join(v.Errors, " "), "pass") {
		t.Errorf("borgkit's broken line: errors %q", v.Errors)
	}
	if len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "fstab line 3 ") {
		t.Errorf("the user's lines: warnings %q, want one for line 3", v.Warnings)
	}
}
