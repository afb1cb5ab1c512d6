package fstab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
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
// so line numbers are the file's. Both run in one program (verifyScript):
// over the offsite link each program waits a round trip or two.
func Verify(ctx context.Context, h host.Host, lines, others []byte) (Verdict, error) {
	var v Verdict
	rest := len(bytes.TrimSpace(others)) > 0
	c := host.Command(tools.Sh, "-c", verifyScript, "sh", strconv.Itoa(len(lines)), strconv.FormatBool(rest))
	c.Stdin = io.MultiReader(bytes.NewReader(lines), bytes.NewReader(others))
	res, err := h.Run(ctx, c)
	if err != nil {
		return v, fmt.Errorf("findmnt --verify in a temporary directory: %w", err)
	}
	outs, err := findmntOutputs(res.Stdout, rest)
	if err != nil {
		return v, err
	}
	for _, e := range Parse(lines) {
		if e.Broken != "" {
			v.Errors = append(v.Errors, fmt.Sprintf("%q: %s", e.Text, e.Broken))
		}
	}
	for _, f := range readVerdict(outs[0]) {
		if f.line > 0 || !f.missing {
			v.Errors = append(v.Errors, f.text)
		}
	}
	if !rest {
		return v, nil
	}
	entries := Parse(others)
	broken := map[int]bool{}
	for _, e := range entries {
		broken[e.Line] = e.Broken != ""
	}
	for _, f := range readVerdict(outs[1]) {
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

// verifyScript writes its stdin, borgkit's lines ($1 bytes) and then the
// rest of the file, to two files in a fresh private directory, and runs
// findmnt --verify on the first and, when $2 is true, on the second. It
// prints each one's output (stdout and stderr), a NUL, its exit status
// and a NUL.
const verifyScript = `n=$1; rest=$2
d=$(mktemp -d -t borgkit-fstab.XXXXXXXXXX) || exit 1
trap 'rm -rf -- "$d"' EXIT
cat > "$d/in" || exit 1
head -c "$n" "$d/in" > "$d/borgkit" || exit 1
tail -c +"$((n+1))" "$d/in" > "$d/rest" || exit 1
findmnt --verify --verbose --tab-file "$d/borgkit" 2>&1
printf '\0%s\0' "$?"
[ "$rest" = true ] || exit 0
findmnt --verify --verbose --tab-file "$d/rest" 2>&1
printf '\0%s\0' "$?"
`

// findmntOutputs splits verifyScript's output into findmnt's outputs. A
// findmnt that exited non-zero without its summary line ("N parse
// errors, ...") failed as a program; with it, it only found something.
func findmntOutputs(out []byte, rest bool) ([]string, error) {
	n := 1
	if rest {
		n = 2
	}
	parts := strings.Split(string(out), "\x00")
	if len(parts) != 2*n+1 {
		return nil, fmt.Errorf("findmnt --verify: unexpected output %q", out)
	}
	var outs []string
	for i := range n {
		text, status := parts[2*i], parts[2*i+1]
		if status != "0" && !strings.Contains(text, "parse error") {
			return nil, fmt.Errorf("findmnt --verify: exit status %s: %s", status, strings.TrimSpace(text))
		}
		outs = append(outs, text)
	}
	return outs, nil
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
