package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"time"
)

// waitDelay bounds how long Run waits for a program's output after it exited
// or was killed: a background child that inherited stdout must not hang a run.
const waitDelay = 3 * time.Second

// errRelative is returned for a relative path: what it is relative to differs
// between hosts (the tool's cwd locally, the login directory over SSH), so the
// contract allows only absolute paths.
var errRelative = errors.New("path is not absolute")

// errSymlink refuses writes and metadata changes through a symlink: a tool run
// as root must not be steered onto another file by a planted link.
var errSymlink = errors.New("refusing to follow a symlink")

// tempPrefix starts the name of the temporary entry WriteFile creates beside
// base. It starts with a dot and contains dots, so directories read by name
// patterns (sudoers.d, cron.d, *.conf includes) skip it; the base is cut so
// the name stays under NAME_MAX.
func tempPrefix(base string) string {
	if len(base) > 100 {
		base = base[:100]
	}
	return "." + base + ".borgkit-tmp-"
}

// notFoundError says a program is missing. It wraps exec.ErrNotFound so that
// callers can tell "install the tool" from "the tool failed", and the
// underlying error (an *ExitError over SSH) for the details.
type notFoundError struct {
	prog string
	err  error
}

func (e *notFoundError) Error() string {
	return fmt.Sprintf("program %q not found: %v", e.prog, e.err)
}

func (e *notFoundError) Unwrap() []error { return []error{exec.ErrNotFound, e.err} }

// parseSHA256Sum takes the digest from sha256sum's one line of output. A
// name with a backslash or newline in it makes sha256sum start the line
// with a backslash.
func parseSHA256Sum(out []byte) (string, error) {
	s := strings.TrimPrefix(string(out), "\\")
	if len(s) < 64 {
		return "", fmt.Errorf("sha256sum printed %q, not a digest", out)
	}
	sum := s[:64]
	for _, c := range sum {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "", fmt.Errorf("sha256sum printed %q, not a digest", out)
		}
	}
	return sum, nil
}

// wrapOp gives an error the operation, the path as the host sees it and the
// host's name; the cause stays reachable for errors.Is.
func wrapOp(op, path, host string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s on %s: %w", op, path, host, err)
}

// regularTarget checks what WriteFile is about to replace: nothing, or a
// regular file. A symlink or a directory at path is an error.
func regularTarget(fi fs.FileInfo, err error) (exists bool, _ error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return false, fmt.Errorf("%w: the target is a symlink", errSymlink)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("the target is not a regular file (%s)", fi.Mode().Type())
	}
	return true, nil
}

// ownerSet reports whether o asks for any change at all.
func (o Owner) ownerSet() bool { return o.UID != -1 || o.GID != -1 }
