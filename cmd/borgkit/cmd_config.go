package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
)

func newConfigCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print or check the site config",
	}
	cmd.AddCommand(withExits(&cobra.Command{
		Use:   "example",
		Short: "Print the embedded example config (the first seed's john-ai, its Pi, and a ZFS archive)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.Example())
			return err
		},
	}, exitCase{exitOK, "the example was printed"}, exitCase{exitFailed, "it could not be written to stdout"}, usageCase("")))

	validate := &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a config file: syntax, types, names, paths, UUIDs, schedules, references",
		Long: `Check a config file (default: --config) strictly, as every other command
reads it, and report each problem as FILE:LINE:COL with the offending line.

A file that decodes (valid YAML, known keys, right types, version 1) is
checked whole and every problem in it is reported at once. One that does not
decode stops at its first decoding problem, which is the only one reported:
fix it and run again to see the rest. --json says which in "complete".`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("config validate takes at most one FILE, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.ConfigPath
			if len(args) == 1 {
				path = args[0]
			}
			return runValidate(cmd.Context(), path, g.JSON, cmd.OutOrStdout())
		},
	}
	g.configFlag(validate)
	g.jsonFlag(validate, "the verdict and every problem")
	cmd.AddCommand(withExits(validate,
		exitCase{exitOK, "the file is valid"},
		exitCase{exitFailed, "the verdict could not be written to stdout"},
		usageCase("the file has problems, or cannot be read")))
	return cmd
}

// validateReport is config validate --json.
type validateReport struct {
	File  string `json:"file"`
	Valid bool   `json:"valid"`
	// Complete is false when the file did not decode: Problems then holds
	// its first decoding problem only.
	Complete bool            `json:"complete"`
	Hosts    int             `json:"hosts"`
	Repos    int             `json:"repos"`
	Problems []problemReport `json:"problems"`
	Error    string          `json:"error,omitempty"`
}

type problemReport struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func runValidate(ctx context.Context, path string, asJSON bool, out io.Writer) error {
	rep := validateReport{File: path, Complete: true, Problems: []problemReport{}}
	cfg, _, err := config.LoadContext(ctx, path)
	if err != nil && !isConfigProblem(err) {
		if errors.Is(err, context.Canceled) {
			return err
		}
		err = usageError{fmt.Errorf("read config: %w", err)}
		if !asJSON {
			return err
		}
		rep.Complete, rep.Error = false, err.Error()
		return reportValidate(out, rep, err)
	}
	var ps config.Problems
	var p *config.Problem
	switch {
	case err == nil:
		rep.Valid = true
		rep.Hosts = len(cfg.Hosts)
		for _, h := range cfg.Hosts {
			rep.Repos += len(h.Repos)
		}
	case errors.As(err, &ps):
		for _, p := range ps {
			rep.Problems = append(rep.Problems, problemOf(p))
		}
	case errors.As(err, &p):
		rep.Complete = false
		rep.Problems = append(rep.Problems, problemOf(p))
		err = fmt.Errorf("%w\n(the file does not decode, so this is its first problem only: fix it and validate again)", err)
	default:
		rep.Complete, rep.Error = false, err.Error()
	}
	if asJSON {
		return reportValidate(out, rep, err)
	}
	if err != nil {
		return err
	}
	_, werr := fmt.Fprintf(out, "%s: ok (%d hosts, %d repos)\n", path, rep.Hosts, rep.Repos)
	return werr
}

// reportValidate writes the JSON verdict; a bad file is still exit 2, but
// its problems are in the document, not repeated on stderr.
func reportValidate(out io.Writer, rep validateReport, err error) error {
	if werr := writeJSON(out, rep); werr != nil {
		return werr
	}
	if err != nil {
		return reported{err}
	}
	return nil
}

func problemOf(p *config.Problem) problemReport {
	r := problemReport{Line: p.Line, Column: p.Col, Path: strings.TrimPrefix(strings.TrimPrefix(p.Path, "$"), "."), Message: p.Msg}
	if p.Err != nil {
		r.Kind = p.Err.Error()
	}
	return r
}
