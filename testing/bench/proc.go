package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cmd is a program run with an argv list, never through a shell. Secrets
// never appear in Argv: borg gets its passphrase via BORG_PASSCOMMAND.
type Cmd struct {
	Argv []string
	Env  []string // added to the bench's environment
	Dir  string
	// OKCodes are exit statuses besides 0 that are not a failure.
	OKCodes []int
}

func (c Cmd) String() string { return strings.Join(c.Argv, " ") }

// Result is one finished run.
type Result struct {
	Stdout  []byte
	Seconds float64
	// PeakRSS is the peak resident set in bytes, when run under GNU time.
	PeakRSS float64
	// Bytes is what the run moved, where the bench counts it.
	Bytes float64
}

func (c Cmd) exec(ctx context.Context, argv []string) (Result, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Dir = c.Dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	res := Result{Stdout: out.Bytes(), Seconds: time.Since(t0).Seconds()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		for _, ok := range c.OKCodes {
			if ee.ExitCode() == ok {
				return res, nil
			}
		}
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w\n%s", c, err, tail(errb.String()+out.String(), 20))
	}
	return res, nil
}

// Run runs c and times it.
func (c Cmd) Run(ctx context.Context) (Result, error) { return c.exec(ctx, c.Argv) }

// RunPeak runs c under GNU time for its peak RSS. Reading our own child's
// rusage would not do: Go starts children with a vfork-style clone, so
// the child's high-water mark starts at this process's.
func (c Cmd) RunPeak(ctx context.Context, scratch string) (Result, error) {
	out := filepath.Join(scratch, "maxrss")
	res, err := c.exec(ctx, append([]string{"/usr/bin/time", "-f", "%M", "-o", out}, c.Argv...))
	if err != nil {
		return res, err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return res, fmt.Errorf("GNU time: %w", err)
	}
	kib, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return res, fmt.Errorf("GNU time output %q: %w", b, err)
	}
	res.PeakRSS = kib * 1024
	return res, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// treeBytes adds up the sizes of the regular files under dir.
func treeBytes(dir string) (int64, error) {
	files, err := snapshot(dir)
	var n int64
	for _, f := range files {
		n += f.size
	}
	return n, err
}

type fileState struct {
	size  int64
	mtime time.Time
}

// snapshot maps each regular file under dir to its size and mtime: what
// rsync -a compares to decide what to send.
func snapshot(dir string) (map[string]fileState, error) {
	m := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		m[p] = fileState{fi.Size(), fi.ModTime()}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walking %s: %w", dir, err)
	}
	return m, nil
}

// newBytes is what a mirror of before has to receive to become after: the
// files that are new or differ in size or mtime.
func newBytes(before, after map[string]fileState) int64 {
	var n int64
	for p, a := range after {
		if b, ok := before[p]; !ok || b != a {
			n += a.size
		}
	}
	return n
}
