package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/testing/smtpsink"
)

// These tests are in package jobs, not jobs_test, to reach the key fetch
// and the mount table parser; their helpers start with "pi" so they cannot
// clash with the server jobs' tests.

const piMsmtp = "/usr/bin/msmtp"

func piNeedMsmtp(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(piMsmtp); err != nil {
		if os.Getenv("BORGKIT_REQUIRE_MSMTP") != "" {
			t.Fatalf("msmtp required: %v", err)
		}
		t.Skipf("msmtp: %v", err)
	}
}

// piConfig is the example site: john-ai mirrors to pi, whose LUKS disk is
// unlocked from john-ai and whose alerts go out as [WATCHDOG].
func piConfig(t *testing.T) (*config.Config, *config.Host) {
	t.Helper()
	cfg, err := config.Parse("borgkit.yaml", config.Example())
	if err != nil {
		t.Fatal(err)
	}
	pi, ok := cfg.Host("pi")
	if !ok {
		t.Fatal("example config has no pi")
	}
	return cfg, pi
}

// piMountTable writes a mountinfo naming each of points as mounted.
func piMountTable(t *testing.T, points map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/root rw\n")
	id := 100
	for point, source := range points {
		// A space in a path is escaped as the kernel does.
		b.WriteString(strings.Join([]string{strconv.Itoa(id), "22", "253:7", "/", strings.ReplaceAll(point, " ", `\040`),
			"rw,relatime", "shared:5", "-", "ext4", source, "rw"}, " ") + "\n")
		id++
	}
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var piNow = time.Date(2026, 6, 12, 6, 0, 0, 0, time.Local)

type piWatchLab struct {
	env   *OffsiteEnv
	sink  *smtpsink.Sink
	mount string
	log   *bytes.Buffer
}

// newPiWatchLab gives pi a temporary directory as its backup mount, listed
// in a mount table of its own (a temporary directory is no mountpoint), and
// mails through the real msmtp into a sink.
func newPiWatchLab(t *testing.T) *piWatchLab {
	t.Helper()
	piNeedMsmtp(t)
	cfg, pi := piConfig(t)
	l := &piWatchLab{sink: smtpsink.Start(t), mount: filepath.Join(t.TempDir(), "backup mnt"), log: &bytes.Buffer{}}
	if err := os.MkdirAll(filepath.Join(layout.MirrorRoot(l.mount), layout.HeartbeatDir), 0o755); err != nil {
		t.Fatal(err)
	}
	pi.BackupDisk().Mountpoint = l.mount
	// The real statfs of the temporary directory: if the machine running the
	// tests is itself past pi's threshold, move the threshold out of the way
	// so only the heartbeat is judged.
	if u, err := Statfs(l.mount); err != nil {
		t.Fatal(err)
	} else if u.Percent >= pi.DiskWarnPercent() {
		t.Logf("the test machine's disk is %d%% full; raising pi's threshold to 100", u.Percent)
		pi.Thresholds.DiskWarnPercent = 100
	}
	m := alert.ForHost(cfg, pi)
	m.Sendmail = []string{piMsmtp, "-C", l.sink.MsmtpConfig(t), "--read-envelope-from", "-t"}
	now := func() time.Time { return piNow }
	l.env = &OffsiteEnv{
		Env:       Env{Cfg: cfg, Host: pi, Mailer: m, Log: l.log, Now: now, Store: &state.Store{Dir: t.TempDir(), Host: "pi", Now: now}},
		MountInfo: piMountTable(t, map[string]string{l.mount: "/dev/mapper/backup"}),
	}
	return l
}

func (l *piWatchLab) heartbeat(t *testing.T, content string, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(layout.MirrorRoot(l.mount), layout.HeartbeatDir, layout.HeartbeatName("john-ai"))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

// mails waits for n mails and checks no more arrive.
func (l *piWatchLab) mails(t *testing.T, n int) []smtpsink.Message {
	t.Helper()
	got, err := l.sink.WaitFor(n, 10*time.Second)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log)
	}
	// Send returns after msmtp delivered, and Watchdog after Send: a
	// surplus mail would already be here.
	if len(got) != n {
		for _, m := range got {
			t.Logf("mail: %s\n%s", m.Subject, m.Body)
		}
		t.Fatalf("%d mails, want %d\nlog:\n%s", len(got), n, l.log)
	}
	return got
}

func (l *piWatchLab) record(t *testing.T) (*state.Record, state.WatchdogStats) {
	t.Helper()
	rec, err := l.env.Store.Load(layout.JobWatchdog)
	if err != nil {
		t.Fatal(err)
	}
	var st state.WatchdogStats
	if err := json.Unmarshal(rec.Stats, &st); err != nil {
		t.Fatalf("stats %s: %v", rec.Stats, err)
	}
	return rec, st
}

