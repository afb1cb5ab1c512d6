package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/snapshot"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/templates"
)

// OffsiteEnv is what the offsite host's jobs (the watchdog and the boot-time
// unlock) run with. It is kept apart from the server jobs' Env until the two
// are folded together. Zero fields get the real system's defaults; the
// seams below them exist so tests can run the real ssh, cryptsetup and
// msmtp against temporary directories.
type OffsiteEnv struct {
	// Env is the part every job shares (config, host, store, mailer, log,
	// clock, program runner, statfs).
	Env

	// MountInfo is the kernel's mount table (default /proc/self/mountinfo).
	// Read directly rather than through findmnt: the unlock must work on a
	// Pi whose util-linux is older or missing, and a test can hand it a
	// table naming a temporary directory.
	MountInfo string

	// KnownHosts pins the unlock server's host key (default layout.UnlockKnownHosts).
	KnownHosts string
	// MapperDir is where open LUKS containers appear (default /dev/mapper).
	MapperDir string
	// Backoff are the waits between tries of the key fetch within one run
	// (default 5s, 15s: three tries). The timer starts the next run.
	Backoff []time.Duration
	// FetchTimeout bounds one try of the key fetch (default 60s).
	FetchTimeout time.Duration
	// ReportIdentity is the key the watchdog reports to the server with
	// (default layout.ReportIdentity).
	ReportIdentity string
	// RetentionFile is this host's record of the snapshot retention it
	// keeps (default layout.SnapshotRetentionFile).
	RetentionFile string
	// SnapshotLockWait bounds a snapshot's wait for a push to end (default
	// snapshot.DefaultLockWait).
	SnapshotLockWait time.Duration
	// TestOpenOnly makes the open step `cryptsetup open --test-passphrase`
	// and skips the mount: it proves the fetched key opens the disk where
	// there is no device-mapper (tests). Real runs leave it false.
	TestOpenOnly bool
}

// Defaults of the offsite jobs.
const (
	DefaultMountInfo    = "/proc/self/mountinfo"
	DefaultMapperDir    = "/dev/mapper"
	DefaultFetchTimeout = 60 * time.Second
)

// defaultBackoff is three tries in about 20s plus the tries themselves,
// well inside the unlock service's 5 minute start timeout.
var defaultBackoff = []time.Duration{5 * time.Second, 15 * time.Second}

// resolved is a copy of env with every default filled in, so a caller's
// OffsiteEnv is never modified and can be reused.
func (env *OffsiteEnv) resolved() (*OffsiteEnv, error) {
	if env == nil || env.Cfg == nil || env.Host == nil {
		return nil, errors.New("offsite job: no config or host")
	}
	e := *env
	e.lines, e.prefix = nil, ""
	e.Env.Defaults()
	if e.MountInfo == "" {
		e.MountInfo = DefaultMountInfo
	}
	if e.KnownHosts == "" {
		e.KnownHosts = layout.UnlockKnownHosts
	}
	if e.MapperDir == "" {
		e.MapperDir = DefaultMapperDir
	}
	if e.Backoff == nil {
		e.Backoff = defaultBackoff
	}
	if e.FetchTimeout <= 0 {
		e.FetchTimeout = DefaultFetchTimeout
	}
	if e.ReportIdentity == "" {
		e.ReportIdentity = layout.ReportIdentity
	}
	if e.RetentionFile == "" {
		e.RetentionFile = layout.SnapshotRetentionFile
	}
	return &e, nil
}

// SubjectDiskNotMounted is the watchdog's mail when the offsite backup disk
// is not mounted; alert has no message for it because only the offsite host
// can notice.
const SubjectDiskNotMounted = "BACKUP DISK NOT MOUNTED"

