package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
)

// globals are the flags every command shares.
type globals struct {
	ConfigPath string
	JSON       bool
	Verbose    bool
	configSet  bool
	// ctx is the command's context (cancelled by SIGINT and SIGTERM),
	// kept for load, which every command calls before its own work.
	ctx context.Context
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "borgkit",
		Short: "Provision and run a BorgBackup 3-2-1 backup appliance",
		Long: `borgkit sets up a backup server, its offsite Raspberry Pi and a ZFS archive
host from one YAML config, runs their nightly jobs, and proves the backups
restore.` + exitStatusHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			g.configSet = cmd.Flags().Changed("config")
			g.ctx = cmd.Context()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.ConfigPath, "config", layout.ConfigFile, "site config `FILE`")
	pf.BoolVar(&g.JSON, "json", false, "print data as JSON")
	pf.BoolVarP(&g.Verbose, "verbose", "v", false, "log every program run on a host, with exit status and time")
	root.AddCommand(
		newProvisionCommand(g, false),
		newProvisionCommand(g, true),
		newConfigCommand(g),
		newVersionCommand(g),
		newJobCommand(g),
		newRevokeCommand(g),
		newStatusCommand(g),
		newRecoveryCommand(g),
		newDrillCommand(g),
		newManCommand(),
	)
	return root
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

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
