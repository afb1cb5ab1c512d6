package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/borgkit/borgkit/testing/borghome"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// The tests run borg for real; its state stays out of the real home. After
// them, every exit status a test saw a command return must be one that
// command's help lists.
//
// Called with a borgkit command rather than test flags, the test binary is
// the CLI: provisioning under --root installs the running executable (this
// binary) and runs it as `borgkit version --json` to prove it executes.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		main()
		return
	}
	done, err := borghome.Isolate()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	if code == 0 {
		if err := observed.check(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: exit statuses the help does not list:\n"+err.Error())
			code = 1
		}
	}
	done()
	os.Exit(code)
}

// codesSeen collects, by command path, the exit statuses the tests saw.
type codesSeen struct {
	mu       sync.Mutex
	declared map[string]string
	seen     map[string]map[int]bool
}

var observed = &codesSeen{declared: map[string]string{}, seen: map[string]map[int]bool{}}

func (o *codesSeen) add(cmd *cobra.Command, code int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := cmd.CommandPath()
	o.declared[p] = cmd.Annotations[exitCodesKey]
	if o.seen[p] == nil {
		o.seen[p] = map[int]bool{}
	}
	o.seen[p][code] = true
}

func (o *codesSeen) check() error {
	var bad []string
	for p, codes := range o.seen {
		for c := range codes {
			if !slices.Contains(strings.Split(o.declared[p], ","), strconv.Itoa(c)) {
				bad = append(bad, fmt.Sprintf("  %s exited %d; its help lists %q", p, c, o.declared[p]))
			}
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "\n"))
	}
	return nil
}

// TestObservedCodesAreChecked proves the check above can fail.
func TestObservedCodesAreChecked(t *testing.T) {
	o := &codesSeen{declared: map[string]string{}, seen: map[string]map[int]bool{}}
	root := newRootCommand()
	o.add(root, exitPending)
	v, _, _ := root.Find([]string{"version"})
	o.add(v, exitPending)
	if err := o.check(); err == nil || !strings.Contains(err.Error(), "borgkit version exited 3") || strings.Contains(err.Error(), "borgkit exited") {
		t.Fatalf("check: %v", err)
	}
}

// commands is every command a user can call (cobra's hidden __complete
// machinery left out), with cobra's own help and completion in place.
func commands(t *testing.T) []*cobra.Command {
	t.Helper()
	root := newRootCommand()
	var out []*cobra.Command
	walk(root, func(c *cobra.Command) {
		if !strings.HasPrefix(c.Name(), "__") {
			out = append(out, c)
		}
	})
	return out
}

// exitBlock parses the EXIT STATUS list of a help text.
func exitBlock(long string) ([]int, error) {
	_, block, ok := strings.Cut(long, "\nEXIT STATUS\n")
	if !ok {
		return nil, fmt.Errorf("no EXIT STATUS block")
	}
	if strings.Contains(block, "\nEXIT STATUS\n") {
		return nil, fmt.Errorf("two EXIT STATUS blocks")
	}
	var codes []int
	for _, line := range strings.Split(block, "\n") {
		if strings.TrimSpace(line) == "" {
			break
		}
		f := strings.Fields(line)
		n, err := strconv.Atoi(f[0])
		if err != nil || !strings.HasPrefix(line, "  ") {
			return nil, fmt.Errorf("EXIT STATUS line %q", line)
		}
		codes = append(codes, n)
	}
	return codes, nil
}

// foreignFlags are flags help texts name that belong to other programs.
var foreignFlags = map[string]string{
	"repository-only": "borg check", "verify-data": "borg check", "paper": "borg key export",
	"threshold": "borg compact", "prefix": "brew (cobra's completion help)",
	"help":        "cobra's own, on every command",
	"bypass-lock": "borg list (adopt reads repos with it)",
}

var flagWord = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
var borgkitCmd = regexp.MustCompile(`borgkit((?: [a-z][a-z0-9-]*)+)`)

