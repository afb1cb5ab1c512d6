package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/borgkit/borgkit/testing/loopdev"
)

// run executes the CLI in-process and returns its output (stdout and
// stderr, and the error main would print) and exit status.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runContext(t, context.Background(), args...)
}

// runContext is run with the context main would cancel on SIGINT/SIGTERM.
func runContext(t *testing.T, ctx context.Context, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := execute(t, ctx, &out, &out, args...)
	return out.String(), code
}

// runSplit is run with stdout and stderr apart.
func runSplit(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = execute(t, context.Background(), &o, &e, args...)
	return o.String(), e.String(), code
}

// execute runs the CLI as main does, printing the error to stderr where
// main would, and notes the exit status each command returned for
// TestMain's check against the codes its help lists.
func execute(t *testing.T, ctx context.Context, stdout, stderr *bytes.Buffer, args ...string) int {
	t.Helper()
	return executeIn(t, ctx, nil, stdout, stderr, args...)
}

// executeIn is execute with stdin (nil: cobra's default, os.Stdin).
func executeIn(t *testing.T, ctx context.Context, stdin io.Reader, stdout, stderr *bytes.Buffer, args ...string) int {
	t.Helper()
	root := newRootCommand()
	root.SetOut(stdout)
	root.SetErr(stderr)
	if stdin != nil {
		root.SetIn(stdin)
	}
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	code := exitCode(err)
	if err != nil && code != exitPending && !errors.Is(err, errReported) {
		stderr.WriteString("error: " + err.Error() + "\n")
	}
	if cmd != nil {
		observed.add(cmd, code)
	}
	return code
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "borgkit.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProvisionRootTwice(t *testing.T) {
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed (make deps installs it): provisioning runs the real borg init")
	}
	root := t.TempDir()
	cfg := writeConfig(t, string(exampleConfig(t)))
	base := []string{"--config", cfg, "provision", "john-ai", "--root", root}

	out, code := run(t, append(base, "--dry-run", "--detailed-exitcode")...)
	if code != exitPending || !strings.Contains(out, "+ repo.john-ai-docker") {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("dry run wrote %v", entries)
	}
	out, code = run(t, append(base, "--detailed-exitcode")...)
	if code != exitPending || !strings.Contains(out, "every step re-checked and satisfied") {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	for _, f := range []string{"etc/fstab", "etc/cron.d/borgkit", "mnt/backup/john-ai/config", "etc/borgkit/keys/john-ai.borg-key", "usr/local/bin/borgkit"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("first run did not write %s: %v", f, err)
		}
	}
	out, code = run(t, append(base, "--detailed-exitcode")...)
	if code != exitOK || !strings.Contains(out, "john-ai: no changes.") {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	out, code = run(t, base...)
	if code != exitOK {
		t.Fatalf("third run without --detailed-exitcode: exit %d\n%s", code, out)
	}
}

func exampleConfig(t *testing.T) []byte {
	out, code := run(t, "config", "example")
	if code != 0 {
		t.Fatalf("config example: %d %s", code, out)
	}
	return []byte(out)
}

func TestBadConfigExitsTwoAndChangesNothing(t *testing.T) {
	root := t.TempDir()
	good := string(exampleConfig(t))
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown field", "version: 1", "version: 1\nbogus: true", "bogus"},
		{"bad uuid", "uuid: ", "uuid: not-a-uuid-", "uuid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(good, tt.from, tt.to, 1)
			if bad == good {
				t.Fatalf("example has no %q", tt.from)
			}
			cfg := writeConfig(t, bad)
			out, code := run(t, "--config", cfg, "provision", "john-ai", "--root", root)
			if code != exitUsage || !strings.Contains(out, cfg+":") || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Fatalf("bad config changed the tree: %v", entries)
			}
			out, code = run(t, "config", "validate", cfg)
			if code != exitUsage || !strings.Contains(out, tt.want) {
				t.Fatalf("validate: exit %d\n%s", code, out)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"provision"},
		{"provision", "a", "b"},
		{"provision", "john-ai", "--no-such-flag"},
		{"--config", "/nonexistent/borgkit.yaml", "plan", "john-ai"},
	} {
		if out, code := run(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, exitUsage, out)
		}
	}
	cfg := writeConfig(t, string(exampleConfig(t)))
	if out, code := run(t, "--config", cfg, "plan", "no-such-host", "--root", t.TempDir()); code != exitUsage || !strings.Contains(out, "no-such-host") {
		t.Errorf("unknown host: exit %d\n%s", code, out)
	}
}