// OffsiteDiskNotMounted is that mail, in the seed's style. host is the
// offsite host, d its backup disk, server the unlock server ("" for a disk
// without LUKS), sources the servers whose mirrors land on it.
func OffsiteDiskNotMounted(host string, d *config.Disk, server string, sources []string, at time.Time) alert.Message {
	var b strings.Builder
	fmt.Fprintf(&b, "=== %s %s ===\n", host, SubjectDiskNotMounted)
	fmt.Fprintf(&b, "Mountpoint: %s\n", d.Mountpoint)
	if d.Device != "" {
		fmt.Fprintf(&b, "Device: %s\n", d.Device)
	}
	if !at.IsZero() {
		fmt.Fprintf(&b, "Timestamp: %s\n", at.Format(alert.TimestampLayout))
	}
	who := "the server"
	if len(sources) > 0 {
		who = strings.Join(sources, ", ")
	}
	fmt.Fprintf(&b, "\n%s is not mounted: the offsite mirror of %s cannot be\n", d.Mountpoint, who)
	b.WriteString("updated, and its heartbeat cannot be checked.\n")
	if d.LUKS != nil && server != "" {
		fmt.Fprintf(&b, "The disk is opened with a key fetched from %s; borgkit-unlock.timer\n", server)
		b.WriteString("retries every few minutes, so the unlock has been failing: the disk\n")
		fmt.Fprintf(&b, "unplugged, %s unreachable, or this host's unlock revoked.\n", server)
		fmt.Fprintf(&b, "Check: journalctl -u borgkit-unlock.service, or run: borgkit job unlock\n")
	} else {
		b.WriteString("Check that the disk is plugged in, then mount it.\n")
	}
	return alert.Message{Subject: SubjectDiskNotMounted, Text: b.String()}
}

// Watchdog is the offsite host's dead-man's switch, run hourly: it mails
// when a server that mirrors here has not left a fresh heartbeat, when the
// backup disk passes its fill threshold, and when the disk is not mounted
// at all. It mails on every run while a problem lasts: silence means
// healthy, so a state change is not what it reports.
func Watchdog(ctx context.Context, env *OffsiteEnv) error {
	e, err := env.resolved()
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	return e.record(ctx, layout.JobWatchdog, func(ctx context.Context) (state.Status, int, string, any, error) {
		status, code, msg, stats, werr := e.watch(ctx)
		// After the checks, so a slow server cannot delay an alert.
		stats.Report = e.sendReport(ctx, e.watchdogReport(status, msg, stats))
		e.logf("report: %s", stats.Report)
		return status, code, msg, stats, werr
	})
}

// watchdogReport is what this run tells the server.
func (e *OffsiteEnv) watchdogReport(status state.Status, msg string, stats state.WatchdogStats) state.WatchdogReport {
	r := state.WatchdogReport{Version: watchdogReportVersion, Host: e.Host.Name, Sent: e.Now().UTC(), Status: status,
		Message: clip(msg, maxReportMessage), MailError: clip(e.mailFailure(), maxReportMessage),
		DiskMounted: stats.Disk.Mounted, DiskPercent: min(max(stats.Disk.Percent, 0), 100)}
	if sw := stats.Snapshots; sw != nil {
		r.Snapshots, r.LatestSnapshot, r.SnapshotOverdue = sw.Count, sw.Latest, sw.Overdue
	}
	return r
}