// TestHelpTellsTheTruth walks the command tree: every command's help has
// one EXIT STATUS block listing the codes it declares, 2 always, 3 exactly
// where --detailed-exitcode exists; every --flag its text names is its own
// (or the named borgkit command's, or another program's); no command
// inherits flags it might ignore.
func TestHelpTellsTheTruth(t *testing.T) {
	all := commands(t)
	byPath := map[string]*cobra.Command{}
	for _, c := range all {
		byPath[c.CommandPath()] = c
	}
	for _, c := range all {
		p := c.CommandPath()
		codes, err := exitBlock(c.Long)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		var want []string
		for _, n := range codes {
			want = append(want, strconv.Itoa(n))
		}
		if got := c.Annotations[exitCodesKey]; got != strings.Join(want, ",") {
			t.Errorf("%s: help lists exit statuses %v, the command declares %q", p, want, got)
		}
		if !slices.Contains(codes, exitUsage) {
			t.Errorf("%s: help does not list exit status 2 (bad usage)", p)
		}
		if has := c.Flags().Lookup("detailed-exitcode") != nil; has != slices.Contains(codes, exitPending) && c != c.Root() {
			t.Errorf("%s: --detailed-exitcode %v, exit status 3 listed %v", p, has, !has)
		}
		if c.HasPersistentFlags() {
			t.Errorf("%s has persistent flags: its subcommands would offer them whether they read them or not", p)
		}
		for _, text := range []string{c.Short, c.Long, c.Use} {
			for _, sentence := range strings.Split(text, ".") {
				owner := c
				if m := borgkitCmd.FindStringSubmatch(sentence); m != nil {
					for words := strings.Fields(m[1]); len(words) > 0; words = words[:len(words)-1] {
						if o, ok := byPath["borgkit "+strings.Join(words, " ")]; ok {
							owner = o
							break
						}
					}
				}
				for _, f := range flagWord.FindAllStringSubmatch(sentence, -1) {
					name := f[1]
					if owner.Flags().Lookup(name) == nil && c.Flags().Lookup(name) == nil && foreignFlags[name] == "" && !(c == c.Root() && anyHas(all, name)) {
						t.Errorf("%s: its help names --%s, which %s does not have", p, name, owner.CommandPath())
					}
				}
			}
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			for _, m := range flagWord.FindAllStringSubmatch(f.Usage, -1) {
				if c.Flags().Lookup(m[1]) == nil && foreignFlags[m[1]] == "" {
					t.Errorf("%s --%s: its usage names --%s, which %s does not have", p, f.Name, m[1], p)
				}
			}
		})
	}
	if root := byPath["borgkit"]; root != nil {
		codes, _ := exitBlock(root.Long)
		if !slices.Equal(codes, []int{exitOK, exitFailed, exitUsage, exitPending, exitWarnings, exitSomeFailed}) {
			t.Errorf("borgkit --help lists %v, want the whole contract", codes)
		}
	}
}

// anyHas reports whether some command has flag name: the root's contract
// names the flags of its commands.
func anyHas(all []*cobra.Command, name string) bool {
	for _, c := range all {
		if c.Flags().Lookup(name) != nil {
			return true
		}
	}
	return false
}

// TestHelpCatchesALie proves the walk above fails on the help issue 20
// found: status offering the jobs' --lock, every command listing 3.
func TestHelpCatchesALie(t *testing.T) {
	root := newRootCommand()
	st, _, _ := root.Find([]string{"status"})
	if st.Flags().Lookup("lock") != nil || st.Flags().Lookup("ssh") != nil || st.Flags().Lookup("log-dir") != nil || st.Flags().Lookup("lock-wait") != nil {
		t.Fatal("status offers a job's flag")
	}
	if codes, _ := exitBlock(st.Long); slices.Contains(codes, exitPending) {
		t.Fatal("status lists exit status 3")
	}
	pl, _, _ := root.Find([]string{"plan"})
	if strings.Contains(pl.Long, "pending steps are applied") || strings.Contains(pl.Long, "Then pending steps") {
		t.Fatal("plan --help says it applies")
	}
}

// TestFlagTree is every command with its flags, as a golden file: a flag
// added to or dropped from any command shows in review.
func TestFlagTree(t *testing.T) {
	var b bytes.Buffer
	for _, c := range commands(t) {
		var names []string
		c.Flags().VisitAll(func(f *pflag.Flag) {
			n := "--" + f.Name
			if f.Shorthand != "" {
				n = "-" + f.Shorthand + "|" + n
			}
			names = append(names, n)
		})
		fmt.Fprintf(&b, "%s [exit %s]: %s\n", c.CommandPath(), c.Annotations[exitCodesKey], strings.Join(names, " "))
	}
	golden := filepath.Join("testdata", "flags.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/borgkit -run TestFlagTree -update)", err)
	}
	if !bytes.Equal(want, b.Bytes()) {
		t.Errorf("the flag tree changed; if that is meant, run with -update:\n%s", b.String())
	}
}
