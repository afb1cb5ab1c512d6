package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"syscall"
)

// osHost is this machine. With root == "" it is the live system (NewLocal);
// otherwise every path is mapped under root (NewRooted) and everything else
// stays the same, so both share this code.
type osHost struct {
	name string
	root string
}

// NewLocal returns the machine borgkit runs on.
func NewLocal(name string) Host { return &osHost{name: name} }

func (h *osHost) Name() string { return h.name }
func (h *osHost) Live() bool   { return h.root == "" }
func (h *osHost) Close() error { return nil }

func (h *osHost) Path(p string) string {
	if h.root == "" {
		return p
	}
	return filepath.Join(h.root, filepath.Clean("/"+p))
}

// resolve turns a path as the host sees it into one for the os package.
// follow says the operation follows a symlink in the last component.
func (h *osHost) resolve(p string, follow bool) (string, error) {
	if !filepath.IsAbs(p) {
		return "", errRelative
	}
	if h.root == "" {
		return filepath.Clean(p), nil
	}
	return h.rootedPath(p, follow)
}

func (h *osHost) Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{}, fmt.Errorf("run on %s: empty argv", h.name)
	}
	fail := func(err error) error { return fmt.Errorf("run %s on %s: %w", QuoteArgv(c.Argv), h.name, err) }
	if err := ctx.Err(); err != nil {
		return Result{}, fail(err)
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	if errors.Is(cmd.Err, exec.ErrNotFound) {
		return Result{}, fail(&notFoundError{prog: c.Argv[0], err: cmd.Err})
	}
	cmd.Stdin = c.Stdin
	if len(c.Env) > 0 || len(c.Unset) > 0 {
		cmd.Env = append(Environ(c.Unset...), c.Env...)
	}
	cmd.Dir = c.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	OwnGroup(cmd)

	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if err == nil {
		return res, nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return res, fail(fmt.Errorf("killed: %w", ctxErr))
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return res, &ExitError{Host: h.name, Argv: c.Argv, ExitCode: ee.ExitCode(), Stderr: res.Stderr}
	case errors.Is(err, exec.ErrWaitDelay):
		return res, fail(fmt.Errorf("exited, but a child kept its output open: %w", err))
	case isExecNotFound(err):
		return res, fail(&notFoundError{prog: c.Argv[0], err: err})
	}
	return res, fail(err)
}

// isExecNotFound tells a missing program (or a missing #! interpreter, which
// execve reports the same way) from other start failures such as a missing
// Dir. exec.Command already reports bare names missing from PATH.
func isExecNotFound(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Op == "fork/exec" && errors.Is(pe.Err, syscall.ENOENT)
}