func TestValidateExample(t *testing.T) {
	cfg := writeConfig(t, string(exampleConfig(t)))
	out, code := run(t, "config", "validate", cfg)
	if code != exitOK || !strings.Contains(out, "ok (3 hosts") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestVersionJSON(t *testing.T) {
	out, code := run(t, "version", "--json")
	if code != 0 || !strings.Contains(out, `"version"`) {
		t.Fatalf("%d %s", code, out)
	}
}

func TestPlanRefusesToFormatADiskWithData(t *testing.T) {
	d := loopdev.New(t, 24<<20)
	d.Run(t, "mkfs.ext4", "-q", "-F", d.Path)
	before := d.Hash(t)
	src := strings.Replace(string(exampleConfig(t)), "device: /dev/disk/by-id/usb-WD_Elements_25A3_575834314135383432363139-0:0", "device: "+d.Path, 1)
	cfg := writeConfig(t, src)
	out, code := run(t, "--config", cfg, "plan", "pi", "--local", "--format", d.Path)
	if code != exitFailed || !strings.Contains(out, "! luks."+d.Path) || !strings.Contains(out, "never formats over existing data") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if d.Hash(t) != before {
		t.Fatal("the disk changed")
	}
}

func TestCheckKeyExitCodes(t *testing.T) {
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Skip("cryptsetup is not installed (make deps installs cryptsetup-bin): the header is made by the real one")
	}
	dir := t.TempDir()
	img, key, other := filepath.Join(dir, "disk.img"), filepath.Join(dir, "key"), filepath.Join(dir, "other")
	os.WriteFile(key, bytes.Repeat([]byte{7}, 64), 0o400)
	os.WriteFile(other, bytes.Repeat([]byte{8}, 64), 0o400)
	f, _ := os.Create(img)
	f.Truncate(20 << 20)
	f.Close()
	if out, err := exec.Command("cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--key-file", key,
		"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", img).CombinedOutput(); err != nil {
		t.Fatalf("luksFormat: %v %s", err, out)
	}
	for _, tt := range []struct {
		header, key string
		code        int
		out         string
	}{
		{img, key, exitOK, "opens keyslot 0"},
		{img, other, exitFailed, "no keyslot opened"},
		{key, key, exitUsage, "not a LUKS device"},
	} {
		out, code := run(t, "recovery-bundle", "check-key", "--header", tt.header, "--key-file", tt.key)
		if code != tt.code || !strings.Contains(out, tt.out) {
			t.Errorf("%s with %s: exit %d, want %d\n%s", tt.header, tt.key, code, tt.code, out)
		}
	}
	// A signal (here: the context main cancels on one) stops the check:
	// an interrupted check is no verdict on the key.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out, code := runContext(t, ctx, "recovery-bundle", "check-key", "--header", img, "--key-file", key)
	if code != exitUsage || !strings.Contains(out, "interrupted") {
		t.Errorf("cancelled check-key: exit %d, want %d and interrupted\n%s", code, exitUsage, out)
	}
}

// A named pipe blocked the load forever, with SIGINT and SIGTERM caught and
// ignored; /dev/zero was read until the OOM killer came; a 50 MB file was
// accepted. Each is now refused at once, as bad usage, before anything runs.
func TestConfigMustBeASmallRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	large := writeConfig(t, string(exampleConfig(t))+strings.Repeat("#\n", 25<<20))
	for _, tc := range []struct{ path, want string }{
		{fifo, "is a named pipe"},
		{"/dev/zero", "is a character device"},
		{large, "over the limit of 1048576"},
	} {
		for _, args := range [][]string{
			{"config", "validate", tc.path},
			{"--config", tc.path, "plan", "john-ai", "--root", filepath.Join(dir, "root")},
		} {
			done := make(chan struct{})
			go func() {
				defer close(done)
				if out, code := run(t, args...); code != exitUsage || !strings.Contains(out, tc.want) {
					t.Errorf("%v: exit %d, want %d and %q\n%s", args, code, exitUsage, tc.want, out)
				}
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("%v: still loading after 30s", args)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "root")); !os.IsNotExist(err) {
		t.Errorf("a refused config left a tree: %v", err)
	}
}

