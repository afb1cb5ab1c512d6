package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Run opens a session on the host's connection for one program. sshd runs
// the command through the user's login shell whatever we do, so the command
// line is built from argv with every word single-quoted: the shell only ever
// sees literal words. The login shell must be POSIX-like (sh, bash, dash,
// zsh); csh would mis-read a newline inside quotes.
//
// Env is passed as `env 'K=V' ...` because sshd drops session.Setenv unless
// its AcceptEnv allows the name. That puts the values in the argv of env for
// a moment, visible in the remote's ps: secrets belong in Stdin or files.
//
// A cancelled ctx kills the program and its children: see sshkill.go.
//
// Programs may run at once, each in its own session of the one connection:
// over a slow link their round trips then overlap. sshd allows 10 sessions
// per connection by default (MaxSessions) and SFTP keeps one open, so at
// most maxRuns run at a time and the others wait for a free session; a
// cancel's kill uses one of the rest.
func (h *sshHost) Run(ctx context.Context, c Cmd) (Result, error) {
	select {
	case h.sessions <- struct{}{}:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("run %s on %s: %w", QuoteArgv(c.Argv), h.name, ctx.Err())
	}
	return h.run(ctx, c, func() { <-h.sessions })
}

// maxRuns bounds the programs Run runs at once on one connection, and
// with them the sessions opened ahead (openAhead): with SFTP's session, a
// few of sshd's 10 are left for the kills of cancelled programs.
const maxRuns = 6

// run is Run in a session it opens; release is called once the session
// is closed (after a kill, that is after Run returned).
func (h *sshHost) run(ctx context.Context, c Cmd, release func()) (Result, error) {
	fail := func(err error) error { return fmt.Errorf("run %s on %s: %w", QuoteArgv(c.Argv), h.name, err) }
	line, err := remoteCommand(c)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		release()
		return Result{}, fail(err)
	}
	sess, err := h.session()
	if err != nil {
		release()
		return Result{}, fail(fmt.Errorf("open session: %w", err))
	}
	closeSession := func() { sess.Close(); release() }
	var stdout, stderr bytes.Buffer
	pid := &pidFilter{w: &stderr}
	sess.Stdout, sess.Stderr = &stdout, pid
	if c.Stdin != nil {
		// Copied by us, not by the session: Session.Wait waits for its own stdin
		// copy, so a reader that never ends would hang Run after the program
		// exited. A nil Stdin is sent as an immediate EOF by the session.
		w, err := sess.StdinPipe()
		if err != nil {
			closeSession()
			return Result{}, fail(err)
		}
		go func() {
			io.Copy(w, c.Stdin)
			w.Close()
		}()
	}
	if err := sess.Start(line); err != nil {
		closeSession()
		return Result{}, fail(fmt.Errorf("start: %w", err))
	}
	var waitErr error
	finished := make(chan struct{})
	go func() { waitErr = sess.Wait(); close(finished) }()

	select {
	case <-finished:
		closeSession()
		pid.flush()
	case <-ctx.Done():
		// The kill may be slow on a loaded host; the caller gets control back
		// after waitDelay at the latest, while the kill goes on. The session
		// stays open until then: closing it would end Wait and look like the
		// program's end.
		go h.kill(closeSession, finished, pid)
		select {
		case <-finished:
			pid.flush()
			return Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: -1}, fail(fmt.Errorf("killed: %w", ctx.Err()))
		case <-time.After(waitDelay):
			return Result{ExitCode: -1}, fail(fmt.Errorf("killing, the program has not ended yet: %w", ctx.Err()))
		}
	}
	err = waitErr
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if err == nil {
		return res, nil
	}
	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitStatus()
		if exit.Signal() != "" {
			res.ExitCode = -1 // as os/exec reports a killed process
		}
		ee := &ExitError{Host: h.name, Argv: c.Argv, ExitCode: res.ExitCode, Stderr: res.Stderr}
		if res.ExitCode == 127 {
			// The shell's (or env's) "command not found".
			return res, fail(&notFoundError{prog: c.Argv[0], err: ee})
		}
		return res, ee
	case errors.As(err, &missing):
		res.ExitCode = -1
		return res, fail(fmt.Errorf("the program ended without an exit status (connection lost?): %w", err))
	}
	res.ExitCode = -1
	return res, fail(err)
}

// remoteCommand renders c for the remote shell. The shell first reports its
// pid, then `exec` replaces it by the program, which so keeps that pid.
func remoteCommand(c Cmd) (string, error) {
	if len(c.Argv) == 0 {
		return "", errors.New("empty argv")
	}
	prog := c.Argv[0]
	// exec and env would read such a word as an option or an assignment.
	withEnv := len(c.Env) > 0 || len(c.Unset) > 0
	if prog == "" || strings.HasPrefix(prog, "-") || (withEnv && strings.Contains(prog, "=")) {
		return "", fmt.Errorf("program name %q cannot be run safely", prog)
	}
	var b strings.Builder
	b.WriteString(pidLine)
	if c.Dir != "" {
		dir := c.Dir
		if strings.HasPrefix(dir, "-") {
			dir = "./" + dir
		}
		b.WriteString("cd " + shellQuote(dir) + " && ")
	}
	b.WriteString("exec")
	if withEnv {
		b.WriteString(" env")
		for _, name := range c.Unset {
			if name == "" || strings.ContainsAny(name, "=\x00") {
				return "", fmt.Errorf("cannot unset %q", name)
			}
			b.WriteString(" -u " + shellQuote(name))
		}
		for _, kv := range c.Env {
			if i := strings.IndexByte(kv, '='); i <= 0 {
				return "", fmt.Errorf("env entry %q is not KEY=VALUE", kv)
			}
			b.WriteString(" " + shellQuote(kv))
		}
	}
	for _, a := range c.Argv {
		b.WriteString(" " + shellQuote(a))
	}
	return b.String(), nil
}

// shellQuote makes s one literal word for a POSIX shell: inside single quotes
// nothing is special, and a single quote itself is closed, escaped, reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
