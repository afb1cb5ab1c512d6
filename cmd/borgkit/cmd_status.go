package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/progress"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/status"
)

type statusOptions struct {
	Host     string
	StateDir string
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
every issue and item carries its level.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(g, o, cmd)
		},
	}
	g.configFlag(cmd)
	hostFlag(cmd, &o.Host)
	cmd.Flags().StringVar(&o.StateDir, "state-dir", layout.StateDir, "where the jobs keep their records (`DIR`)")
	g.jsonFlag(cmd, "the dashboard")
	return withExits(cmd,
		exitCase{exitOK, "healthy, or warnings only"},
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

// isTTY decides colour and live progress lines.
func isTTY(w any) bool { return progress.IsTerminal(w) }
