package jobs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Env is what a server job runs with. Everything that touches the machine
// goes through a field, so a test can point it at temporary directories
// while still running the real borg, rsync and msmtp.
type Env struct {
	Cfg    *config.Config
	Host   *config.Host
	Store  *state.Store
	Mailer *alert.Mailer
	// Exec runs programs: host.NewLocal in real runs.
	Exec host.Host
	// Log receives the job's log; LogPath names it in mails.
	Log     io.Writer
	LogPath string
	Now     func() time.Time
	// LockPath is the host-wide borg lock; LockWait bounds the wait for it.
	LockPath string
	LockWait time.Duration
	// Mounted reports whether path is a mountpoint and the UUID of what is
	// mounted there.
	Mounted func(ctx context.Context, path string) (mounted bool, uuid string, err error)
	// MountedAt reports whether anything is mounted at a path (default:
	// this process's mount table).
	MountedAt func(path string) bool
	// Usage reports a filesystem's fill.
	Usage func(path string) (state.DiskUsage, error)
	// SSH is the remote shell rsync uses for offsite mirrors, as rsync's -e
	// takes it (rsync splits it on spaces; no shell is involved).
	SSH string
	// HashSSH reaches an offsite host's serve-hashes forced command (the
	// hash key), split the same way; the host's name is appended.
	HashSSH string
	// RevokedDir holds the markers of revoked offsite hosts (default
	// layout.RevokedDir): they get no pushes, and the stale check stops
	// watching them.
	RevokedDir string
	// AcceptSource names repos the operator has checked and accepts as
	// they are: the sync records them afresh and mirrors them although
	// they differ from what the nightly left (`--accept-source`).
	AcceptSource []string
	// VMXMLDir keeps the definition of each VM, dumped before its backup
	// (default layout.VMXMLDir).
	VMXMLDir string
	// MachinesDir and NspawnDir are where the containers and their
	// settings are (default layout.MachinesDir, layout.NspawnDir).
	MachinesDir, NspawnDir string
	// Pinger reports starts and ends to the configured ping_url (nil: none).
	Pinger *alert.Pinger
	// Channels get every alert the mail gets (ntfy, webhook); default
	// alert.Channels of the host.
	Channels []alert.Channel
	// RepoRSH replaces the BORG_RSH a remote repo is reached with
	// (default borg.RSH of borgkit's repo identity and known_hosts).
	RepoRSH string
	// PushLockWait is the wait between tries of a push that the offsite
	// host's snapshot holds off (default DefaultPushLockWait).
	PushLockWait time.Duration

	lines  *runLog // this run's log, for the record's tail
	prefix string  // starts every log line ("unlock: ")
	job    string  // the job Begin started, named in notifications
}

// runLog is a run's log lines. The lock is there because after a signal the
// job unwinding and the signal's report both log; the pointer lets a copied
// Env (OffsiteEnv.resolved) start a log of its own.
type runLog struct {
	mu    sync.Mutex
	lines []string
	// mailErr is why this run's last mail failed ("" when none did).
	mailErr string
}

