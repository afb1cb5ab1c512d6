package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// The README's command table, exit statuses and examples must be what the
// binary does: these tests read them and hold them to the cobra tree and
// the exit-status contract in main.go.

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	// The bench writes its own table; its prose names commands loosely.
	if i, j := strings.Index(s, "<!-- bench:begin"), strings.Index(s, "<!-- bench:end"); i >= 0 && j > i {
		s = s[:i] + s[j:]
	}
	return s
}

// tableRows are the rows of the markdown table whose header line is
// header, as cells.
func tableRows(t *testing.T, doc, header string) [][]string {
	t.Helper()
	i := strings.Index(doc, header+"\n")
	if i < 0 {
		t.Fatalf("README has no table %q", header)
	}
	var rows [][]string
	for n, line := range strings.Split(doc[i:], "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if n < 2 {
			continue // the header and its rule
		}
		// An escaped pipe (\|) stays inside its cell.
		line = strings.ReplaceAll(line, `\|`, "\x00")
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(strings.ReplaceAll(c, "\x00", "|")))
		}
		rows = append(rows, cells)
	}
	return rows
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// resolve finds the command a `borgkit ...` line names, and the words
// after its path.
func resolve(root *cobra.Command, line string) (*cobra.Command, []string) {
	words := strings.Fields(strings.TrimPrefix(line, "sudo "))[1:]
	c := root
	for len(words) > 0 {
		next := findSub(c, words[0])
		if next == nil {
			break
		}
		c, words = next, words[1:]
	}
	return c, words
}

// flagsIn are the --flags and -f shorthands among words.
func flagsIn(words []string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, "-") && w != "-" {
			name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
			out = append(out, name)
		}
	}
	return out
}

func hasFlag(c *cobra.Command, name string) bool {
	if name == "help" || name == "h" {
		return true
	}
	if len(name) == 1 {
		return c.Flags().ShorthandLookup(name) != nil
	}
	return c.Flags().Lookup(name) != nil
}

// TestReadmeCommandTable: every command the table names exists with the
// flags it shows, and every command a user can run is in it (the jobs in
// the job row, the shells in the completion row).
func TestReadmeCommandTable(t *testing.T) {
	root := newRootCommand()
	covered := map[string]bool{}
	for _, row := range tableRows(t, readme(t), "| command | what |") {
		spans := codeSpan.FindAllStringSubmatch(row[0], -1)
		if len(spans) == 0 {
			t.Errorf("row %q names no command", row[0])
		}
		for _, m := range spans {
			if !strings.HasPrefix(m[1], "borgkit") {
				t.Errorf("row %q: %q is not a borgkit command line", row[0], m[1])
				continue
			}
			c, rest := resolve(root, m[1])
			covered[c.CommandPath()] = true
			for _, f := range flagsIn(rest) {
				if !hasFlag(c, f) {
					t.Errorf("README: %s has no flag --%s (row %q)", c.CommandPath(), f, row[0])
				}
			}
			if len(rest) > 0 && strings.ToUpper(rest[0]) != rest[0] && !strings.HasPrefix(rest[0], "-") && !strings.HasPrefix(rest[0], "[") {
				t.Errorf("README row %q: %q is not a command of %s", row[0], rest[0], c.CommandPath())
			}
			// A group's row lists its members in the second cell.
			if c.Annotations[groupKey] != "" || c.Name() == "completion" {
				var named []string
				for _, w := range codeSpan.FindAllStringSubmatch(row[1], -1) {
					named = append(named, w[1])
					if s := findSub(c, w[1]); s != nil {
						covered[s.CommandPath()] = true
					} else {
						t.Errorf("README: %s has no command %q", c.CommandPath(), w[1])
					}
				}
				if len(named) == 0 && c.Name() != "job" {
					continue
				}
			}
		}
	}
	var missing []string
	walk(root, func(c *cobra.Command) {
		if c.Hidden || strings.HasPrefix(c.Name(), "__") || c.Annotations[groupKey] != "" || c == root {
			return
		}
		if !covered[c.CommandPath()] {
			missing = append(missing, c.CommandPath())
		}
	})
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the README's command table lacks: %s", strings.Join(missing, ", "))
	}
}

// TestReadmeExitStatus: the README's exit-status table is the contract in
// main.go, word for word.
func TestReadmeExitStatus(t *testing.T) {
	rows := tableRows(t, readme(t), "| status | meaning |")
	var got, want []string
	for _, r := range rows {
		got = append(got, r[0]+" "+r[1])
	}
	for _, c := range exitContract {
		want = append(want, strconv.Itoa(c.code)+" "+c.when)
	}
	if !slices.Equal(got, want) {
		t.Errorf("README exit statuses:\n%s\nmain.go's contract:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestReadmeExamples: every borgkit command line in a code block parses
// as the binary would take it (command, flags, the number of arguments);
// every one quoted in the prose names a real command with real flags.
func TestReadmeExamples(t *testing.T) {
	doc := readme(t)
	root := newRootCommand()
	checked := 0
	inBlock := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			cmdline, _, _ := strings.Cut(strings.TrimSpace(line), "#")
			cmdline = strings.TrimSpace(cmdline)
			if !strings.HasPrefix(cmdline, "borgkit ") && !strings.HasPrefix(cmdline, "sudo borgkit ") {
				continue
			}
			checked++
			if err := parses(root, cmdline); err != nil {
				t.Errorf("README example %q: %v", cmdline, err)
			}
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
			span := m[1]
			if i := strings.Index(span, "borgkit "); i >= 0 && (i == 0 || strings.HasSuffix(span[:i], "sudo ") || strings.HasSuffix(span[:i], "'")) {
				span = strings.TrimRight(span[i:], "'")
				c, rest := resolve(root, span)
				checked++
				for _, f := range flagsIn(rest) {
					if !hasFlag(c, f) {
						t.Errorf("README %q: %s has no flag --%s", span, c.CommandPath(), f)
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d borgkit command lines found in the README", checked)
	}
}

// parses checks a command line the way cobra would take it, without
// running it: the command exists, its flags parse, its arguments count.
func parses(root *cobra.Command, line string) error {
	args := strings.Fields(strings.TrimPrefix(line, "sudo "))[1:]
	c, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if err := c.ParseFlags(rest); err != nil {
		return err
	}
	if err := c.ValidateArgs(c.Flags().Args()); err != nil {
		return err
	}
	if err := checkRequired(c); err != nil {
		return err
	}
	return nil
}

// TestReadmeCatchesAMismatch: the checks above fail on a wrong row, a
// wrong flag and a wrong exit text.
func TestReadmeCatchesAMismatch(t *testing.T) {
	root := newRootCommand()
	for _, bad := range []string{"borgkit status --lock x", "borgkit provision", "borgkit job nigthly", "borgkit recovery-bundle check-key --header x"} {
		if err := parses(root, bad); err == nil {
			t.Errorf("%q parses", bad)
		}
	}
	if err := parses(root, "borgkit provision pi --format /dev/disk/by-id/x"); err != nil {
		t.Errorf("a good line: %v", err)
	}
	rows := tableRows(t, "| status | meaning |\n| --- | --- |\n| 0 | ok |\n| 2 | a \\| b |\n", "| status | meaning |")
	if fmt.Sprint(rows) != "[[0 ok] [2 a | b]]" {
		t.Errorf("rows %v", rows)
	}
}