// clip shortens s to at most n bytes of whole runes, control characters
// made spaces: the server refuses anything else.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// record runs fn as one recorded run of an offsite job: the record begun
// (standing down while another run of the job is alive), fn's outcome
// finished into it with this run's log as its tail.
func (e *OffsiteEnv) record(ctx context.Context, job string, fn func(ctx context.Context) (state.Status, int, string, any, error)) error {
	run, ctx, stop, err := e.Begin(ctx, job)
	if IsStandDown(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer stop()
	status, code, msg, stats, jerr := fn(ctx)
	if ferr := run.Finish(status, code, msg, stats, e.logged()); ferr != nil && !errors.Is(ferr, state.ErrFinished) {
		jerr = errors.Join(jerr, ferr)
	}
	return jerr
}

// statsAny passes a job's outcome on with its typed stats as any.
func statsAny[S any](status state.Status, code int, msg string, stats S, err error) (state.Status, int, string, any, error) {
	return status, code, msg, stats, err
}

// watch does the watchdog's work; findings it mailed make a warning, a
// check it could not make a failure.
func (e *OffsiteEnv) watch(ctx context.Context) (state.Status, int, string, state.WatchdogStats, error) {
	var stats state.WatchdogStats
	d := e.Host.BackupDisk()
	if d == nil {
		err := fmt.Errorf("watchdog: host %s has no backup disk in %s (mark one backup: true)", e.Host.Name, e.Cfg.File)
		e.logf("%v", err)
		return state.Failed, 1, err.Error(), stats, err
	}
	stats.Disk = state.DiskUsage{Mount: d.Mountpoint}
	sources := e.mirrorSources()
	server := ""
	if e.Host.Unlock != nil {
		server = e.Host.Unlock.Server
	}

	mnt, err := findMount(e.MountInfo, d.Mountpoint)
	if err != nil {
		err = fmt.Errorf("watchdog: %w", err)
		e.logf("%v", err)
		return state.Failed, 1, err.Error(), stats, err
	}
	if mnt == nil {
		e.logf("%s is not mounted", d.Mountpoint)
		e.Mail(ctx, OffsiteDiskNotMounted(e.Host.Name, d, server, sources, e.Now()))
		return state.Warning, 0, d.Mountpoint + " is not mounted", stats, nil
	}
	stats.Disk.Mounted = true

	var findings []string
	// A check that could not be made fails the run, after the others ran:
	// a statfs error must not silence the heartbeat check.
	var failed error
	u, err := e.Usage(d.Mountpoint)
	if err != nil {
		failed = fmt.Errorf("watchdog: %w", err)
		e.logf("%v", failed)
		findings = append(findings, failed.Error())
	} else {
		u.Mount, u.Mounted = d.Mountpoint, true
		stats.Disk = u
		limit := e.Host.DiskWarnPercent()
		e.logf("%s is %d%% full (warn at %d%%)", d.Mountpoint, u.Percent, limit)
		if u.Percent >= limit {
			src := strings.Join(sources, ", ")
			if src == "" {
				src = "the server"
			}
			msg := alert.OffsiteDiskWarning(d.Mountpoint, u.Percent, u.Used, u.Size, src)
			msg.Text += e.snapshotSpace()
			e.Mail(ctx, msg)
			findings = append(findings, fmt.Sprintf("%s %d%% full", d.Mountpoint, u.Percent))
		}
	}

	threshold := e.Host.Thresholds.HeartbeatMaxAgeOrDefault()
	now := e.Now()
	mirror := e.Host.MirrorRootOrDefault()
	dir := filepath.Join(mirror, layout.HeartbeatDir)
	// Read without following a symlink or blocking on a FIFO: the push
	// key writes this directory.
	hbs, err := snapshot.ReadHeartbeats(mirror)
	if err != nil {
		e.logf("heartbeats: %v", err)
	}
	byServer := map[string]snapshot.Heartbeat{}
	for _, hb := range hbs {
		byServer[hb.Server] = hb
	}
	seen := map[string]bool{}
	for _, src := range sources {
		seen[src] = true
		file := filepath.Join(dir, layout.HeartbeatName(src))
		hb, ok := byServer[src]
		var at time.Time
		switch {
		case !ok && err == nil:
			err := fmt.Errorf("%s: no such file", file)
			e.logf("heartbeat of %s: %v", src, err)
		case !ok:
		case hb.Err != nil:
			e.logf("heartbeat of %s: %v", src, hb.Err)
		default:
			at = hb.At()
		}
		stats.Heartbeats = append(stats.Heartbeats, state.Heartbeat{Host: src, File: file, At: at})
		age := now.Sub(at)
		switch {
		case at.IsZero():
			age = -1 // HeartbeatStale's "missing"
		case age < -alert.ClockSkew:
			// A clock wrong by more than NTP allows: its age is unknown.
			e.logf("heartbeat of %s is %s in the future: a clock is wrong", src, (-age).Round(time.Second))
			e.Mail(ctx, alert.HeartbeatFuture(src, -age, file))
			findings = append(findings, fmt.Sprintf("%s heartbeat %s in the future", src, alert.Age(-age)))
			continue
		case age < 0:
			// Within the skew two NTP clocks may have: fresh.
			e.logf("heartbeat of %s is %s in the future (clock skew); counted as fresh", src, (-age).Round(time.Second))
			continue
		case age <= threshold:
			e.logf("heartbeat of %s: %s ago, fresh (threshold %s)", src, alert.Age(age), alert.Limit(threshold))
			continue
		default:
			e.logf("heartbeat of %s: %s ago, STALE (threshold %s)", src, alert.Age(age), alert.Limit(threshold))
		}
		e.Mail(ctx, alert.HeartbeatStale(src, age, threshold, file))
		if age < 0 {
			findings = append(findings, src+" heartbeat missing")
		} else {
			findings = append(findings, fmt.Sprintf("%s heartbeat stale (%s)", src, alert.Age(age)))
		}
	}
	// Heartbeats of servers the config no longer mirrors here are recorded,
	// not alerted on: a renamed server should not page anyone hourly.
	for _, hb := range hbs {
		if seen[hb.Server] || hb.Err != nil {
			continue
		}
		e.logf("heartbeat of %s (%s ago) ignored: no server of the config mirrors to %s as %s", hb.Server, alert.Age(now.Sub(hb.At())), e.Host.Name, hb.Server)
		stats.Heartbeats = append(stats.Heartbeats, state.Heartbeat{Host: hb.Server, File: filepath.Join(dir, hb.Name), At: hb.At()})
	}
	sw, serr := e.watchSnapshots(ctx, d, now)
	stats.Snapshots = sw
	switch {
	case serr != nil:
		failed = errors.Join(failed, serr)
		findings = append(findings, serr.Error())
	case sw.Overdue:
		findings = append(findings, "snapshot overdue")
	}
	if len(sources) == 0 {
		e.logf("no server in the config mirrors to %s: no heartbeat to watch", e.Host.Name)
	}

	if failed != nil {
		return state.Failed, 1, strings.Join(findings, "; "), stats, failed
	}
	if len(findings) > 0 {
		return state.Warning, 0, strings.Join(findings, "; "), stats, nil
	}
	return state.OK, 0, "heartbeats fresh, snapshots current, " + fmt.Sprintf("%s %d%% full", d.Mountpoint, stats.Disk.Percent), stats, nil
}

// mirrorSources are the servers whose mirrors target this host, in config
// order: the ones that owe it a heartbeat.
func (e *OffsiteEnv) mirrorSources() []string {
	var out []string
	for i := range e.Cfg.Hosts {
		h := &e.Cfg.Hosts[i]
		for _, m := range h.Mirrors {
			if m.Host == e.Host.Name {
				out = append(out, h.Name)
				break
			}
		}
	}
	return out
}

// mountEntry is one line of the mount table.
type mountEntry struct {
	Dev    string // major:minor of the mounted filesystem
	Point  string
	FSType string
	Source string
}

// findMount reads the mount table at path (a /proc/PID/mountinfo) and
// returns what is mounted exactly at mountpoint, nil when nothing is.
// The last line wins: a later mount hides an earlier one at the same place.
func findMount(path, mountpoint string) (*mountEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mount table: %w", err)
	}
	defer f.Close()
	want := filepath.Clean(mountpoint)
	var found *mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, ok := parseMountinfo(sc.Text())
		if ok && m.Point == want {
			found = &m
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mount table %s: %w", path, err)
	}
	return found, nil
}

// parseMountinfo parses one line of proc(5)'s mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// The optional fields before "-" vary in number, so the fields after it are
// found by the separator, not by position.
func parseMountinfo(line string) (mountEntry, bool) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(f) {
		return mountEntry{}, false
	}
	return mountEntry{
		Dev:    f[2],
		Point:  filepath.Clean(templates.FstabUnescape(f[4])),
		FSType: f[sep+1],
		Source: templates.FstabUnescape(f[sep+2]),
	}, true
}

// MountedAt reports whether something is mounted exactly at mountpoint,
// from this process's mount table: no program is started, so the
// dashboard can ask for every mount in microseconds.
func MountedAt(mountpoint string) bool {
	m, err := findMount(DefaultMountInfo, mountpoint)
	return err == nil && m != nil
}