// Defaults fills what a real run leaves empty.
func (e *Env) Defaults() {
	if e.lines == nil {
		e.lines = &runLog{}
	}
	if e.Exec == nil {
		e.Exec = host.NewLocal(e.Host.Name)
	}
	if e.Store == nil {
		e.Store = &state.Store{Host: e.Host.Name}
	}
	if e.Log == nil {
		e.Log = io.Discard
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.LockPath == "" {
		e.LockPath = layout.LockFile
	}
	if e.Mounted == nil {
		e.Mounted = e.findmnt
	}
	if e.Usage == nil {
		e.Usage = Statfs
	}
	if e.MountedAt == nil {
		e.MountedAt = MountedAt
	}
	if e.SSH == "" {
		e.SSH = "ssh -o BatchMode=yes -o ConnectTimeout=30"
	}
	if e.HashSSH == "" {
		e.HashSSH = "ssh -i " + layout.HashKey + " -o IdentitiesOnly=yes -l root -o BatchMode=yes -o ConnectTimeout=30"
	}
	if e.RevokedDir == "" {
		e.RevokedDir = layout.RevokedDir
	}
	if e.VMXMLDir == "" {
		e.VMXMLDir = layout.VMXMLDir
	}
	if e.MachinesDir == "" {
		e.MachinesDir = layout.MachinesDir
	}
	if e.NspawnDir == "" {
		e.NspawnDir = layout.NspawnDir
	}
	if e.Mailer == nil {
		e.Mailer = alert.ForHost(e.Cfg, e.Host)
	}
	if u := e.Cfg.HostAlerts(e.Host).PingURL; e.Pinger == nil && u != "" {
		e.Pinger = &alert.Pinger{URL: u, Host: e.Host.Name}
	}
	if e.Channels == nil {
		e.Channels = alert.Channels(e.Cfg, e.Host)
	}
}

// logf writes one line to the log and keeps it for the record's tail.
func (e *Env) logf(format string, args ...any) {
	msg := e.prefix + fmt.Sprintf(format, args...)
	if e.lines == nil {
		e.lines = &runLog{}
	}
	e.lines.mu.Lock()
	defer e.lines.mu.Unlock()
	e.lines.lines = append(e.lines.lines, msg)
	fmt.Fprintf(e.Log, "%s %s\n", e.Now().Format("2006-01-02 15:04:05"), msg)
}

// logged is a copy of this run's log so far.
func (e *Env) logged() []string {
	if e.lines == nil {
		return nil
	}
	e.lines.mu.Lock()
	defer e.lines.mu.Unlock()
	return slices.Clone(e.lines.lines)
}

// Mail sends msg by mail and to every channel at once, and only logs a
// failure: a broken mail path or a dead push server must not turn a good
// backup into a failed one (the stale check and the Pi's watchdog catch
// a silent server), and one channel down must not hold back the others.
func (e *Env) Mail(ctx context.Context, msg alert.Message) {
	subject := e.Mailer.Subject(msg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := e.Mailer.Send(ctx, msg); err != nil {
			e.logf("sending %q failed: %v", subject, err)
			e.mailFailed(fmt.Sprintf("sending %q: %v", subject, err))
			return
		}
		e.logf("mailed %q", subject)
	}()
	n := e.Notification(msg)
	for _, c := range e.Channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Notify(ctx, n); err != nil {
				e.logf("notifying %q failed: %v", subject, err)
				return
			}
			e.logf("notified %s of %q", c.Name(), subject)
		}()
	}
	wg.Wait()
}

// Notification is msg as the push channels get it.
func (e *Env) Notification(msg alert.Message) alert.Notification {
	h := msg.Host
	if h == "" {
		h = e.Host.Name
	}
	job := ""
	if e.job != "" {
		job = layout.JobCLI(e.job)
	}
	return alert.Notification{Host: h, Job: job, Subject: e.Mailer.Subject(msg), Severity: msg.Level(),
		Text: msg.Text, Time: e.Now().UTC().Truncate(time.Second), Site: e.Cfg.Site}
}

// mailFailed keeps why this run's mail failed, for the watchdog's report.
func (e *Env) mailFailed(why string) {
	if e.lines == nil {
		return
	}
	e.lines.mu.Lock()
	e.lines.mailErr = why
	e.lines.mu.Unlock()
}

// mailFailure is why this run's last mail failed, "" when none did.
func (e *Env) mailFailure() string {
	if e.lines == nil {
		return ""
	}
	e.lines.mu.Lock()
	defer e.lines.mu.Unlock()
	return e.lines.mailErr
}

// findmnt asks util-linux what is mounted exactly at path.
func (e *Env) findmnt(ctx context.Context, path string) (bool, string, error) {
	res, err := e.Exec.Run(ctx, host.Command(tools.Findmnt, "--noheadings", "--output", "UUID", "--mountpoint", path))
	if err != nil {
		if res.ExitCode == 1 { // nothing mounted there
			return false, "", nil
		}
		return false, "", fmt.Errorf("findmnt %s: %w", path, err)
	}
	return true, strings.TrimSpace(string(res.Stdout)), nil
}

// Statfs reads a filesystem's size and use the way df does.
func Statfs(path string) (state.DiskUsage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return state.DiskUsage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	size, free, avail := st.Blocks*bs, st.Bfree*bs, st.Bavail*bs
	used := size - free
	u := state.DiskUsage{Mount: path, Size: size, Used: used, Avail: avail}
	// df's Use%: used over what users can have, rounded up.
	if total := used + avail; total > 0 {
		u.Percent = int((used*100 + total - 1) / total)
	}
	return u, nil
}

