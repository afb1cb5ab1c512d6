package hosttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os/exec"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
)

// hostile are arguments a shell would rewrite; they must arrive unchanged.
var hostile = []string{
	"two words", `it's "quoted"`, "$HOME", "${PATH}", "a;b", "*", "line1\nline2",
	"", "-n", `back\slash`, "`id`", "$(id)", "~", "a|b&c>d<e", "#comment", "tab\there", "!",
}

func testRunArgvExact(t *testing.T, h host.Host, _ string) {
	argv := append([]string{"printf", "[%s]"}, hostile...)
	want := "[" + strings.Join(hostile, "][") + "]"
	if got := run(t, h, argv...); got != want {
		t.Errorf("printf echoed\n%q\nwant\n%q", got, want)
	}
}

func testRunStdin(t *testing.T, h host.Host, _ string) {
	in := make([]byte, 1<<20)
	rand.Read(in)
	res, err := h.Run(ctx(t), host.Cmd{Argv: []string{"cat"}, Stdin: bytes.NewReader(in)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Stdout, in) {
		t.Errorf("cat returned %d bytes, not the %d given", len(res.Stdout), len(in))
	}
}

// A nil Stdin must read as empty, not block on the caller's stdin.
func testRunNilStdin(t *testing.T, h host.Host, _ string) {
	if got := run(t, h, "cat"); got != "" {
		t.Errorf("cat with nil stdin printed %q", got)
	}
}

func testRunEnv(t *testing.T, h host.Host, _ string) {
	val := `a b $HOME 'q' "d" ;*` + "\nnext"
	res, err := h.Run(ctx(t), host.Cmd{
		Argv: []string{"sh", "-c", `printf '%s|%s' "$BORGKIT_X" "$BORGKIT_Y"`},
		Env:  []string{"BORGKIT_X=" + val, "BORGKIT_Y=2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(res.Stdout), val+"|2"; got != want {
		t.Errorf("env came through as %q, want %q", got, want)
	}
	// The host's own environment is kept, not replaced.
	res, err = h.Run(ctx(t), host.Cmd{Argv: []string{"sh", "-c", `printf %s "$PATH"`}, Env: []string{"BORGKIT_X=1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) == 0 {
		t.Error("PATH lost when Env is set")
	}
}

func testRunDir(t *testing.T, h host.Host, root string) {
	dir := path.Join(root, "work dir")
	if err := h.MkdirAll(ctx(t), dir, 0o755, host.Owner{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	write(t, h, path.Join(dir, "marker"), "here", 0o644)
	res, err := h.Run(ctx(t), host.Cmd{Argv: []string{"cat", "marker"}, Dir: h.Path(dir)})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "here" {
		t.Errorf("cat marker in Dir printed %q", res.Stdout)
	}
	// A missing Dir fails the run; the program must not run elsewhere.
	res, err = h.Run(ctx(t), host.Cmd{Argv: []string{"echo", "ran"}, Dir: h.Path(path.Join(root, "missing"))})
	if err == nil || len(res.Stdout) != 0 {
		t.Errorf("missing Dir: err %v, stdout %q", err, res.Stdout)
	}
}

func testRunExitError(t *testing.T, h host.Host, _ string) {
	argv := []string{"sh", "-c", "echo out; echo first >&2; echo why >&2; exit 3"}
	res, err := h.Run(ctx(t), host.Cmd{Argv: argv})
	var ee *host.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v (%T), want *host.ExitError", err, err)
	}
	if ee.ExitCode != 3 || res.ExitCode != 3 {
		t.Errorf("exit codes %d (error) and %d (result), want 3", ee.ExitCode, res.ExitCode)
	}
	if ee.Host != h.Name() || strings.Join(ee.Argv, "\x00") != strings.Join(argv, "\x00") {
		t.Errorf("error names host %q argv %q", ee.Host, ee.Argv)
	}
	if string(res.Stdout) != "out\n" || string(res.Stderr) != "first\nwhy\n" {
		t.Errorf("result stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	if msg := err.Error(); !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "why") || !strings.Contains(msg, h.Name()) {
		t.Errorf("message %q lacks exit status, stderr tail or host", msg)
	}
}

func testRunMissingProgram(t *testing.T, h host.Host, _ string) {
	for _, prog := range []string{"borgkit-no-such-program", "/nonexistent/borgkit-no-such-program"} {
		_, err := h.Run(ctx(t), host.Cmd{Argv: []string{prog, "arg"}})
		if !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("%s: err = %v, want one wrapping exec.ErrNotFound", prog, err)
			continue
		}
		if !strings.Contains(err.Error(), prog) {
			t.Errorf("%s: message %q does not name the program", prog, err)
		}
	}
}

func testRunContextTimeout(t *testing.T, h host.Host, _ string) {
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Run(c, host.Cmd{Argv: []string{"sleep", "30"}})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cancelled run took %v", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want one wrapping context.DeadlineExceeded", err)
	}
	// A shell's children go too: nothing may keep the run waiting.
	c2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	start = time.Now()
	h.Run(c2, host.Cmd{Argv: []string{"sh", "-c", "sleep 30; echo done"}})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cancelled sh -c run took %v", took)
	}
}

func testRunLargeOutput(t *testing.T, h host.Host, _ string) {
	res, err := h.Run(ctx(t), host.Cmd{Argv: []string{"head", "-c", "3000000", "/dev/zero"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != 3000000 {
		t.Errorf("got %d bytes of stdout, want 3000000", len(res.Stdout))
	}
}
