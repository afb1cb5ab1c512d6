package borg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
)

// Workspace runs borg against copies of repositories — a mirror directory, a
// read-only mounted offsite disk — for Verify and the drill, without ever
// writing to them and without touching the user's own borg state.
//
// Everything borg would write goes into Dir: BORG_BASE_DIR (cache,
// security, keys) and a shadow of each repository. The shadow is needed
// because borg 1.2 rewrites a repository's config during `borg check` even
// with --bypass-lock, and its recovery paths may unlink or rewrite index
// files: the shadow holds a private copy of the small config file and
// symlinks to every other file, so borg reads the real data while any
// write, rename or unlink lands in the shadow.
type Workspace struct {
	Dir string
	// Log receives each command line and its stderr; nil discards.
	Log io.Writer
}

// NewWorkspace makes a private working directory under parent ("" for
// the system's temporary directory). Close removes it.
func NewWorkspace(parent string) (*Workspace, error) {
	dir, err := os.MkdirTemp(parent, "borgkit-borg-")
	if err != nil {
		return nil, fmt.Errorf("borg working directory: %w", err)
	}
	for _, d := range []string{"base", "keys", "shadow"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("borg working directory: %w", err)
		}
	}
	return &Workspace{Dir: dir}, nil
}

// Close removes the working directory and every shadow in it (never the
// files the shadows point to: RemoveAll does not follow symlinks).
func (b *Workspace) Close() error {
	if b == nil || b.Dir == "" {
		return nil
	}
	return os.RemoveAll(b.Dir)
}

// Env is borg's environment for a copy whose passphrase is in passFile
// ("" for an unencrypted repo): everything borg writes stays in Dir.
func (b *Workspace) Env(passFile string) Env {
	return Env{PassFile: passFile, BaseDir: filepath.Join(b.Dir, "base"), KeysDir: filepath.Join(b.Dir, "keys"), Copy: true}
}

// Command prepares borg with args in env, on this machine, in its own
// process group (see host.OwnGroup). The caller wires stdout and stderr.
func Command(ctx context.Context, env Env, args ...string) *exec.Cmd {
	c := Cmd(env, args...)
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(host.Environ(c.Unset...), c.Env...)
	host.OwnGroup(cmd)
	return cmd
}

// Command is borg with args for the copy whose passphrase is in passFile.
func (b *Workspace) Command(ctx context.Context, passFile string, args ...string) *exec.Cmd {
	return Command(ctx, b.Env(passFile), args...)
}

// Error is a borg run that failed: its command line (no secret is
// ever in it), exit code and the tail of its stderr.
type Error struct {
	Argv     []string
	ExitCode int
	Stderr   string
	Err      error
}

