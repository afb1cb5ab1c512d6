package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/progress"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/status"
)

type statusOptions struct {
	Host     string
	StateDir string
	All      bool
	Hosts    []string
	Parallel int
	// SSH is how --all reaches the hosts (identity, known_hosts, timeout).
	SSH provisionOptions
}

func newStatusCommand(g *globals) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the backup dashboard of this host, from the jobs' records (no borg run)",
		Long: `Show the backup dashboard of this host: storage, every repo's archives, ages
and sizes, the mirrors, VMs, integrity checks, restore tests, the last drill,
and what needs attention. It reads the records the jobs leave and never waits
on borg. --json prints the same as data.

This host is --host, else the name in ` + layout.HostFile + ` (provisioning writes
it), else the hostname. On a machine none of those name, it is the one host
the job records in --state-dir name, else the config's only host of the role
those records' jobs belong to, else the config's only host; the pick is noted
on stderr. Otherwise status stops and asks for --host.

A failure (a job that failed or never succeeded, a FAILED repo, mirror or
check) exits 1. A warning (a disk filling up, no drill rehearsed yet, dumps
not listed yet) exits 0: it asks for attention but says nothing is wrong
with the backups, and a monitor built on status should page for broken
backups, not for reminders. Warnings are on the dashboard, and with --json
every issue and item carries its level.

With --all (or --hosts A,B), status gathers the dashboards of the config's
hosts over SSH, at most --parallel at once: on each host it runs the
installed ` + layout.Binary + ` status --host NAME, which reads that host's
records and never runs borg, and prints each host's dashboard whole, then a
summary line per host. With --json it is one document: every host's
dashboard under its name, with its outcome. A host that cannot be reached,
or whose dashboard shows a failure, is a failed host.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.All || len(o.Hosts) > 0 {
				return runStatusFleet(cmd.Context(), g, o, cmd.OutOrStdout())
			}
			return runStatus(g, o, cmd)
		},
	}
	g.configFlag(cmd)
	hostFlag(cmd, &o.Host)
	cmd.Flags().StringVar(&o.StateDir, "state-dir", layout.StateDir, "where the jobs keep their records (`DIR`)")
	g.jsonFlag(cmd, "the dashboard")
	cmd.Flags().BoolVar(&o.All, "all", false, "every host of the config, over SSH: one dashboard")
	cmd.Flags().StringSliceVar(&o.Hosts, "hosts", nil, "these `HOST`s of the config, over SSH, as --all does")
	cmd.Flags().IntVar(&o.Parallel, "parallel", defaultParallel, "with --all: at most `N` hosts at once")
	cmd.Flags().StringSliceVar(&o.SSH.Identity, "identity", nil, "with --all: SSH private key `FILE` (default ~/.ssh/id_ed25519 and the borgkit key)")
	cmd.Flags().StringSliceVar(&o.SSH.KnownHosts, "known-hosts", nil, "with --all: known_hosts `FILE` (default ~/.ssh/known_hosts)")
	cmd.Flags().DurationVar(&o.SSH.Timeout, "connect-timeout", 15*time.Second, "with --all: SSH connect timeout")
	return withExits(cmd,
		exitCase{exitOK, "healthy, or warnings only"},
		exitCase{exitSomeFailed, "with --all: some hosts show a failure or could not be reached, the others are healthy; the summary names them"},
		exitCase{exitFailed, "the dashboard shows a failure (a FAILED job, repo, mirror or check), or the records cannot be read"},
		usageCase("a bad config, or no way to tell which host this is"))
}

func runStatus(g *globals, o *statusOptions, cmd *cobra.Command) error {
	cfg, _, err := g.load(false)
	if err != nil {
		return err
	}
	self, err := pickHost(cfg, hostPick{Flag: o.Host, HostFile: layout.HostFile, Hostname: os.Hostname, StateDir: o.StateDir, Note: cmd.ErrOrStderr()})
	if err != nil {
		return err
	}
	e := &jobs.Env{Cfg: cfg, Host: self, Store: &state.Store{Dir: o.StateDir, Host: self.Name}}
	e.Defaults()
	d, err := status.Live(e)
	if err != nil {
		return err
	}
	if g.JSON {
		err = d.JSON(cmd.OutOrStdout())
	} else {
		err = d.Text(cmd.OutOrStdout(), isTTY(cmd.OutOrStdout()))
	}
	if err != nil {
		return err
	}
	if d.Failed() {
		return reported{errUnhealthy}
	}
	return nil
}

// runStatusFleet is status --all: every host's dashboard, gathered over SSH.
func runStatusFleet(ctx context.Context, g *globals, o *statusOptions, out io.Writer) error {
	if o.Host != "" {
		return usagef("--host names this machine; with --all or --hosts, status reads every host named")
	}
	if o.Parallel < 1 {
		return usagef("--parallel %d: at least 1", o.Parallel)
	}
	cfg, _, err := g.load(false)
	if err != nil {
		return err
	}
	if o.All && len(o.Hosts) > 0 {
		return usagef("--all and --hosts: give one")
	}
	names, err := fleetHosts(cfg, o.All, o.Hosts)
	if err != nil {
		return err
	}
	return fleet(ctx, names, nil, o.Parallel, g.JSON, out, func(ctx context.Context, name string, out, _ io.Writer) error {
		hc, _ := cfg.Host(name)
		return remoteStatus(ctx, &o.SSH, hc, g.JSON, out)
	})
}

// remoteStatus runs the host's own borgkit status, which reads its records
// (never borg), and copies its dashboard to out. Its exit 1 (a failure on
// the dashboard) still gives a dashboard, and is this host's failure.
func remoteStatus(ctx context.Context, o *provisionOptions, hc *config.Host, asJSON bool, out io.Writer) error {
	h, _, err := connect(ctx, o, hc)
	if err != nil {
		return err
	}
	defer h.Close()
	argv := []string{layout.Binary, "status", "--host", hc.Name}
	if asJSON {
		argv = append(argv, "--json")
	}
	r, err := h.Run(ctx, host.Cmd{Argv: argv})
	out.Write(r.Stdout) //nolint:errcheck // a buffer
	var ee *host.ExitError
	if errors.As(err, &ee) && ee.ExitCode == exitFailed && len(r.Stdout) > 0 {
		return reported{fmt.Errorf("%s: the dashboard shows a failure", hc.Name)}
	}
	if err != nil {
		return fmt.Errorf("status of %s: %w", hc.Name, err)
	}
	return nil
}

// isTTY decides colour and live progress lines.
func isTTY(w any) bool { return progress.IsTerminal(w) }