// Begin starts a job's record, reporting an abandoned previous run. A run
// of the same job that is still alive makes this one stand down.
func (e *Env) Begin(ctx context.Context, job string) (*state.Run, context.Context, func(), error) {
	e.job = job
	e.Store.Finished = e.finished
	run, err := e.Store.Begin(job)
	var busy *state.RunningError
	if errors.As(err, &busy) {
		e.logf("%s is already running (pid %d); this run stands down", job, busy.Record.PID)
		return nil, nil, nil, errStandDown
	}
	if err != nil {
		// No record can be written (a full or read-only state
		// directory): the run stops, but never silently.
		err = fmt.Errorf("%s: %w", job, err)
		e.logf("not run: %v", err)
		e.Mail(ctx, e.notRun(job, "its record cannot be written: "+err.Error(),
			"Free space in (or fix) the state directory, "+e.Store.Path()+"; the job runs again at its next scheduled time."))
		return nil, nil, nil, err
	}
	if run.PrevErr != nil {
		e.logf("previous record unreadable, replaced: %v", run.PrevErr)
	}
	if a := run.Abandoned; a != nil {
		e.Mail(ctx, alert.TerminatedAbnormally(a.Job, a.PID, a.Started, "its process is gone without finishing (SIGKILL, OOM, power loss)"))
	}
	ctx, stop := run.OnSignal(ctx, func(ctx context.Context, rec state.Record) {
		e.Mail(ctx, alert.TerminatedAbnormally(rec.Job, rec.PID, rec.Started, "stopped by "+rec.Signal))
	})
	// After the trap is set: a check that is down can hold the start ping
	// for half a minute, and a SIGTERM then must still be recorded.
	if e.pings(job) {
		if err := e.Pinger.Start(ctx, job); err != nil {
			e.logf("%v", err)
		}
	}
	e.writeTextfile() // shows the job running
	return run, ctx, stop, nil
}

// notRun is the mail of job not running: the nightly's own ABORTED, a
// check's NOT RUN, JOB NOT RUN for the others.
func (e *Env) notRun(job, reason, hint string) alert.Message {
	switch job {
	case layout.JobNightly:
		return alert.NightlyAborted(reason+"\n"+hint, e.Now(), e.LogPath)
	case layout.JobCheck, layout.JobVerify:
		return alert.IntegrityNotRun("borgkit job "+layout.JobCLI(job), reason+"\n"+hint, e.Now(), e.LogPath)
	}
	return alert.NotRun(alert.SubjectJobNotRun, layout.JobCLI(job), reason, hint, e.Now())
}

// ConfigBroken records and mails that job could not run because the
// config does not load: e is built from the last config that did (its
// mail, ping and textfile), so the night is not silent. The record makes
// the dashboard and the stale check show the failed run.
func ConfigBroken(ctx context.Context, e *Env, job, file string, loadErr error) {
	e.Defaults()
	e.Store.Finished = e.finished
	run, err := e.Store.Begin(job)
	if err == nil {
		err = run.Finish(state.Failed, 2, fmt.Sprintf("not run: the config %s does not load: %v", file, loadErr), nil, nil)
	}
	if err != nil {
		e.logf("recording the broken config: %v", err)
	}
	e.Mail(ctx, alert.NotRun(alert.SubjectConfigBroken, layout.JobCLI(job),
		fmt.Sprintf("the config %s does not load:\n%v", file, loadErr),
		fmt.Sprintf("Nothing was done. Fix the file (borgkit config validate %s); the jobs run again at their next scheduled time.\n"+
			"This mail went to the address of the last config that loaded (%s).", file, e.Cfg.File), e.Now()))
}

// pings reports whether job reports to the ping check: only scheduled
// jobs, since a check expects its pings on a period. The Pi's unlock runs
// at boot and then stays quiet while the disk is open; its check would
// report it down a day after every boot.
func (e *Env) pings(job string) bool {
	if e.Pinger == nil {
		return false
	}
	_, scheduled := e.Host.Schedule(job)
	return scheduled
}