func piWantMail(t *testing.T, m smtpsink.Message, subject string, body ...string) {
	t.Helper()
	if m.Subject != subject {
		t.Errorf("subject %q, want %q", m.Subject, subject)
	}
	if from := m.Header.Get("From"); from != "offsite-backup <me@example.com>" {
		t.Errorf("From %q: the watchdog mails from the Pi's own mail path", from)
	}
	for _, s := range body {
		if !strings.Contains(m.Body, s) {
			t.Errorf("body lacks %q:\n%s", s, m.Body)
		}
	}
}

func TestWatchdogFreshHeartbeatSendsNoMail(t *testing.T) {
	l := newPiWatchLab(t)
	at := piNow.Add(-4 * time.Hour)
	l.heartbeat(t, at.UTC().Format(time.RFC3339)+"\n", piNow.Add(-100*time.Hour))
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	l.mails(t, 0)
	rec, st := l.record(t)
	if rec.Status != state.OK || rec.ExitCode != 0 {
		t.Errorf("record %s %d: %s", rec.Status, rec.ExitCode, rec.Message)
	}
	// The time in the file wins over the mtime (100h ago, which is stale).
	if len(st.Heartbeats) != 1 || st.Heartbeats[0].Host != "john-ai" || !st.Heartbeats[0].At.Equal(at) {
		t.Errorf("heartbeats %+v", st.Heartbeats)
	}
	if !st.Disk.Mounted || st.Disk.Size == 0 || st.Disk.Mount != l.mount {
		t.Errorf("disk %+v", st.Disk)
	}
}

func TestWatchdogStaleHeartbeat(t *testing.T) {
	l := newPiWatchLab(t)
	file := l.heartbeat(t, piNow.Add(-35*time.Hour).UTC().Format(time.RFC3339)+"\n", piNow)
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(t, 1)[0]
	piWantMail(t, m, "[WATCHDOG] john-ai heartbeat STALE",
		"=== john-ai HEARTBEAT STALE ===\r\n",
		"Last heartbeat: 35h ago (threshold: 30h)\r\n",
		"Heartbeat file: "+file+"\r\n",
		"john-ai has not reported a successful backup in over 30 hours.")
	rec, _ := l.record(t)
	if rec.Status != state.Warning || !strings.Contains(rec.Message, "john-ai heartbeat stale (35h)") {
		t.Errorf("record %s: %s", rec.Status, rec.Message)
	}

	// Still stale an hour later: mailed again, every run while it lasts.
	l.sink.Reset()
	l.env.Now = func() time.Time { return piNow.Add(time.Hour) }
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	piWantMail(t, l.mails(t, 1)[0], "[WATCHDOG] john-ai heartbeat STALE", "Last heartbeat: 36h ago (threshold: 30h)")
}

func TestWatchdogHeartbeatFallsBackToMtime(t *testing.T) {
	l := newPiWatchLab(t)
	l.heartbeat(t, "ok\n", piNow.Add(-40*time.Hour))
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	piWantMail(t, l.mails(t, 1)[0], "[WATCHDOG] john-ai heartbeat STALE", "Last heartbeat: 40h ago (threshold: 30h)")
}

func TestWatchdogMissingHeartbeat(t *testing.T) {
	l := newPiWatchLab(t)
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	piWantMail(t, l.mails(t, 1)[0], "[WATCHDOG] john-ai heartbeat STALE",
		"Last heartbeat: none (threshold: 30h)", "the heartbeat file is missing")
	rec, st := l.record(t)
	if rec.Status != state.Warning || len(st.Heartbeats) != 1 || !st.Heartbeats[0].At.IsZero() {
		t.Errorf("record %s %+v", rec.Status, st)
	}
}

// TestWatchdogDiskFull is the one case with an injected statfs: the test
// cannot fill a real filesystem to 96% on every machine it runs on.
func TestWatchdogDiskFull(t *testing.T) {
	l := newPiWatchLab(t)
	l.heartbeat(t, piNow.Add(-time.Hour).UTC().Format(time.RFC3339)+"\n", piNow)
	l.env.Usage = func(path string) (state.DiskUsage, error) {
		if path != l.mount {
			t.Errorf("statfs of %s, want the backup mount", path)
		}
		const tib = 1 << 40
		return state.DiskUsage{Mount: path, Size: 4 * tib, Used: 4*tib - tib/6, Avail: tib / 6, Percent: 96}, nil
	}
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	piWantMail(t, l.mails(t, 1)[0], "[WATCHDOG] pi OFFSITE DISK SPACE WARNING",
		l.mount+" is 96% full (3.9T of 4.0T used)", "The offsite mirror of john-ai is running low on space")
	rec, st := l.record(t)
	if rec.Status != state.Warning || st.Disk.Percent != 96 || !st.Disk.Mounted {
		t.Errorf("record %s %+v", rec.Status, st.Disk)
	}
}

