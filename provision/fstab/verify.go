package fstab

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/tools"
)

// Verdict is what findmnt --verify says about an fstab.
type Verdict struct {
	// Errors are reasons findmnt gives not to use the lines: a parse
	// error, an unknown filesystem type. A source or mountpoint that is
	// missing now is not one: a nofail disk may be unplugged, and under
	// --root the mountpoint lives in the tree.
	Errors []string
	// Warnings name lines borgkit does not own that mount(8) would skip or
	// stumble on, for the user to look at; they never stop a run.
	Warnings []string
}

// Verify runs the real findmnt --verify on h, twice, each time on a copy
// in a private temporary directory (mktemp -d: made afresh, so nothing
// already there is trusted or overwritten): once on borgkit's own lines,
// whose errors refuse the change, and once on the rest of the file, whose
// problems are warnings naming their line. lines is borgkit's block without
// its markers; others is the file as it is with that block's lines blank,
// so line numbers are the file's.
func Verify(ctx context.Context, h host.Host, lines, others []byte) (Verdict, error) {
	var v Verdict
	res, err := h.Run(ctx, host.Command(tools.Mktemp, "-d", "-t", "borgkit-fstab.XXXXXXXXXX"))
	if err != nil {
		return v, fmt.Errorf("temporary directory for findmnt: %w", err)
	}
	dir := strings.TrimSpace(string(res.Stdout))
	if !strings.HasPrefix(dir, "/") || strings.ContainsAny(dir, "\n ") || !strings.HasPrefix(path.Base(dir), "borgkit-fstab.") {
		return v, fmt.Errorf("mktemp -d printed %q", dir)
	}
	defer func() { _, _ = h.Run(context.WithoutCancel(ctx), host.Command(tools.Rm, "-rf", "--", dir)) }()

	own, err := findmnt(ctx, h, dir+"/borgkit", lines)
	if err != nil {
		return v, err
	}
	for _, e := range Parse(lines) {
		if e.Broken != "" {
			v.Errors = append(v.Errors, fmt.Sprintf("%q: %s", e.Text, e.Broken))
		}
	}
	for _, f := range own {
		if f.line > 0 || !f.missing {
			v.Errors = append(v.Errors, f.text)
		}
	}
	if len(bytes.TrimSpace(others)) == 0 {
		return v, nil
	}
	rest, err := findmnt(ctx, h, dir+"/rest", others)
	if err != nil {
		return v, err
	}
	entries := Parse(others)
	broken := map[int]bool{}
	for _, e := range entries {
		broken[e.Line] = e.Broken != ""
	}
	for _, f := range rest {
		if f.missing || broken[f.line] {
			continue // an unplugged stick, a share not yet reachable; a line Parse reports
		}
		line := f.line
		if line == 0 {
			line = lineOf(entries, f.target, f.nth)
		}
		v.Warnings = append(v.Warnings, fmt.Sprintf("fstab line %d (not borgkit's): %s", line, f.text))
	}
	return v, nil
}

// lineOf is the line of the nth entry (from 0) mounting target.
func lineOf(entries []Entry, target string, nth int) int {
	for _, e := range entries {
		if e.Broken == "" && e.Target == target {
			if nth == 0 {
				return e.Line
			}
			nth--
		}
	}
	return 0
}

// finding is one complaint of findmnt --verify --verbose.
type finding struct {
	line    int    // for a parse error, the line findmnt names
	target  string // the entry it belongs to, as findmnt prints it
	nth     int    // which entry of that target (0 for the first)
	text    string
	missing bool // a source or mountpoint that does not exist now
}

// findmnt writes data to file on h and runs findmnt --verify on it.
func findmnt(ctx context.Context, h host.Host, file string, data []byte) ([]finding, error) {
	c := host.Command(tools.Tee, "--", file)
	c.Stdin = bytes.NewReader(data)
	if _, err := h.Run(ctx, c); err != nil {
		return nil, fmt.Errorf("write %s for findmnt: %w", file, err)
	}
	res, err := h.Run(ctx, host.Command(tools.Findmnt, "--verify", "--verbose", "--tab-file", file))
	// findmnt exits 1 when it found anything; only a run without its
	// summary line failed as a program.
	out := string(res.Stdout) + string(res.Stderr)
	if err != nil && !strings.Contains(out, "parse error") {
		return nil, fmt.Errorf("findmnt --verify: %w", err)
	}
	return readVerdict(out), nil
}

// readVerdict picks the errors out of findmnt --verify --verbose: parse
// errors ("FILE: parse error at line N -- ignored") and the [E] lines under
// each entry's mountpoint.
func readVerdict(out string) []finding {
	var fs []finding
	target := ""
	seen := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.Contains(t, "parse error at line"):
			n := 0
			fmt.Sscanf(t[strings.Index(t, "parse error at line")+len("parse error at line"):], "%d", &n)
			fs = append(fs, finding{line: n, text: fmt.Sprintf("line %d: mount(8) cannot parse it and ignores it", n)})
		case strings.HasSuffix(t, "parse errors") || strings.Contains(t, "parse errors,") || strings.Contains(t, "parse error,"):
		case l != "" && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "findmnt:"):
			target = l
			seen[target]++
		case strings.HasPrefix(t, "[E]"):
			msg := strings.TrimSpace(strings.TrimPrefix(t, "[E]"))
			fs = append(fs, finding{target: target, nth: seen[target] - 1, text: target + ": " + msg,
				missing: strings.Contains(msg, "unreachable") || strings.Contains(msg, "No such file or directory")})
		}
	}
	return fs
}

// Vet judges a change to /etc/fstab, for a steps.Block: it refuses when a
// line outside borgkit's block mounts one of targets (compared as
// mountpoints, so "/mnt/backup/" and "/mnt//backup" are /mnt/backup) or
// when findmnt finds borgkit's own lines wrong, and warns about the user's
// lines mount(8) would skip or stumble on, naming each.
func Vet(targets []string) func(ctx context.Context, h host.Host, others, lines []byte) (string, []string, error) {
	return func(ctx context.Context, h host.Host, others, lines []byte) (string, []string, error) {
		entries := Parse(others)
		if e, t, ok := Clash(entries, targets); ok {
			return fmt.Sprintf("/etc/fstab line %d already mounts %s outside the borgkit block (%q); remove that line or the config entry",
				e.Line, t, strings.TrimSpace(e.Text)), nil, nil
		}
		var warnings []string
		for _, e := range entries {
			if e.Broken != "" {
				warnings = append(warnings, fmt.Sprintf("fstab line %d (not borgkit's): mount(8) ignores it: %s: %q", e.Line, e.Broken, strings.TrimSpace(e.Text)))
			}
		}
		v, err := Verify(ctx, h, lines, others)
		if err != nil {
			return "", nil, err
		}
		warnings = append(warnings, v.Warnings...)
		if len(v.Errors) > 0 {
			return "findmnt --verify refuses borgkit's fstab lines: " + strings.Join(v.Errors, "; "), warnings, nil
		}
		return "", warnings, nil
	}
}
