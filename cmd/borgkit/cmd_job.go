package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/copies"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/status"
)

// jobOptions are the flags of the jobs. Each job command registers only
// those it reads (jobFlags): the borg lock only where borg runs, --ssh only
// for the sync.
type jobOptions struct {
	Host     string
	StateDir string
	LogDir   string
	Lock     string
	LockWait time.Duration
	SSH      string
}

// Which job flags a command has, beyond --config, --host and -v.
const (
	flagState   = 1 << iota // --state-dir
	flagLog                 // --log-dir
	flagLock                // --lock, --lock-wait
	flagSSH                 // --ssh
	flagVerbose             // -v: the job's log also on stderr
)

func (o *jobOptions) addFlags(g *globals, cmd *cobra.Command, which int) {
	g.configFlag(cmd)
	hostFlag(cmd, &o.Host)
	f := cmd.Flags()
	if which&flagState != 0 {
		f.StringVar(&o.StateDir, "state-dir", layout.StateDir, "where job records are kept (`DIR`)")
	}
	if which&flagLog != 0 {
		f.StringVar(&o.LogDir, "log-dir", layout.LogDir, "where the job appends its log (`DIR`)")
	}
	if which&flagVerbose != 0 {
		g.verboseFlag(cmd, "also copy the job's log to stderr")
	}
	if which&flagLock != 0 {
		f.StringVar(&o.Lock, "lock", layout.LockFile, "the host-wide borg lock `FILE`")
		f.DurationVar(&o.LockWait, "lock-wait", 4*time.Hour, "how long the job waits for the borg lock")
	}
	if which&flagSSH != 0 {
		f.StringVar(&o.SSH, "ssh", "", "remote shell for offsite mirrors, as rsync -e takes it (default ssh -o BatchMode=yes)")
	}
}

// jobExits are a scheduled job's exit statuses.
var jobExits = []exitCase{
	{exitOK, "the job did its work, or stood down because another run of it is in progress"},
	{exitFailed, "the job failed (it mailed and notified; its record and log say why)"},
	usageCase("a bad config, a host not in it, or a job this host's role does not run"),
}

// syncLong is job sync's help: the mirror rule.
const syncLong = `Mirror every repo to each mirror, then write the heartbeat on the offsite host.
A repo is mirrored only when it is a whole borg repo and still what the
nightly left: a repo whose data, index or newest segments are gone, that
was replaced, whose recorded archives were deleted, or that lacks segments
its mirror has and no nightly freed, is refused and its mirrors are left
as they were.`

// jobSpec is one `borgkit job` subcommand.
type jobSpec struct {
	job, short string
	role       config.Role // "" for any role
	flags      int
	fn         func(context.Context, *jobs.Env) error
}

