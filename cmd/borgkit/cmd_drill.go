package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/recovery/drill"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

type drillOptions struct {
	drill.Options
	StateDir string
}

func newDrillCommand(g *globals) *cobra.Command {
	o := &drillOptions{}
	cmd := &cobra.Command{
		Use:   "drill --bundle DIR (--disk DEVICE|IMAGE | --mirror DIR) [--snapshot NAME|latest]",
		Short: "The annual restore rehearsal: only the bundle and the offsite disk (or a mirror)",
		Long: `Rehearse a disaster restore with nothing but the recovery bundle and the
offsite disk (or an image of it, or an unencrypted mirror directory): verify
the bundle, unlock the disk with the bundle's keyfile (with its header backup
if the disk's header is damaged), mount it read-only, check every repo,
extract a random sample plus the canaries from the latest archives, compare
them with the archives' own hashes (and the live files with --compare-live),
and report RPO, RTO and throughput as Markdown and JSON. With --snapshot it
restores from one of the offsite host's read-only snapshots of its mirror
(kept beside it on the disk) instead: after the server's push key has
deleted or overwritten the mirror, that is the copy to restore. It never
writes to the disk, the mirror or a snapshot. The result is recorded for
borgkit status and the weekly summary.

Progress goes to stderr: one line redrawn in place on a terminal, a line per
phase elsewhere. The result goes to stdout: the report files' names, or with
--json the whole result (the report files are in it) and nothing else.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (o.Disk == "") == (o.Mirror == "") {
				return usagef("drill needs exactly one of --disk and --mirror")
			}
			o.Store = &state.Store{Dir: o.StateDir}
			o.Progress = cmd.ErrOrStderr()
			o.IsTTY = isTTY(cmd.ErrOrStderr())
			if g.Verbose {
				o.Log = cmd.ErrOrStderr()
			}
			res, err := drill.Run(cmd.Context(), o.Options)
			if res != nil {
				if g.JSON {
					if jerr := writeJSON(cmd.OutOrStdout(), res); jerr != nil {
						return jerr
					}
				} else {
					for _, f := range res.ReportFiles {
						fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", f)
					}
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Bundle, "bundle", "", "the recovery bundle `DIR`")
	f.StringVar(&o.Disk, "disk", "", "the offsite disk or an image of it (opened read-only; needs root)")
	f.StringVar(&o.DiskName, "disk-name", "", "which of the bundle's disks it is, as HOST/DISK (default: the only one)")
	f.StringVar(&o.Mirror, "mirror", "", "a `DIR` holding unencrypted repo copies by name instead of a disk")
	f.StringVar(&o.Snapshot, "snapshot", "", "restore from the offsite host's snapshot `NAME` of its mirror, or latest (borgkit snapshots list names them)")
	f.StringSliceVar(&o.Repos, "repo", nil, "only these repos (repeatable)")
	f.IntVar(&o.Samples, "samples", 20, "random files to extract per repo")
	f.Uint64Var(&o.Seed, "seed", 0, "seed for the sample (0: random; the report says which)")
	f.BoolVar(&o.CompareLive, "compare-live", false, "also compare the extracted files with the live ones")
	f.StringVar(&o.LiveRoot, "live-root", "/", "where the live files are, with --compare-live")
	f.StringVar(&o.ReportDir, "report-dir", ".", "where the Markdown and JSON report go when the bundle is read-only")
	f.StringVar(&o.WorkDir, "work-dir", "", "where extracted files go (default: a temporary directory)")
	f.StringVar(&o.StateDir, "state-dir", layout.StateDir, "where the drill is recorded for borgkit status")
	g.jsonFlag(cmd, "the whole result")
	g.verboseFlag(cmd, "log every command run, with its stderr, to stderr")
	required(cmd, "bundle")
	return withExits(cmd,
		exitCase{exitOK, "the drill passed: every repo checked, every sampled file restored and matching"},
		exitCase{exitFailed, "the drill failed or could not run; the report says what"},
		usageCase(""))
}
