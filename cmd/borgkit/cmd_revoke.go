package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/roles/recipe"
)

type revokeOptions struct {
	Root string
}

func newRevokeCommand(g *globals) *cobra.Command {
	o := &revokeOptions{}
	cmd := &cobra.Command{
		Use:   "revoke-unlock HOST",
		Short: "Kill switch: stop serving the LUKS key to offsite HOST (run on the server)",
		Long: `Kill switch for a stolen or lost offsite host: remove its serve-key entry from
the server's authorized_keys and leave a marker in /etc/borgkit/revoked so
neither serve-key nor a later provision ever authorizes it again (delete the
marker by hand to undo). Run it on the unlock server.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRevoke(cmd.Context(), o, g, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Root, "root", "", "act on the server's files under `DIR`")
	g.configFlag(cmd)
	g.jsonFlag(cmd, "the steps and their outcome")
	return withExits(cmd,
		exitCase{exitOK, "HOST can no longer fetch its key (also when it already could not)"},
		exitCase{exitFailed, "a step failed; see its line"},
		usageCase("a bad config, or HOST is not an offsite host whose key this server serves"))
}

func runRevoke(ctx context.Context, o *revokeOptions, g *globals, name string, out io.Writer) error {
	cfg, _, err := g.load(false)
	if err != nil {
		return err
	}
	phases, server, err := recipe.Revoke(cfg, name, time.Now())
	if err != nil {
		return usageError{err}
	}
	h := host.NewLocal(server.Name)
	if o.Root != "" {
		root, err := filepath.Abs(o.Root)
		if err != nil {
			return usageError{err}
		}
		h = host.NewRooted(server.Name, root)
	}
	var p plan.Printer = &plan.TextPrinter{W: out, Header: fmt.Sprintf("Revoking the unlock of %s on %s:", name, server.Name)}
	if g.JSON {
		p = plan.JSONPrinter{W: out}
	}
	for _, ss := range phases {
		if _, err := plan.Run(ctx, h, ss, plan.Options{Printer: p}); err != nil {
			return reported{err}
		}
	}
	if g.JSON {
		return nil
	}
	oh, _ := cfg.Host(name)
	for i := range oh.Disks {
		d := &oh.Disks[i]
		if d.LUKS == nil {
			continue
		}
		fmt.Fprintf(out, `
%s can no longer fetch its key. Its disk still opens with the old key, which
a thief who copied it while the Pi ran could hold. To rotate it, on the
replacement machine with the disk attached and the recovery bundle at hand:
  cryptsetup luksAddKey --key-file OLD.key %s NEW.key
  cryptsetup luksKillSlot --key-file NEW.key %s 0
then put NEW.key at %s on %s, refresh the header backup and the bundle
(borgkit recovery-bundle), delete %s and provision again.
`, name, d.Device, d.Device, cfg.LUKSKeyfile(oh, d), server.Name, layout.RevokedMarker(name))
	}
	return nil
}
