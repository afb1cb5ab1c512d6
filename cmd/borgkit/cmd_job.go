package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/status"
)

// jobOptions are shared by every job.
type jobOptions struct {
	Host     string
	StateDir string
	LogDir   string
	Lock     string
	LockWait time.Duration
	SSH      string
}

func (o *jobOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.Host, "host", "", "the config `NAME` of this host (default: /etc/borgkit/host, else the hostname)")
	f.StringVar(&o.StateDir, "state-dir", layout.StateDir, "where job records are kept (`DIR`)")
	f.StringVar(&o.LogDir, "log-dir", layout.LogDir, "where each job appends its log (`DIR`)")
	f.StringVar(&o.Lock, "lock", layout.LockFile, "the host-wide borg lock `FILE`")
	f.DurationVar(&o.LockWait, "lock-wait", 4*time.Hour, "how long a job waits for the borg lock")
	f.StringVar(&o.SSH, "ssh", "", "remote shell for offsite mirrors, as rsync -e takes it (default ssh -o BatchMode=yes)")
}

func newJobCommand(g *globals) *cobra.Command {
	o := &jobOptions{}
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Run one of the jobs provisioning schedules on a host",
		Long: `Run one of the jobs provisioning schedules on a host (cron or systemd timers
call them). Each job records its run in the state directory, appends to its
log, and mails only when something needs attention.` + exitStatusHelp,
	}
	o.AddFlags(cmd)
	server := func(job, short string, fn func(context.Context, *jobs.Env) error) *cobra.Command {
		return &cobra.Command{
			Use: layout.JobCLI(job), Short: short, Args: exactArgs(0),
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runJob(cmd.Context(), g, o, job, "", fn)
			},
		}
	}
	cmd.AddCommand(
		server(layout.JobNightly, "Back up every repo: preflight, create, prune, compact", jobs.Nightly),
		server(layout.JobSync, "Mirror the repos to the NAS and the offsite host, then write the heartbeat", jobs.Sync),
		server(layout.JobStale, "Alert when the nightly run or the sync is overdue, or a job died", jobs.Stale),
		server(layout.JobCheck, "borg check --repository-only on every repo", func(ctx context.Context, e *jobs.Env) error {
			return jobs.Check(ctx, e, false)
		}),
		server(layout.JobVerify, "borg check --verify-data on every repo", func(ctx context.Context, e *jobs.Env) error {
			return jobs.Check(ctx, e, true)
		}),
		server(layout.JobRestoreTest, "Extract files from the latest archives and compare them with the live ones", jobs.RestoreTest),
		server(layout.JobSummary, "Mail the weekly summary: the dashboard as text and HTML", status.Summary),
		server(layout.JobScrub, "On the archive host: check pool health and start a ZFS scrub of every pool", jobs.Scrub),
		server(layout.JobSmartShort, "On the archive host: SMART health and a short self test of every disk", func(ctx context.Context, e *jobs.Env) error {
			return jobs.SmartTest(ctx, e, false)
		}),
		server(layout.JobSmartLong, "On the archive host: SMART health and a long self test of every disk", func(ctx context.Context, e *jobs.Env) error {
			return jobs.SmartTest(ctx, e, true)
		}),
		server(layout.JobZFSLoadKey, "On the archive host: load the ZFS keys from their keyfiles and mount the datasets (boot unit)", jobs.LoadZFSKeys),
		server(layout.JobPull, "On the archive host: replicate the live server's dataset with syncoid", func(ctx context.Context, e *jobs.Env) error {
			return jobs.Pull(ctx, e, layout.SSHKey)
		}),
	)
	offsite := func(job, short string, fn func(context.Context, *jobs.OffsiteEnv) error) *cobra.Command {
		return &cobra.Command{
			Use: layout.JobCLI(job), Short: short, Args: exactArgs(0),
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runJob(cmd.Context(), g, o, job, config.RoleOffsite, func(ctx context.Context, e *jobs.Env) error {
					return fn(ctx, &jobs.OffsiteEnv{Env: *e})
				})
			},
		}
	}
	cmd.AddCommand(
		offsite(layout.JobWatchdog, "On the offsite host: alert when the server's heartbeat is stale or the disk is full or unmounted", jobs.Watchdog),
		offsite(layout.JobUnlock, "On the offsite host: fetch the LUKS key from the server, open and mount the disk (boot timer)", jobs.Unlock),
	)
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
			return jobs.ServeKey(cmd.Context(), cfg, self.Name, args[0], layout.RevokedDir, cmd.OutOrStdout())
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "pull-guard ARCHIVE",
		Short: "Run the zfs get/send that ARCHIVE's syncoid pull sends, nothing else (the forced command of its pull key)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPullGuard(g, o, args[0])
		},
	})
	return cmd
}

