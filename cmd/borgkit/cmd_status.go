package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/roles/jobs/status"
)

func newStatusCommand(g *globals) *cobra.Command {
	o := &jobOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the backup dashboard of this host, from the jobs' records (no borg run)",
		Long: `Show the backup dashboard of this host: storage, every repo's archives, ages
and sizes, the mirrors, VMs, integrity checks, restore tests, the last drill,
and what needs attention. It reads the records the jobs leave and never waits
on borg. --json prints the same as data.` + exitStatusHelp,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := o.env(g)
			if err != nil {
				return err
			}
			d, err := status.Live(e)
			if err != nil {
				return err
			}
			if g.JSON {
				return d.JSON(cmd.OutOrStdout())
			}
			return d.Text(cmd.OutOrStdout(), isTTY(cmd.OutOrStdout()))
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// isTTY decides colour: only a terminal gets escape codes.
func isTTY(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
