package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Programs the lab itself runs on the real machine, by absolute path where
// Debian fixes it, so a PATH of the caller cannot swap them.
const (
	ipProg      = "/usr/sbin/ip" // iproute2; /sbin/ip on merged-/usr systems is the same file
	nsenterProg = "/usr/bin/nsenter"
	unshareProg = "/usr/bin/unshare"
	losetupProg = "/usr/sbin/losetup"
	mkfsProg    = "/usr/sbin/mkfs.ext4"
	sshdProg    = "/usr/sbin/sshd" // absolute: sshd re-executes itself
	sleepProg   = "/usr/bin/sleep"
)

// hostEnv is the environment of every program run on a lab host: a root
// login's, not the caller's (a test's GOFLAGS or a developer's BORG_* must
// not leak into the jobs).
var hostEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"USER=root",
	"LOGNAME=root",
	"SHELL=/bin/sh",
	"LANG=C.UTF-8",
	"TERM=dumb",
}

// CmdError is a program that ran and failed, or could not start.
type CmdError struct {
	Host     string // "" for the real machine
	Argv     []string
	ExitCode int // -1 when it did not exit normally
	Stderr   []byte
	Err      error
}

func (e *CmdError) Error() string {
	where := "this machine"
	if e.Host != "" {
		where = e.Host
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", where, quote(e.Argv))
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, ": exit status %d", e.ExitCode)
	} else if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if t := tail(e.Stderr, 8); t != "" {
		fmt.Fprintf(&b, ": %s", t)
	}
	return b.String()
}

func (e *CmdError) Unwrap() error { return e.Err }

// ExitCode is the exit status of a failed command in err, or -1.
func ExitCode(err error) int {
	var ce *CmdError
	if errors.As(err, &ce) {
		return ce.ExitCode
	}
	return -1
}

// quote renders argv for messages; arguments with spaces or quotes are
// Go-quoted so the message shows where each argument ends.
func quote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// tail keeps the last n lines of output for an error message.
func tail(b []byte, n int) string {
	s := strings.TrimRight(string(b), "\n ")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// command builds an exec.Cmd in its own process group, so a cancel kills
// the program's children too, and so a terminal's Ctrl-C reaches the lab's
// Go process (which then tears down) rather than sshd or borg directly.
func command(ctx context.Context, env []string, argv ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = env
	c.Dir = "/"
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error {
		if err := syscall.Kill(-c.Process.Pid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return nil
	}
	// A daemon started by the program (none should be) must not keep the
	// output pipes, and with them this call, open forever.
	c.WaitDelay = 5 * time.Second
	return c
}

// run runs argv to completion and returns its output; a failure is a
// *CmdError naming host ("" for the real machine), argv, status and stderr.
func run(ctx context.Context, host string, log io.Writer, env []string, stdin io.Reader, display []string, argv ...string) ([]byte, []byte, error) {
	if len(argv) == 0 {
		return nil, nil, fmt.Errorf("lab: empty argv")
	}
	if display == nil {
		display = argv
	}
	var stdout, stderr bytes.Buffer
	c := command(ctx, env, argv...)
	c.Stdin, c.Stdout, c.Stderr = stdin, &stdout, &stderr
	start := time.Now()
	err := c.Run()
	if log != nil {
		where := host
		if where == "" {
			where = "lab"
		}
		status := "ok"
		if err != nil {
			status = err.Error()
		}
		fmt.Fprintf(log, "%s$ %s -> %s (%s)\n", where, quote(display), status, time.Since(start).Round(time.Millisecond))
	}
	if err == nil {
		return stdout.Bytes(), stderr.Bytes(), nil
	}
	ce := &CmdError{Host: host, Argv: display, ExitCode: -1, Stderr: stderr.Bytes(), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		ce.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		ce.ExitCode = -1
		ce.Err = fmt.Errorf("killed: %w", ctx.Err())
	}
	return stdout.Bytes(), stderr.Bytes(), ce
}

// local runs argv on the real machine (the lab's plumbing: ip, losetup,
// mkfs), with the caller's environment.
func (l *Lab) local(ctx context.Context, argv ...string) ([]byte, error) {
	out, _, err := run(ctx, "", l.opts.Log, os.Environ(), nil, nil, argv...)
	return out, err
}
