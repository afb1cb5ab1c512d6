package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
)

// globals are the values of flags several commands share. Each command
// registers only the ones it reads (configFlag, jsonFlag, verboseFlag), so
// its help offers nothing it ignores.
type globals struct {
	ConfigPath string
	JSON       bool
	Verbose    bool
	configSet  bool
	// ctx is the command's context (cancelled by SIGINT and SIGTERM),
	// kept for load, which every command calls before its own work.
	ctx context.Context
}

func (g *globals) configFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&g.ConfigPath, "config", layout.ConfigFile, "site config `FILE`")
}

func (g *globals) jsonFlag(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&g.JSON, "json", false, "print "+what+" as one JSON document on stdout (messages go to stderr)")
}

func (g *globals) verboseFlag(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVarP(&g.Verbose, "verbose", "v", false, what)
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "borgkit",
		Short: "Provision and run a BorgBackup 3-2-1 backup appliance",
		Long: `borgkit sets up a backup server, its offsite Raspberry Pi and a ZFS archive
host from one YAML config, runs their nightly jobs, and proves the backups
restore. Each command's --help lists the exit statuses it can return; the
contract for all of them is below.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if f := cmd.Flags().Lookup("config"); f != nil {
				g.configSet = f.Changed
			}
			g.ctx = cmd.Context()
			return checkRequired(cmd)
		},
	}
	root.Long += "\n\nEXIT STATUS\n"
	var codes []string
	for _, c := range exitContract {
		root.Long += fmt.Sprintf("  %d  %s\n", c.code, c.when)
		codes = append(codes, strconv.Itoa(c.code))
	}
	root.Annotations = map[string]string{exitCodesKey: strings.Join(codes, ",")}
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		newProvisionCommand(g, false),
		newProvisionCommand(g, true),
		newConfigCommand(g),
		newAdoptCommand(g),
		newVersionCommand(g),
		newJobCommand(g),
		newRevokeCommand(g),
		newStatusCommand(g),
		newNotifyCommand(g),
		newRecoveryCommand(g),
		newDrillCommand(g),
		newSnapshotsCommand(g),
		newManCommand(),
	)
	root.SetHelpCommand(newHelpCommand())
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			withExits(c, exitCase{exitOK, "the script was written"}, exitCase{exitFailed, "it could not be written"}, usageCase(""))
			for _, sh := range c.Commands() {
				withExits(sh, exitCase{exitOK, "the script was written"}, exitCase{exitFailed, "it could not be written"}, usageCase(""))
			}
		}
	}
	needsSubcommand(root)
	walk(root, func(c *cobra.Command) {
		c.SuggestionsMinimumDistance = 2
		if c != root && c.HasSubCommands() && !c.Runnable() {
			needsSubcommand(c)
		}
	})
	return root
}

// walk calls fn on c and every command below it.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, s := range c.Commands() {
		walk(s, fn)
	}
}

// needsSubcommand makes a command that only groups others refuse what it
// cannot run: nothing, or an unknown name (cobra would print the help and
// exit 0, as if `borgkit job nigthly` had done its work).
func needsSubcommand(c *cobra.Command) {
	c.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usagef("%s needs a %s: %s (see %s --help)", c.CommandPath(), noun(c), strings.Join(subcommandNames(c), ", "), c.CommandPath())
		}
		return unknownSubcommand(c, args[0])
	}
	c.RunE = func(*cobra.Command, []string) error { return nil } // Args always refuses
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[groupKey] = "true"
	if c.Annotations[exitCodesKey] == "" {
		withExits(c, usageCase("no or an unknown "+noun(c)))
	}
}

// groupKey marks a command that only groups others.
const groupKey = "borgkit/group"

func noun(c *cobra.Command) string {
	if c.Name() == "job" {
		return "job"
	}
	return "command"
}

func subcommandNames(c *cobra.Command) []string {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return names
}

// unknownSubcommand is the usage error for name under c, with the names
// cobra finds close to it.
func unknownSubcommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown %s %q for %s", noun(c), name, c.CommandPath())
	if s := c.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %s?", strings.Join(s, " or "))
	} else {
		msg += fmt.Sprintf(" (there are: %s)", strings.Join(subcommandNames(c), ", "))
	}
	return usageError{fmt.Errorf("%s", msg)}
}

// newHelpCommand is cobra's help, but an unknown topic is bad usage (exit
// 2, with a suggestion) instead of a page of help and exit 0.
func newHelpCommand() *cobra.Command {
	return withExits(&cobra.Command{
		Use:   "help [COMMAND...]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			target := c.Root()
			for _, a := range args {
				next := findSub(target, a)
				if next == nil {
					return unknownSubcommand(target, a)
				}
				target = next
			}
			return target.Help()
		},
	}, exitCase{exitOK, "the help was shown"}, usageCase("an unknown command"))
}

func findSub(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name || s.HasAlias(name) {
			return s
		}
	}
	return nil
}

var unknownFlagRE = regexp.MustCompile(`^unknown (?:shorthand )?flag: (?:'(.)' in -\S+|(--\S+))`)

// flagError makes every flag mistake a usage error, and names the flag the
// user probably meant: one of this command's that is close, or the
// commands that do have it (a flag put before the command name, or given
// to the wrong one).
func flagError(c *cobra.Command, err error) error {
	m := unknownFlagRE.FindStringSubmatch(err.Error())
	if m == nil {
		return usageError{err}
	}
	name := strings.TrimPrefix(m[2], "--")
	if m[1] != "" {
		name = m[1]
	}
	var mine []string
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			mine = append(mine, f.Name)
		}
	})
	if best := closest(name, mine); best != "" {
		return usagef("%v for %s; did you mean --%s?", err, c.CommandPath(), best)
	}
	var owners []string
	walk(c.Root(), func(o *cobra.Command) {
		if o == c || o.Hidden {
			return
		}
		if f := o.Flags().Lookup(name); f != nil || (len(name) == 1 && o.Flags().ShorthandLookup(name) != nil) {
			owners = append(owners, o.CommandPath())
		}
	})
	if len(owners) > 0 {
		sort.Strings(owners)
		if len(owners) > 3 {
			owners = append(owners[:3], "…")
		}
		return usagef("%v for %s; it is a flag of %s: put it after that command's name", err, c.CommandPath(), strings.Join(owners, ", "))
	}
	return usagef("%v for %s (see %s --help)", err, c.CommandPath(), c.CommandPath())
}

// closest is the candidate within two edits of name, else the one name
// is the start of, "" if none is.
func closest(name string, candidates []string) string {
	if best := config.Closest(name, candidates); best != "" {
		return best
	}
	if len(name) >= 3 {
		for _, c := range candidates {
			if strings.HasPrefix(c, name) {
				return c
			}
		}
	}
	return ""
}

// requiredKey marks a flag a command cannot run without. Not cobra's own
// MarkFlagRequired: cobra reports a missing one with an error main cannot
// tell from a failure, so it would exit 1.
const requiredKey = "borgkit/required"

func required(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		f := cmd.Flags().Lookup(n)
		if f == nil {
			panic("required: no flag " + n)
		}
		if f.Annotations == nil {
			f.Annotations = map[string][]string{}
		}
		f.Annotations[requiredKey] = []string{"true"}
		f.Usage += " (required)"
	}
}

// checkRequired refuses a run without a required flag, naming all missing.
func checkRequired(cmd *cobra.Command) error {
	var missing []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[requiredKey]; ok && !f.Changed {
			missing = append(missing, "--"+f.Name)
		}
	})
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s needs %s", cmd.CommandPath(), strings.Join(missing, " and "))
		if subs := subcommandNames(cmd); len(subs) > 0 {
			msg += fmt.Sprintf(" (or one of its commands: %s)", strings.Join(subs, ", "))
		}
		return usageError{errors.New(msg)}
	}
	return nil
}

// load reads the config named by --config. With fallback, a missing default
// file gives the embedded example instead (only for runs that cannot touch
// the live system, such as --root).
// The read is bounded (a regular file of at most 1 MiB) and gives up when
// the command's context ends, so SIGINT and SIGTERM stop it.
func (g *globals) load(fallback bool) (*config.Config, []byte, error) {
	ctx := g.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, data, err := config.LoadContext(ctx, g.ConfigPath)
	switch {
	case err == nil:
		return cfg, data, nil
	case fallback && !g.configSet && errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(os.Stderr, "borgkit: %s does not exist; using the embedded example config\n", g.ConfigPath)
		cfg, perr := config.Parse("(embedded example)", config.Example())
		return cfg, config.Example(), perr
	case errors.Is(err, context.Canceled):
		return nil, nil, err
	case isConfigProblem(err):
		return nil, nil, err
	}
	return nil, nil, usageError{fmt.Errorf("read config: %w", err)}
}

func isConfigProblem(err error) bool {
	var p *config.Problem
	var ps config.Problems
	return errors.As(err, &p) || errors.As(err, &ps)
}

// exactArgs takes exactly n arguments, naming what is missing from the
// command's Use line ("provision HOST" needs HOST), and an unknown word
// given to a command with subcommands as an unknown command.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) > n && n == 0 && cmd.HasAvailableSubCommands():
			return unknownSubcommand(cmd, args[0])
		case len(args) < n:
			names := argNames(cmd.Use)
			if len(names) > len(args) {
				names = names[len(args):]
			}
			return usagef("%s needs %s (usage: %s)", cmd.CommandPath(), strings.Join(names, " "), cmd.UseLine())
		case len(args) > n:
			return usagef("%s takes %d argument(s), got %d: %s (usage: %s)", cmd.CommandPath(), n, len(args), strings.Join(args[n:], " "), cmd.UseLine())
		}
		return nil
	}
}

// argNames are the positional arguments a Use line names: its words after
// the command's own that are neither flags nor optional.
func argNames(use string) []string {
	var out []string
	for _, w := range strings.Fields(use)[1:] {
		if !strings.HasPrefix(w, "-") && !strings.HasPrefix(w, "[") && !strings.HasPrefix(w, "(") && strings.ToUpper(w) == w {
			out = append(out, w)
		}
	}
	return out
}