func TestWatchdogDiskNotMounted(t *testing.T) {
	l := newPiWatchLab(t)
	// The real mount table, where a temporary directory is no mountpoint.
	l.env.MountInfo = ""
	l.heartbeat(t, piNow.Add(-time.Hour).UTC().Format(time.RFC3339)+"\n", piNow)
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(t, 1)[0]
	piWantMail(t, m, "[WATCHDOG] pi BACKUP DISK NOT MOUNTED",
		"=== pi BACKUP DISK NOT MOUNTED ===\r\n",
		"Mountpoint: "+l.mount+"\r\n",
		"key fetched from john-ai", "journalctl -u borgkit-unlock.service")
	// What sits in an unmounted mountpoint says nothing about the mirror.
	if strings.Contains(m.Body, "HEARTBEAT") {
		t.Errorf("heartbeat judged on an unmounted disk:\n%s", m.Body)
	}
	rec, st := l.record(t)
	if rec.Status != state.Warning || st.Disk.Mounted || len(st.Heartbeats) != 0 {
		t.Errorf("record %s %+v", rec.Status, st)
	}
}

func TestWatchdogAbandonedAndRunning(t *testing.T) {
	l := newPiWatchLab(t)
	l.heartbeat(t, piNow.Add(-time.Hour).UTC().Format(time.RFC3339)+"\n", piNow)
	if _, err := l.env.Store.Begin(layout.JobWatchdog); err != nil {
		t.Fatal(err)
	}

	// The running record's process is alive: this run stands down quietly.
	l.env.Store.Alive = func(*state.Record) bool { return true }
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.env.Store.Load(layout.JobWatchdog); rec.Status != state.Running {
		t.Errorf("a standing-down run touched the record: %+v", rec)
	}
	l.mails(t, 0)

	// Its process is gone: reported, then this run goes ahead.
	l.env.Store.Alive = func(*state.Record) bool { return false }
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	piWantMail(t, l.mails(t, 1)[0], "[WATCHDOG] pi TERMINATED ABNORMALLY", "Job: watchdog (pid ")
	if rec, _ := l.record(t); rec.Status != state.OK {
		t.Errorf("record %+v", rec)
	}
}

func TestWatchdogNoBackupDisk(t *testing.T) {
	cfg, pi := piConfig(t)
	pi.Disks = nil
	env := &OffsiteEnv{Env: Env{Cfg: cfg, Host: pi, Store: &state.Store{Dir: t.TempDir()}, Mailer: &alert.Mailer{Sendmail: []string{"false"}}}}
	err := Watchdog(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "no backup disk") {
		t.Fatalf("err = %v", err)
	}
	if rec, _ := env.Store.Load(layout.JobWatchdog); rec == nil || rec.Status != state.Failed {
		t.Errorf("record %+v", rec)
	}
}

// TestPiFindMountReal reads this machine's own mount table: "/" is always
// mounted, a fresh temporary directory never is.
func TestPiFindMountReal(t *testing.T) {
	m, err := findMount(DefaultMountInfo, "/")
	if err != nil || m == nil {
		t.Fatalf("/ not mounted: %v %v", m, err)
	}
	if m, err := findMount(DefaultMountInfo, t.TempDir()); err != nil || m != nil {
		t.Fatalf("a temporary directory is mounted: %+v %v", m, err)
	}
	if _, err := findMount(filepath.Join(t.TempDir(), "nope"), "/"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing table: %v", err)
	}
}

