package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
)

func newConfigCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print or check the site config",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "example",
		Short: "Print the embedded example config (the first seed's john-ai, its Pi, and a ZFS archive)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.Example())
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a config file: syntax, types, names, paths, UUIDs, schedules, references",
		Long: `Check a config file (default: --config) strictly and report every problem
as FILE:LINE:COL with the offending line.` + exitStatusHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("validate takes at most one FILE")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.ConfigPath
			if len(args) == 1 {
				path = args[0]
			}
			return runValidate(cmd.Context(), path, cmd.OutOrStdout())
		},
	})
	return cmd
}

func runValidate(ctx context.Context, path string, out io.Writer) error {
	cfg, _, err := config.LoadContext(ctx, path)
	if err != nil {
		if isConfigProblem(err) || errors.Is(err, context.Canceled) {
			return err
		}
		return usageError{fmt.Errorf("read config: %w", err)}
	}
	repos := 0
	for _, h := range cfg.Hosts {
		repos += len(h.Repos)
	}
	fmt.Fprintf(out, "%s: ok (%d hosts, %d repos)\n", path, len(cfg.Hosts), repos)
	return nil
}
