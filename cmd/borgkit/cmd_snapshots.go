package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/alert"
)

type snapshotsOptions struct {
	jobOptions
	Yes bool
}

func newSnapshotsCommand(g *globals) *cobra.Command {
	o := &snapshotsOptions{}
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "On the offsite host: list the mirror's snapshots, or lower their retention",
		Long: `The offsite host keeps a read-only snapshot of its mirror after each complete
push from the server (borgkit job snapshot): hard links to files the push
user no longer owns, under BACKUP-DISK/borgkit-snapshots. Neither the push
key nor a config edited on the server can remove them: the host keeps the
largest retention it has ever been given, and only lower-retention, run on
the host itself, makes it smaller.`,
	}
	// flags are the ones both subcommands read: the config, this host, and
	// where its job records are.
	flags := func(c *cobra.Command) {
		o.addFlags(g, c, flagState)
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the snapshots, why each is kept, and the disk they hold",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := o.offsiteEnv(g)
			if err != nil {
				return err
			}
			l, err := jobs.ListSnapshots(env)
			if err != nil {
				return err
			}
			if g.JSON {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			printSnapshots(cmd.OutOrStdout(), l, time.Now())
			return nil
		},
	}
	flags(list)
	g.jsonFlag(list, "the snapshots")
	lower := &cobra.Command{
		Use:   "lower-retention --yes",
		Short: "Accept a smaller snapshot retention from the config (removes snapshots at the next snapshot run)",
		Long: `Make the snapshot retention the config asks for the one this host keeps,
when it is smaller than what it kept so far. The next run of the snapshot
job removes the snapshots it no longer keeps. Provisioning never runs this:
a config edited on the server cannot shorten the offsite history.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !o.Yes {
				return usagef("lower-retention removes offsite history at the next snapshot run; pass --yes")
			}
			env, err := o.offsiteEnv(g)
			if err != nil {
				return err
			}
			was, now, err := jobs.LowerSnapshotRetention(env)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "snapshot retention on %s: %s, was %s; the next snapshot run removes what it no longer keeps\n",
				env.Host.Name, retention(now), retention(was))
			return nil
		},
	}
	flags(lower)
	lower.Flags().BoolVar(&o.Yes, "yes", false, "really lower it")
	offsiteOnly := "a bad config, or a host that is not an offsite host"
	cmd.AddCommand(
		withExits(list, exitCase{exitOK, "the snapshots were listed"}, exitCase{exitFailed, "the snapshots or their record could not be read"}, usageCase(offsiteOnly)),
		withExits(lower, exitCase{exitOK, "the config's retention is now the one this host keeps"}, exitCase{exitFailed, "the retention record could not be read or written"}, usageCase("no --yes; "+offsiteOnly)),
	)
	return cmd
}

func retention(r config.Snapshots) string {
	if r.Daily == 0 && r.Weekly == 0 {
		return "none recorded"
	}
	return fmt.Sprintf("%d daily, %d weekly", r.Daily, r.Weekly)
}

// offsiteEnv is the offsite host's job environment.
func (o *snapshotsOptions) offsiteEnv(g *globals) (*jobs.OffsiteEnv, error) {
	env, err := o.env(g)
	if err != nil {
		return nil, err
	}
	if env.Host.Role != config.RoleOffsite {
		return nil, usagef("snapshots are kept on an offsite host; %s is a %s", env.Host.Name, env.Host.Role)
	}
	return &jobs.OffsiteEnv{Env: *env}, nil
}

func printSnapshots(w io.Writer, l *jobs.SnapshotList, now time.Time) {
	fmt.Fprintf(w, "Snapshots of %s in %s (retention kept: %s):\n", l.Mirror, l.Root, l.Policy)
	if len(l.Snapshots) == 0 {
		fmt.Fprintln(w, "  none yet: one is taken after the next complete push")
	}
	for _, s := range l.Snapshots {
		why := l.Why[s.Name]
		if why == "" {
			why = "removed at the next snapshot run"
		}
		fmt.Fprintf(w, "  %s  %s ago  %s\n", s.Name, alert.Age(now.Sub(s.Time)), why)
	}
	u := l.Usage
	fmt.Fprintf(w, "They hold %s the mirror no longer has (%d files) and %s of directories; the mirror is %s.\n",
		alert.Size(uint64(u.HeldBytes)), u.HeldFiles, alert.Size(uint64(u.DirBytes)), alert.Size(uint64(u.MirrorBytes)))
	if l.Retention.Note != "" {
		fmt.Fprintln(w, l.Retention.Note)
	}
}