func (e *Env) writeTextfile() {
	if dir := e.Cfg.HostAlerts(e.Host).TextfileDir; dir != "" {
		if err := e.Store.WriteTextfile(dir); err != nil {
			e.logf("prometheus textfile: %v", err)
		}
	}
}

// reportTimeout bounds what a finished job reports besides its record: the
// ping and the textfile must not hold a job's exit for long.
// With the signal trap's mail (30s) and grace (10s) it stays inside the 90s
// systemd leaves between SIGTERM and SIGKILL.
const reportTimeout = 30 * time.Second

// finished reports a run's end to the ping check and the Prometheus
// textfile, when configured. Neither can fail the job: the record is on
// disk, and the stale check and the watchdog still see a silent host.
func (e *Env) finished(rec state.Record) {
	e.writeTextfile()
	if e.pings(rec.Job) {
		ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
		defer cancel()
		// The record's tail when the job kept one, else this run's log;
		// not after a signal, when the job may still be writing to it.
		tail := rec.LogTail
		if len(tail) == 0 && rec.Signal == "" {
			tail = state.Tail(e.logged())
		}
		body := strings.Join(append([]string{rec.Message}, tail...), "\n")
		if err := e.Pinger.Finish(ctx, rec.Job, rec.ExitCode, body); err != nil {
			e.logf("%v", err)
		}
	}
}

// errStandDown ends a job quietly: another run of it is in progress.
var errStandDown = errors.New("another run is in progress")

// IsStandDown tells the CLI that a job ended because another run of it was
// in progress, which is not a failure.
func IsStandDown(err error) bool { return errors.Is(err, errStandDown) }

// borg runs borg for a repo with its passphrase command, logging the
// command and its output, bounded by the host's timeout for its kind.
func (e *Env) borg(ctx context.Context, r *config.Repo, args ...string) (host.Result, error) {
	return e.borgIn(ctx, r, "", args...)
}

// borgIn is borg run in directory dir.
func (e *Env) borgIn(ctx context.Context, r *config.Repo, dir string, args ...string) (host.Result, error) {
	op := borgOp(args)
	limit := e.Host.BorgTimeout(op, r)
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c := borg.Cmd(e.borgEnv(r), args...)
	c.Dir = dir
	res, err := e.run(cctx, c)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		e.logf("borg %s of %s timed out after %s (timeouts.%s)", op, r.Name, limit, op)
		err = &timeoutError{op: op, limit: limit}
		if res.ExitCode <= 1 {
			res.ExitCode = 2 // killed: never borg's "warning"
		}
	}
	return res, err
}

// timeoutError is a borg run its timeout ended.
type timeoutError struct {
	op    string
	limit time.Duration
}

func (t *timeoutError) Error() string {
	return fmt.Sprintf("borg %s timed out after %s (raise timeouts.%s if it needs longer)", t.op, t.limit, t.op)
}

// borgOp is the kind of borg run args are, as config.Timeouts names it.
func borgOp(args []string) string {
	if len(args) == 0 {
		return ""
	}
	switch args[0] {
	case "check":
		if slices.Contains(args, "--verify-data") {
			return config.OpVerify
		}
		return config.OpCheck
	case "list", "info":
		return config.OpList
	}
	return args[0]
}

// run runs c, logging argv and output (never secrets: they are not in argv).
func (e *Env) run(ctx context.Context, c host.Cmd) (host.Result, error) {
	start := e.Now()
	res, err := e.Exec.Run(ctx, c)
	e.logf("%s -> exit %d (%s)", c, res.ExitCode, time.Since(start).Round(time.Millisecond))
	if len(res.Stderr) > 0 {
		e.lines.mu.Lock()
		e.Log.Write(indent(res.Stderr))
		e.lines.mu.Unlock()
	}
	return res, err
}

func indent(b []byte) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out.WriteString("    ")
		out.Write(sc.Bytes())
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// tailText keeps the last n lines of a program's output for a mail.
func tailText(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// exitCode is a failed command's status, 1 when it has none.
func exitCode(res host.Result, err error) int {
	if res.ExitCode > 0 {
		return res.ExitCode
	}
	if err != nil {
		return 1
	}
	return 0
}