func (e *Error) Error() string {
	// A drill names dozens of sampled files: the first few say which
	// command it was, the rest would bury the reason.
	argv := e.Argv
	more := ""
	if len(argv) > 8 {
		argv, more = argv[:8], fmt.Sprintf(" … (%d more arguments)", len(e.Argv)-8)
	}
	s := fmt.Sprintf("%s%s: exit status %d", host.QuoteArgv(argv), more, e.ExitCode)
	if e.ExitCode < 0 && e.Err != nil {
		s = fmt.Sprintf("%s%s: %v", host.QuoteArgv(argv), more, e.Err)
	}
	if e.Stderr != "" {
		s += ": " + e.Stderr
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs borg and returns its stdout; a failure is a *Error.
func (b *Workspace) Run(ctx context.Context, passFile string, args ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := b.Command(ctx, passFile, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := b.finish(cmd, cmd.Run(), errb.Bytes())
	return out.Bytes(), err
}

// Stream runs borg in directory dir ("" for the current one), handing each
// stdout line to onOut and each stderr line to onErr as they come (either
// may be nil): for listings too big to hold, and for timing the first
// file of an extract.
func (b *Workspace) Stream(ctx context.Context, dir, passFile string, onOut, onErr func(line []byte), args ...string) error {
	cmd := b.Command(ctx, passFile, args...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("borg: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("borg: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return b.finish(cmd, err, nil)
	}
	tail := &tailBuffer{max: 12}
	done := make(chan struct{})
	go func() {
		defer close(done)
		scanLines(stderr, func(l []byte) {
			tail.add(l)
			if onErr != nil {
				onErr(l)
			}
		})
	}()
	scanLines(stdout, func(l []byte) {
		if onOut != nil {
			onOut(l)
		}
	})
	<-done
	return b.finish(cmd, cmd.Wait(), tail.bytes())
}

func scanLines(r io.Reader, f func([]byte)) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			f(bytes.TrimRight(line, "\r\n"))
		}
		if err != nil {
			return
		}
	}
}

type tailBuffer struct {
	max   int
	lines [][]byte
}

func (t *tailBuffer) add(l []byte) {
	t.lines = append(t.lines, append([]byte(nil), l...))
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

func (t *tailBuffer) bytes() []byte { return bytes.Join(t.lines, []byte("\n")) }

func (b *Workspace) finish(cmd *exec.Cmd, err error, stderr []byte) error {
	if b.Log != nil {
		fmt.Fprintf(b.Log, "$ %s\n", host.QuoteArgv(cmd.Args))
		if len(stderr) > 0 {
			fmt.Fprintf(b.Log, "%s\n", indent(stderr))
		}
	}
	if err == nil {
		return nil
	}
	ce := &Error{Argv: cmd.Args, ExitCode: -1, Stderr: stderrTail(stderr), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ce.ExitCode = ee.ExitCode()
	}
	return ce
}

func indent(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "    " + strings.Join(lines, "\n    ")
}

// borgFooter starts the lines borg adds after a traceback (platform,
// versions, argv): they never say what went wrong, and push the line that
// does out of the tail.
var borgFooter = []string{"Platform:", "Linux:", "Borg:", "PID:", "sys.argv:", "SSH_ORIGINAL_COMMAND:"}

func stderrTail(b []byte) string {
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || slices.ContainsFunc(borgFooter, func(p string) bool { return strings.HasPrefix(l, p) }) {
			continue
		}
		lines = append(lines, truncate(l, 300))
	}
	if len(lines) > 6 {
		lines = lines[len(lines)-6:]
	}
	return strings.Join(lines, " | ")
}

// IsLocalRepo reports whether dir on this machine holds a borg
// repository (see IsRepoConfig).
func IsLocalRepo(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "config"))
	return err == nil && IsRepoConfig(b)
}

// Shadow makes a shadow of the repository at repo (see Workspace) and returns
// its path, to give borg instead of repo.
func (b *Workspace) Shadow(repo string) (string, error) {
	src, err := filepath.Abs(repo)
	if err != nil {
		return "", fmt.Errorf("shadow of %s: %w", repo, err)
	}
	if src, err = filepath.EvalSymlinks(src); err != nil {
		return "", fmt.Errorf("shadow of %s: %w", repo, err)
	}
	if !IsLocalRepo(src) {
		return "", fmt.Errorf("shadow of %s: no borg repository there (no config with [repository])", repo)
	}
	dst, err := os.MkdirTemp(filepath.Join(b.Dir, "shadow"), filepath.Base(src)+"-")
	if err != nil {
		return "", fmt.Errorf("shadow of %s: %w", repo, err)
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		out := filepath.Join(dst, rel)
		switch {
		case rel == "lock.exclusive" || rel == "lock.roster":
			// A lock copied along by rsync belongs to a process on another
			// machine; the shadow starts unlocked.
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		case d.IsDir():
			return os.Mkdir(out, 0o700)
		case rel == "config":
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, data, 0o600)
		default:
			return os.Symlink(p, out)
		}
	})
	if err != nil {
		return "", fmt.Errorf("shadow of %s: %w", repo, err)
	}
	return dst, nil
}

// ImportKey runs `borg key import` of the export into the shadow: a
// repokey export replaces the key in the shadow's private config, a
// keyfile export lands in Dir's keys directory. Either way the repo copy
// is untouched, and what opens the repo afterwards is the bundle's export.
func (b *Workspace) ImportKey(ctx context.Context, shadow, export string) error {
	if _, err := b.Run(ctx, "", "key", "import", shadow, export); err != nil {
		return fmt.Errorf("borg key import: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