func newJobCommand(g *globals) *cobra.Command {
	o := &jobOptions{}
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Run one of the jobs provisioning schedules on a host",
		Long: `Run one of the jobs provisioning schedules on a host (cron or systemd timers
call them). Each job records its run in the state directory, appends to its
log, and alerts (mail and any ntfy or webhook channel) only when something
needs attention.`,
	}
	const std = flagState | flagLog | flagVerbose
	const borg = std | flagLock
	offsite := func(fn func(context.Context, *jobs.OffsiteEnv) error) func(context.Context, *jobs.Env) error {
		return func(ctx context.Context, e *jobs.Env) error { return fn(ctx, &jobs.OffsiteEnv{Env: *e}) }
	}
	// --accept-source of job sync.
	var accept []string
	specs := []jobSpec{
		{layout.JobNightly, "Back up every repo: preflight, create, prune, compact; several repos at once within nightly.parallel (default one per disk)", "", borg, jobs.Nightly},
		{layout.JobSync, "Mirror the repos to the NAS and the offsite host, then write the heartbeat", "", borg | flagSSH, func(ctx context.Context, e *jobs.Env) error {
			e.AcceptSource = accept
			return jobs.Sync(ctx, e)
		}},
		{layout.JobAudit, "Compare a share of every copy's files with the repos by SHA-256, so that all are compared within audit.cover_days", "", borg, jobs.Audit},
		{layout.JobStale, "Alert when the nightly run or the sync is overdue, or a job died", "", std, jobs.Stale},
		{layout.JobCheck, "borg check --repository-only on every repo", "", borg, func(ctx context.Context, e *jobs.Env) error {
			return jobs.Check(ctx, e, false)
		}},
		{layout.JobVerify, "borg check --verify-data on the repos due (each within audit.verify_days)", "", borg, func(ctx context.Context, e *jobs.Env) error {
			return jobs.Check(ctx, e, true)
		}},
		{layout.JobRestoreTest, "Extract files from the latest archives and compare them with the live ones", "", borg, jobs.RestoreTest},
		{layout.JobSummary, "Send the weekly summary: the dashboard as text and HTML", "", std, status.Summary},
		{layout.JobScrub, "On the archive host: check pool health and start a ZFS scrub of every pool", "", std, jobs.Scrub},
		{layout.JobSmartShort, "On the archive host: SMART health and a short self test of every disk", "", std, func(ctx context.Context, e *jobs.Env) error {
			return jobs.SmartTest(ctx, e, false)
		}},
		{layout.JobSmartLong, "On the archive host: SMART health and a long self test of every disk", "", std, func(ctx context.Context, e *jobs.Env) error {
			return jobs.SmartTest(ctx, e, true)
		}},
		{layout.JobZFSLoadKey, "On the archive host: load the ZFS keys from their keyfiles and mount the datasets (boot unit)", "", std, jobs.LoadZFSKeys},
		{layout.JobPull, "On the archive host: replicate the live server's dataset with syncoid", "", std, func(ctx context.Context, e *jobs.Env) error {
			return jobs.Pull(ctx, e, layout.SSHKey)
		}},
		{layout.JobWatchdog, "On the offsite host: alert when the server's heartbeat is stale or the disk is full or unmounted", config.RoleOffsite, std, offsite(jobs.Watchdog)},
		{layout.JobUnlock, "On the offsite host: fetch the LUKS key from the server, open and mount the disk (boot timer)", config.RoleOffsite, std, offsite(jobs.Unlock)},
		{layout.JobSnapshot, "On the offsite host: after each complete push, keep a read-only snapshot of the mirror the push key cannot reach", config.RoleOffsite, std, offsite(jobs.Snapshot)},
	}
	for _, sp := range specs {
		sp := sp
		c := &cobra.Command{
			Use: layout.JobCLI(sp.job), Short: sp.short, Args: exactArgs(0),
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runJob(cmd.Context(), g, o, sp.job, sp.role, sp.fn)
			},
		}
		o.addFlags(g, c, sp.flags)
		exits := jobExits
		switch sp.job {
		case layout.JobNightly:
			exits = append(slices.Clone(jobExits), exitCase{exitWarnings, "every repo was backed up, with warnings it mailed (COMPLETED WITH WARNINGS, SUSPICIOUS BACKUP)"})
		case layout.JobSync:
			c.Long = syncLong
			c.Flags().StringArrayVar(&accept, "accept-source", nil,
				"accept `REPO` as it is now after you checked it (borg check) and know why it changed: record it afresh and mirror it, deletions included")
		}
		cmd.AddCommand(withExits(c, exits...))
	}
	serveKey := &cobra.Command{
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
	}
	o.addFlags(g, serveKey, 0)
	serveHashes := &cobra.Command{
		Use:   "serve-hashes NAME=DIR...",
		Short: "Write names, sizes and SHA-256 sums of files under each DIR for the requests on stdin (the forced command of the server's hash key)",
		Long: `The forced command of the server's hash key on an offsite host: it answers
requests for the files under the roots its arguments name (NAME=DIR, fixed
in authorized_keys) with their names, sizes and SHA-256 sums, and can
neither read a file's content out, nor leave a root, nor change anything.
A root whose top-level directories are versions of one tree (the
snapshots) is listed once per inode, leaving out those another root holds.
It needs no config.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("serve-hashes needs at least one NAME=DIR")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			roots, err := copies.ParseRoots(args)
			if err != nil {
				return usageError{err}
			}
			return copies.Serve(cmd.Context(), roots, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	watchdogReport := &cobra.Command{
		Use:   layout.JobCLI(layout.JobWatchdogReport) + " HOST",
		Short: "Keep offsite HOST's watchdog report, read from stdin (the forced command of its report key)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := o.env(g)
			if err != nil {
				return err
			}
			err = jobs.ReceiveWatchdogReport(env.Cfg, env.Host.Name, args[0], env.RevokedDir, cmd.InOrStdin(),
				os.Getenv("SSH_CLIENT"), env.Store, time.Now())
			if err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "report kept")
			}
			return err
		},
	}
	o.addFlags(g, watchdogReport, flagState)
	pullGuard := &cobra.Command{
		Use:   "pull-guard ARCHIVE",
		Short: "Run the zfs get/send that ARCHIVE's syncoid pull sends, nothing else (the forced command of its pull key)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPullGuard(g, o, args[0])
		},
	}
	o.addFlags(g, pullGuard, flagLog)
	cmd.AddCommand(
		withExits(serveKey, exitCase{exitOK, "the key was written"}, exitCase{exitFailed, "the key could not be served (revoked, missing, not this host's to serve)"}, usageCase("a bad config")),
		withExits(watchdogReport, exitCase{exitOK, "the report was kept"}, exitCase{exitFailed, "the report was refused (revoked, not this server's offsite host, not a valid report) or could not be kept"}, usageCase("a bad config")),
		withExits(serveHashes, exitCase{exitOK, "the requests were answered"}, exitCase{exitFailed, "a request could not be read or answered"}, usageCase("a root that is not NAME=DIR")),
		withExits(pullGuard, exitCase{exitOK, "the allowed command ran and succeeded"}, exitCase{exitFailed, "the command was refused or failed"}, usageCase("a bad config")),
	)
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
// record store. The config is kept as the last good one when it loads.
func (o *jobOptions) env(g *globals) (*jobs.Env, error) {
	cfg, data, err := g.load(false)
	if err != nil {
		return nil, err
	}
	self, err := o.self(cfg)
	if err != nil {
		return nil, err
	}
	o.keepLastGood(data)
	return o.envFor(cfg, self), nil
}

func (o *jobOptions) envFor(cfg *config.Config, self *config.Host) *jobs.Env {
	e := &jobs.Env{Cfg: cfg, Host: self, Store: &state.Store{Dir: o.StateDir, Host: self.Name},
		LockPath: o.Lock, LockWait: o.LockWait, SSH: o.SSH}
	e.Defaults()
	return e
}

func (o *jobOptions) lastGoodPath() string { return filepath.Join(o.StateDir, layout.LastGoodConfig) }

// keepLastGood copies a config that loaded into the state directory when
// it differs from the copy there. Failing to is not the job's failure.
func (o *jobOptions) keepLastGood(data []byte) {
	if o.StateDir == "" {
		return // a forced command (serve-key, pull-guard) has no state directory
	}
	p := o.lastGoodPath()
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return
	}
	if os.MkdirAll(o.StateDir, 0o755) != nil {
		return
	}
	tmp, err := os.CreateTemp(o.StateDir, ".last-good-config.tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
}

// configBroken makes a job that cannot load the config alert anyway: it
// records the failed run, and mails and pings through the last config
// that loaded. Without one there is no address to mail: the record (the
// dashboard, the textfile of a later good run) and the Pi's watchdog,
// which misses the heartbeat, are what is left.
func (o *jobOptions) configBroken(ctx context.Context, g *globals, job string, loadErr error) {
	var e *jobs.Env
	if data, err := os.ReadFile(o.lastGoodPath()); err == nil {
		if cfg, err := config.Parse(o.lastGoodPath(), data); err == nil {
			if self, err := o.self(cfg); err == nil {
				e = o.envFor(cfg, self)
			}
		}
	}
	if e == nil {
		name := o.hostName()
		st := &state.Store{Dir: o.StateDir, Host: name}
		if run, err := st.Begin(job); err == nil {
			run.Finish(state.Failed, exitUsage, fmt.Sprintf("not run: the config %s does not load: %v", g.ConfigPath, loadErr), nil, nil)
		}
		return
	}
	if err := os.MkdirAll(o.LogDir, 0o750); err == nil {
		logPath := layout.JobLog(o.LogDir, job)
		if lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err == nil {
			defer lf.Close()
			e.Log, e.LogPath = lf, logPath
		}
	}
	jobs.ConfigBroken(ctx, e, job, g.ConfigPath, loadErr)
}

// runJob runs a job with its log file. A job with a role runs only on a
// host of that role.
func runJob(ctx context.Context, g *globals, o *jobOptions, job string, role config.Role, fn func(context.Context, *jobs.Env) error) error {
	env, err := o.env(g)
	if err != nil {
		o.configBroken(ctx, g, job, err)
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
	if o.Lock != "" {
		if err := os.MkdirAll(filepath.Dir(o.Lock), 0o755); err != nil {
			return fmt.Errorf("lock directory: %w", err)
		}
	}
	env.Log, env.LogPath = log, logPath
	fmt.Fprintf(lf, "=== %s %s on %s\n", time.Now().Format(time.RFC3339), layout.JobCLI(job), env.Host.Name)
	err = fn(ctx, env)
	if jobs.IsStandDown(err) {
		return nil
	}
	return err
}

// hostName is the name this machine has in the config: --host, else
// /etc/borgkit/host, else the hostname.
func (o *jobOptions) hostName() string {
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
	return name
}

// self finds which config host this machine is.
func (o *jobOptions) self(cfg *config.Config) (*config.Host, error) {
	return pickHost(cfg, hostPick{Flag: o.Host, HostFile: layout.HostFile, Hostname: os.Hostname})
}