// The user's own fstab lines never block a run, a clash with borgkit's
// mountpoints is seen however it is spelt, and plan names the refusal
// provision would meet, before anything is applied.
func TestProvisionAndTheUsersFstab(t *testing.T) {
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed (make deps installs it): provisioning runs the real borg init")
	}
	cfg := writeConfig(t, string(exampleConfig(t)))
	for _, tc := range []struct {
		name, fstab string
		code        int
		want        string
	}{
		// An unplugged stick: findmnt cannot detect its type, which made
		// the whole run fail after the earlier steps were applied.
		{"unplugged stick", "UUID=11111111-2222-4333-8444-555555555555 / ext4 defaults 0 1\n/dev/disk/by-label/STICK /media/stick auto noauto,nofail,user 0 0\n", exitOK, "every step re-checked"},
		{"a broken line of the user's", "UUID=11111111-2222-4333-8444-555555555555 / ext4 defaults 0 1\n/dev/sdz9 /mnt/z\n", exitPending, "warning: fstab line 2 (not borgkit's)"},
		{"clash with a trailing slash", "UUID=11111111-2222-4333-8444-555555555555 / ext4 defaults 0 1\n/dev/sdb1 /mnt/backup/ ext4 defaults 0 2\n", exitFailed, "fstab line 2 already mounts /mnt/backup"},
		{"clash with a double slash", "//old/share /mnt//nas cifs guest 0 0\n", exitFailed, "fstab line 1 already mounts /mnt/nas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			os.WriteFile(filepath.Join(root, "etc/fstab"), []byte(tc.fstab), 0o644)
			planOut, planCode := run(t, "--config", cfg, "plan", "john-ai", "--root", root, "--detailed-exitcode")
			out, code := planOut, planCode
			if tc.code != exitPending { // a plan is enough to see the warning
				out, code = run(t, "--config", cfg, "provision", "john-ai", "--root", root)
			}
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("provision: exit %d, want %d and %q\n%s", code, tc.code, tc.want, out)
			}
			got, _ := os.ReadFile(filepath.Join(root, "etc/fstab"))
			if !strings.HasPrefix(string(got), tc.fstab) {
				t.Fatalf("the user's lines changed:\n%s", got)
			}
			if tc.code != exitFailed {
				return
			}
			// plan met the same refusal, and provision applied nothing.
			if planCode != exitFailed || !strings.Contains(planOut, tc.want) {
				t.Fatalf("plan: exit %d\n%s", planCode, planOut)
			}
			entries, _ := os.ReadDir(root)
			if len(entries) != 1 || string(got) != tc.fstab {
				t.Fatalf("a refused run wrote %v", entries)
			}
		})
	}
}

// A disk whose filesystem is not the one the config names: findmnt refuses
// borgkit's own line. The plan says so; before, provisioning applied the
// steps up to fstab and failed there.
func TestPlanRefusesAWrongFilesystemType(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 is not installed (make deps installs e2fsprogs)")
	}
	d := loopdev.New(t, 24<<20)
	const uuid = "6b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	d.Run(t, "mkfs.ext4", "-q", "-F", "-U", uuid, d.Path)
	ex := string(exampleConfig(t))
	ex = strings.Replace(ex, "uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f", "uuid: "+uuid, 1)
	ex = strings.Replace(ex, "fstype: ext4", "fstype: xfs", 1)
	cfg := writeConfig(t, ex)
	root := t.TempDir()
	for _, cmd := range []string{"plan", "provision"} {
		out, code := run(t, "--config", cfg, cmd, "john-ai", "--root", root)
		if code != exitFailed || !strings.Contains(out, "does not match with on-disk ext4") {
			t.Fatalf("%s: exit %d\n%s", cmd, code, out)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("a refused run wrote %v", entries)
	}
}

// --root keeps borg in the tree: with ROOT/root/.config and .cache linked
// out of it, borg (run with BORG_BASE_DIR=ROOT/root) wrote its security
// and cache directories outside. A key export destination that is a
// symlink was found only after 22 steps were applied. Both are conflicts
// in the plan now, and nothing is applied.
func TestRootedRunsRefuseLinksOutOfTheTree(t *testing.T) {
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed (make deps installs it): provisioning runs the real borg")
	}
	cfg := writeConfig(t, string(exampleConfig(t)))
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root, outside string)
		want  string
	}{
		{"borg's base dir linked out", func(t *testing.T, root, outside string) {
			os.MkdirAll(filepath.Join(root, "root"), 0o700)
			os.MkdirAll(filepath.Join(outside, "config"), 0o700)
			os.MkdirAll(filepath.Join(outside, "cache"), 0o700)
			os.Symlink(filepath.Join(outside, "config"), filepath.Join(root, "root/.config"))
			os.Symlink(filepath.Join(outside, "cache"), filepath.Join(root, "root/.cache"))
		}, "outside the root"},
		{"key export through a symlink", func(t *testing.T, root, outside string) {
			os.MkdirAll(filepath.Join(root, "etc/borgkit/keys"), 0o700)
			os.Symlink("/tmp/elsewhere", filepath.Join(root, "etc/borgkit/keys/john-ai.borg-key"))
		}, "/etc/borgkit/keys/john-ai.borg-key is a symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			tc.setup(t, root, outside)
			before := tree(t, root)
			for _, cmd := range []string{"plan", "provision"} {
				out, code := run(t, "--config", cfg, cmd, "john-ai", "--root", root)
				if code != exitFailed || !strings.Contains(out, tc.want) {
					t.Fatalf("%s: exit %d, want %d and %q\n%s", cmd, code, exitFailed, tc.want, out)
				}
			}
			if after := tree(t, root); !slices.Equal(before, after) {
				t.Fatalf("a refused run changed the tree:\n%q\n%q", before, after)
			}
			if got := tree(t, outside); len(got) > 2 {
				t.Fatalf("borg wrote outside the tree: %q", got)
			}
		})
	}
}

// tree lists every path under dir.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if p != dir {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}