// runPullGuard serves one SSH session of an archive host's pull key: the
// command comes from SSH_ORIGINAL_COMMAND, each decision is appended to
// LOG-DIR/pull-guard.log.
func runPullGuard(g *globals, o *jobOptions, archive string) error {
	env, err := o.env(g)
	if err != nil {
		return err
	}
	guard := &jobs.PullGuard{Cfg: env.Cfg, Self: env.Host.Name, Exec: jobs.ExecProgram}
	// Without its log the guard still decides: the pull must not depend on
	// a full /var/log, and sshd logs the session anyway.
	if err := os.MkdirAll(o.LogDir, 0o750); err == nil {
		if lf, err := os.OpenFile(filepath.Join(o.LogDir, "pull-guard.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err == nil {
			defer lf.Close()
			guard.Log = lf
		}
	}
	return guard.Serve(archive, os.Getenv("SSH_ORIGINAL_COMMAND"), os.Getenv("SSH_CLIENT"))
}

// env is a job's environment without its log: config, this host, its
// record store.
func (o *jobOptions) env(g *globals) (*jobs.Env, error) {
	cfg, _, err := g.load(false)
	if err != nil {
		return nil, err
	}
	self, err := o.self(cfg)
	if err != nil {
		return nil, err
	}
	e := &jobs.Env{Cfg: cfg, Host: self, Store: &state.Store{Dir: o.StateDir, Host: self.Name},
		LockPath: o.Lock, LockWait: o.LockWait, SSH: o.SSH}
	e.Defaults()
	return e, nil
}

// runJob runs a job with its log file. A job with a role runs only on a
// host of that role.
func runJob(ctx context.Context, g *globals, o *jobOptions, job string, role config.Role, fn func(context.Context, *jobs.Env) error) error {
	env, err := o.env(g)
	if err != nil {
		return err
	}
	if role != "" && env.Host.Role != role {
		return usageError{fmt.Errorf("job %s runs on a host of role %s; %s is a %s", layout.JobCLI(job), role, env.Host.Name, env.Host.Role)}
	}
	if err := os.MkdirAll(o.LogDir, 0o750); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	logPath := layout.JobLog(o.LogDir, job)
	lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer lf.Close()
	var log io.Writer = lf
	if g.Verbose {
		log = io.MultiWriter(lf, os.Stderr)
	}
	if err := os.MkdirAll(filepath.Dir(o.Lock), 0o755); err != nil {
		return fmt.Errorf("lock directory: %w", err)
	}
	env.Log, env.LogPath = log, logPath
	fmt.Fprintf(lf, "=== %s %s on %s\n", time.Now().Format(time.RFC3339), layout.JobCLI(job), env.Host.Name)
	err = fn(ctx, env)
	if jobs.IsStandDown(err) {
		return nil
	}
	return err
}

// self finds which config host this machine is.
func (o *jobOptions) self(cfg *config.Config) (*config.Host, error) {
	name := o.Host
	if name == "" {
		if b, err := os.ReadFile(layout.HostFile); err == nil {
			name = strings.TrimSpace(string(b))
		}
	}
	if name == "" {
		hn, _ := os.Hostname()
		name = strings.SplitN(hn, ".", 2)[0]
	}
	h, ok := cfg.Host(name)
	if !ok {
		return nil, usageError{fmt.Errorf("this machine is %q, which is not a host in %s; pass --host", name, cfg.File)}
	}
	return h, nil
}
