// Package host is how borgkit touches a machine: run a program by argv, read,
// write, stat and create files. The local, rooted and SSH hosts share one contract.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/tools"
)

// Cmd is one program run. There is no shell anywhere on the way: Argv[0] is
// the program, the rest are its arguments, byte for byte.
type Cmd struct {
	Argv  []string
	Stdin io.Reader // nil: empty stdin
	// Env is added to the program's environment as KEY=VALUE pairs. Secrets
	// belong in Stdin or in files, never here or in Argv: both can be read by
	// other users through /proc.
	Env []string
	// Unset names variables removed from the environment the program
	// inherits (the user's BORG_PASSPHRASE must not reach borg).
	Unset []string
	// Dir is the working directory; "" keeps the host's default. Like a path
	// in Argv, it is given as Host.Path returns it.
	Dir string
}

// Command is program name of the tool table (provision/tools) with args.
func Command(name string, args ...string) Cmd { return Cmd{Argv: tools.Argv(name, args...)} }

func (c Cmd) String() string { return QuoteArgv(c.Argv) }

// Result is what a finished program left behind.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// ExitError is returned by Run when the program ran and exited non-zero. The
// Result is returned alongside it, so callers that expect a non-zero code
// (a probe, grep) can read it.
type ExitError struct {
	Host     string
	Argv     []string
	ExitCode int
	Stderr   []byte
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: %s: exit status %d%s", e.Host, QuoteArgv(e.Argv), e.ExitCode, tail(e.Stderr))
}

// tail keeps the last lines of a program's stderr for an error message:
// enough to see why, not a whole log.
func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return ": " + strings.Join(lines, " | ")
}

// QuoteArgv renders argv for messages only; it is never executed.
func QuoteArgv(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]{}!#~") {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

// Owner is a numeric owner; -1 in either field leaves that id as it is.
type Owner struct {
	UID int
	GID int
}

// Root is uid 0, gid 0: the owner of nearly everything borgkit writes.
var Root = Owner{UID: 0, GID: 0}

// FileInfo is the part of a stat that steps compare.
type FileInfo struct {
	Name    string
	Size    int64
	Mode    fs.FileMode // permission bits plus type bits (fs.ModeDir, fs.ModeSymlink, ...)
	UID     int
	GID     int
	ModTime time.Time
}

// IsDir reports whether the entry is a directory.
func (fi FileInfo) IsDir() bool { return fi.Mode.IsDir() }

// Host is one machine, reached locally or over SSH. Paths are absolute paths
// as seen on that machine; a rooted host maps them under its root directory.
// Errors for a missing path wrap fs.ErrNotExist.
type Host interface {
	// Name is the config name of the host, for messages.
	Name() string
	// Live is false when file operations are redirected under a directory
	// (--root): steps that only make sense on the running system (packages,
	// mounts, units, block devices) must then skip rather than run.
	Live() bool
	// Path maps an absolute path as the host sees it to the path a program run
	// through Run must be given (the same on a live host, DIR+path under --root).
	Path(p string) string
	// Run starts a program and waits for it. A non-zero exit gives an *ExitError
	// together with the Result. A program that cannot be found gives an error
	// wrapping exec.ErrNotFound; a cancelled ctx kills the program and gives an
	// error wrapping ctx.Err().
	Run(ctx context.Context, c Cmd) (Result, error)
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// Digest is the SHA-256 of a file's content, lowercase hex, computed
	// where the file lives: over SSH only the answer crosses the link, not
	// the file (the 11 MB borgkit binary, on every plan of the Pi).
	Digest(ctx context.Context, path string) (string, error)
	// WriteFile replaces path atomically: a temporary file beside it gets the
	// data, is synced, gets mode and owner, and is renamed over path. The
	// previous content, if any, stays as path+OldSuffix (same inode, so same
	// mode: a secret stays as private as it was).
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode, owner Owner) error
	// Lstat does not follow a final symlink.
	Lstat(ctx context.Context, path string) (FileInfo, error)
	// ReadDir lists a directory's entries, each as Lstat sees it, sorted
	// by name: one round trip, where a program (find) would be a second.
	ReadDir(ctx context.Context, path string) ([]FileInfo, error)
	// MkdirAll creates path and missing parents; it sets mode and owner only on
	// the directories it creates.
	MkdirAll(ctx context.Context, path string, mode fs.FileMode, owner Owner) error
	// Chmod and Chown fix an existing entry's metadata.
	Chmod(ctx context.Context, path string, mode fs.FileMode) error
	Chown(ctx context.Context, path string, owner Owner) error
	// Remove deletes one file or empty directory.
	Remove(ctx context.Context, path string) error
	Close() error
}

// OldSuffix names the copy of a file's previous content kept by WriteFile.
const OldSuffix = ".borgkit-old"

// IsNotExist reports whether err says a path does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