func TestPiParseMountinfo(t *testing.T) {
	tests := []struct {
		line string
		want mountEntry
		ok   bool
	}{
		{"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
			mountEntry{Dev: "98:0", Point: "/mnt2", FSType: "ext3", Source: "/dev/root"}, true},
		// No optional fields, and two of them.
		{"40 22 253:0 / /mnt/backup rw,relatime - ext4 /dev/mapper/backup rw",
			mountEntry{Dev: "253:0", Point: "/mnt/backup", FSType: "ext4", Source: "/dev/mapper/backup"}, true},
		{"40 22 253:0 / /mnt/my\\040backup rw shared:1 master:2 - ext4 /dev/mapper/a\\134b rw",
			mountEntry{Dev: "253:0", Point: "/mnt/my backup", FSType: "ext4", Source: `/dev/mapper/a\b`}, true},
		{"garbage", mountEntry{}, false},
		{"1 2 3:4 / /x rw shared:1 -", mountEntry{}, false},
	}
	for _, tt := range tests {
		got, ok := parseMountinfo(tt.line)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%q = %+v %v, want %+v %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// TestWatchdogHeartbeatFromTheFuture: a heartbeat dated hours ahead of
// the Pi's clock cannot be judged fresh (it would keep the dead-man's
// switch quiet for those hours); a few seconds ahead, two NTP clocks
// apart, still is.
func TestWatchdogHeartbeatFromTheFuture(t *testing.T) {
	l := newPiWatchLab(t)
	l.heartbeat(t, piNow.Add(30*time.Second).UTC().Format(time.RFC3339)+"\n", piNow)
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	l.mails(t, 0)
	file := l.heartbeat(t, piNow.Add(6*time.Hour).UTC().Format(time.RFC3339)+"\n", piNow)
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(t, 1)[0]
	piWantMail(t, m, "[WATCHDOG] john-ai heartbeat STALE", "Last heartbeat: 6h in the future", "Heartbeat file: "+file, "one of the two clocks")
	if rec, _ := l.record(t); rec.Status != state.Warning || !strings.Contains(rec.Message, "in the future") {
		t.Errorf("record %s: %s", rec.Status, rec.Message)
	}
}

// TestWatchdogHeartbeatIsNotFollowedOrWaitedFor: the push key writes the
// heartbeat directory; a FIFO or a symlink in place of the heartbeat must
// neither hang the watchdog nor be read through.
func TestWatchdogHeartbeatIsNotFollowedOrWaitedFor(t *testing.T) {
	for _, plant := range []struct {
		name string
		make func(p string) error
	}{
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }},
		{"symlink", func(p string) error {
			target := filepath.Join(filepath.Dir(p), "elsewhere")
			os.WriteFile(target, []byte(piNow.Add(-time.Hour).UTC().Format(time.RFC3339)+"\n"), 0o644)
			return os.Symlink(target, p)
		}},
	} {
		t.Run(plant.name, func(t *testing.T) {
			l := newPiWatchLab(t)
			p := filepath.Join(layout.MirrorRoot(l.mount), layout.HeartbeatDir, layout.HeartbeatName("john-ai"))
			if err := plant.make(p); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- Watchdog(context.Background(), l.env) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the watchdog hangs on the heartbeat")
			}
			piWantMail(t, l.mails(t, 1)[0], "[WATCHDOG] john-ai heartbeat STALE", "Last heartbeat: none")
		})
	}
}

// TestWatchdogSnapshotOverdue: a push that arrived and that no snapshot
// holds after snapshot_max_lag mails, with what the snapshot job said; the
// snapshot that then keeps it silences the watchdog.
func TestWatchdogSnapshotOverdue(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the snapshot freezes files: needs root")
	}
	l := newPiWatchLab(t)
	// The heartbeat's ctime is the real clock's: the watchdog's runs 4h later.
	now := time.Now().Add(4*time.Hour + time.Minute)
	l.env.Now = func() time.Time { return now }
	l.env.Store.Now = l.env.Now
	l.env.RetentionFile = filepath.Join(t.TempDir(), "retention.json")
	l.heartbeat(t, now.Add(-4*time.Hour).UTC().Format(time.RFC3339)+"\n", now.Add(-4*time.Hour))
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	piWantMail(t, l.mails(t, 1)[0], "[WATCHDOG] pi OFFSITE SNAPSHOT OVERDUE",
		"Push from john-ai arrived: 4h ago (threshold: 3h)", "Newest snapshot: none", "Last snapshot run: none recorded")
	rec, st := l.record(t)
	if rec.Status != state.Warning || st.Snapshots == nil || !st.Snapshots.Overdue || len(st.Snapshots.Waiting) != 1 {
		t.Fatalf("record %s %+v", rec.Status, st.Snapshots)
	}
	if r := l.env.watchdogReport(rec.Status, rec.Message, st); !r.SnapshotOverdue {
		t.Errorf("the report to the server does not say so: %+v", r)
	}

	l.sink.Reset()
	if err := Snapshot(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	l.mails(t, 0)
	if _, st := l.record(t); st.Snapshots.Overdue || st.Snapshots.Count != 1 || st.Snapshots.Latest == "" {
		t.Fatalf("after the snapshot: %+v", st.Snapshots)
	}
}
