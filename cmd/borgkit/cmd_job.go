package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles"
	"github.com/borgkit/borgkit/roles/jobs"
)

// jobOptions are shared by every job.
type jobOptions struct {
	Host string
}

func newJobCommand(g *globals) *cobra.Command {
	o := &jobOptions{}
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Run one of the jobs provisioning schedules on a host",
		Long: `Run one of the jobs provisioning schedules on a host (cron or systemd timers
call them). The host is named by --host, else by /etc/borgkit/host, which
provisioning writes, else by this machine's hostname.` + exitStatusHelp,
	}
	cmd.PersistentFlags().StringVar(&o.Host, "host", "", "the config `NAME` of this host")
	cmd.AddCommand(&cobra.Command{
		Use:   "serve-key HOST",
		Short: "Write the LUKS key of offsite HOST to stdout (the forced command of its unlock key)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := g.load(false)
			if err != nil {
				return err
			}
			self, err := o.self(cfg)
			if err != nil {
				return err
			}
			return jobs.ServeKey(cmd.Context(), cfg, self, args[0], jobs.RevokedDir, cmd.OutOrStdout())
		},
	})
	return cmd
}

// self finds which config host this machine is.
func (o *jobOptions) self(cfg *config.Config) (string, error) {
	name := o.Host
	if name == "" {
		if b, err := os.ReadFile(roles.HostFile); err == nil {
			name = strings.TrimSpace(string(b))
		}
	}
	if name == "" {
		hn, _ := os.Hostname()
		name = strings.SplitN(hn, ".", 2)[0]
	}
	if _, ok := cfg.Host(name); !ok {
		return "", usageError{fmt.Errorf("this machine is %q, which is not a host in %s; pass --host", name, cfg.File)}
	}
	return name, nil
}
