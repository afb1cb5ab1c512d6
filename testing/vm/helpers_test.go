package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
)

var (
	binOnce sync.Once
	binData []byte
	binErr  error
)

// borgkitBinary builds the CLI once per test process: the guests run the
// very code under test.
func borgkitBinary(t *testing.T) []byte {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("BORGKIT_VM_BINARY"); p != "" {
			// A prebuilt borgkit, e.g. of a commit other than the tree's.
			binData, binErr = os.ReadFile(p)
			return
		}
		dir, err := os.MkdirTemp("", "borgkit-vm-bin-")
		if err != nil {
			binErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "borgkit")
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/borgkit/borgkit/cmd/borgkit")
		// Static: the guests' libc is bookworm's too, but a static binary
		// does not care which Debian the image is.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build borgkit: %v\n%s", err, b)
			return
		}
		binData, binErr = os.ReadFile(out)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binData
}

// must runs argv on g and fails the test on any error, with the program's
// output; it returns stdout, trimmed.
func must(ctx context.Context, t *testing.T, g *Guest, argv ...string) string {
	t.Helper()
	res, err := g.Run(ctx, argv...)
	if err != nil {
		t.Fatalf("%s: %s: %v\nstdout:\n%s\nstderr:\n%s", g.Name(), host.QuoteArgv(argv), err, res.Stdout, res.Stderr)
	}
	return strings.TrimSpace(string(res.Stdout))
}

// mustIn is must with stdin, for secrets that must not be in an argv.
func mustIn(ctx context.Context, t *testing.T, g *Guest, stdin []byte, argv ...string) string {
	t.Helper()
	res, err := g.RunCmd(ctx, host.Cmd{Argv: argv, Stdin: bytes.NewReader(stdin)})
	if err != nil {
		t.Fatalf("%s: %s: %v\nstdout:\n%s\nstderr:\n%s", g.Name(), host.QuoteArgv(argv), err, res.Stdout, res.Stderr)
	}
	return strings.TrimSpace(string(res.Stdout))
}

// step runs one timed part of a scenario and prints its time.
func step(t *testing.T, what string, fn func()) {
	t.Helper()
	start := time.Now()
	t.Logf("--- %s", what)
	fn()
	timing(strings.TrimPrefix(t.Name(), "TestVM")+": "+what, time.Since(start))
}

// waitFor polls cond every interval until it reports done, or fails the
// test after timeout with cond's last word on why not.
func waitFor(ctx context.Context, t *testing.T, what string, timeout, interval time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var why string
	for {
		ok, w := cond()
		if ok {
			return time.Since(start)
		}
		why = w
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s: %s", what, timeout, why)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (last: %s)", what, ctx.Err(), why)
		case <-time.After(interval):
		}
	}
}

// treeHashes hashes every file under dir on g: relative path → sha256.
// find -exec keeps it to argv; the sorting happens here.
func treeHashes(ctx context.Context, t *testing.T, g *Guest, dir string) map[string]string {
	t.Helper()
	out := must(ctx, t, g, "find", dir, "-type", "f", "-exec", "sha256sum", "{}", "+")
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		sum, p, ok := strings.Cut(line, "  ")
		if !ok {
			continue
		}
		m[strings.TrimPrefix(p, strings.TrimSuffix(dir, "/")+"/")] = sum
	}
	return m
}

// sameTree fails the test unless want and got hold the same files with the
// same content.
func sameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: no files to compare", what)
	}
	var diff []string
	for p, h := range want {
		if got[p] != h {
			diff = append(diff, fmt.Sprintf("%s: want %.12s got %.12s", p, h, got[p]))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diff = append(diff, p+": extra")
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Fatalf("%s differ in %d of %d files:\n%s", what, len(diff), len(want), strings.Join(diff, "\n"))
	}
}

// seedData writes n random files of size bytes under dir on g and returns
// their hashes by relative path.
func seedData(ctx context.Context, t *testing.T, g *Guest, dir string, n, size int) map[string]string {
	t.Helper()
	must(ctx, t, g, "mkdir", "-p", dir)
	m := map[string]string{}
	for i := range n {
		b := make([]byte, size)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("file-%02d.bin", i)
		if err := g.WriteFile(ctx, filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		m[name] = hex.EncodeToString(sum[:])
	}
	return m
}

// findmnt says what is mounted on mountpoint on g: "SOURCE FSTYPE", or ""
// when nothing is.
func findmnt(ctx context.Context, g *Guest, mountpoint string) (string, error) {
	res, err := g.Run(ctx, "findmnt", "-n", "-o", "SOURCE,FSTYPE", "--mountpoint", mountpoint)
	var ee *host.ExitError
	if errors.As(err, &ee) && ee.ExitCode == 1 {
		return "", nil
	}
	return strings.Join(strings.Fields(string(res.Stdout)), " "), err
}

// journal is what unit logged in the current boot.
func journal(ctx context.Context, g *Guest, unit string) string {
	res, _ := g.Run(ctx, "journalctl", "-b", "-u", unit, "-o", "short-monotonic", "--no-pager")
	return string(res.Stdout)
}

// bootWithSite boots g and gives it borgkit, the config and the server's
// tree unpacked under root: the start the bundle-writing scenarios share.
func bootWithSite(ctx context.Context, t *testing.T, g *Guest, bin, siteTar, cfg []byte, root string) {
	t.Helper()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitSSH(ctx, bootTimeout); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{labBinary, bin, 0o755}, {"/root/site.tar", siteTar, 0o600}, {labConfig, cfg, 0o600}} {
		if err := g.WriteFile(ctx, f.path, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	must(ctx, t, g, "mkdir", "-p", root)
	must(ctx, t, g, "tar", "-C", root, "-xf", "/root/site.tar")
}
