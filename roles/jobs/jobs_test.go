package jobs_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/recovery/fingerprint"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/status"
)

func TestNightlySuccessSendsNoMail(t *testing.T) {
	l := newLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	l.mails(0)
	rec, err := l.env.Store.Load("nightly")
	if err != nil || rec.Status != state.OK {
		t.Fatalf("%v %+v", err, rec)
	}
	var st state.NightlyStats
	json.Unmarshal(rec.Stats, &st)
	if len(st.Repos) != 1 || st.Repos[0].Archives != 1 || st.Repos[0].OriginalSize == 0 || !strings.HasPrefix(st.Repos[0].Archive, "nightly-") {
		t.Fatalf("stats %+v", st)
	}
	if st.Disk.UUID != backupUUID || st.Disk.Size == 0 {
		t.Fatalf("disk %+v", st.Disk)
	}
	if n := l.archives("system"); n != 1 {
		t.Fatalf("%d archives", n)
	}
}

func TestNightlyFailedSection(t *testing.T) {
	l := newLab(t, labOptions{extraRepo: true})
	if err := jobs.Nightly(ctx(), l.env); err == nil {
		t.Fatal("nightly succeeded with a broken repo")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP FAILED", "=== NIGHTLY BACKUP FAILED ===",
		"--- Backup: system ---\n  Status: OK (", "--- Backup: broken ---\n  Status: FAILED (exit code 1)", "holds no borg repository")
	if n := l.archives("system"); n != 1 {
		t.Fatalf("the good repo was not backed up: %d archives", n)
	}
}

func TestNightlyAbortsWithoutBackupDiskAndPrunesNothing(t *testing.T) {
	l := newLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	sh(t, "umount", l.mnt)
	if err := jobs.Nightly(ctx(), l.env); err == nil {
		t.Fatal("nightly ran without its disk")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP ABORTED", "is not mounted at "+l.mnt)
	if entries, _ := os.ReadDir(l.mnt); len(entries) != 0 {
		t.Fatalf("the job wrote into the empty mountpoint: %v", entries)
	}
	mountDisk(t, l.backup, l.mnt)
	if n := l.archives("system"); n != 1 {
		t.Fatalf("archive count changed: %d", n)
	}
	if rec, _ := l.env.Store.Load("nightly"); rec.Status != state.Aborted {
		t.Fatalf("record %s", rec.Status)
	}
}

func TestNightlyRefusesEmptySourceMountpoint(t *testing.T) {
	l := newLab(t, labOptions{})
	sh(t, "umount", l.home)
	if err := jobs.Nightly(ctx(), l.env); err == nil {
		t.Fatal("nightly backed up an empty mountpoint")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP ABORTED", l.home+" is not mounted: refusing to back up an empty mountpoint")
	if n := l.archives("system"); n != 0 {
		t.Fatalf("%d archives", n)
	}
}

func TestDiskSpaceWarning(t *testing.T) {
	l := newLab(t, labOptions{})
	u, _ := jobs.Statfs(l.mnt)
	// df's Use% is used/(used+avail); leave borg the rest to work in.
	fill := int64(u.Used+u.Avail)*91/100 - int64(u.Used)
	sh(t, "fallocate", "-l", itoa(fill), filepath.Join(l.mnt, "filler"))
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai DISK SPACE WARNING", "=== DISK SPACE WARNING ===", l.mnt+" is 9")
}

func TestStalenessAlert(t *testing.T) {
	l := newLab(t, labOptions{})
	past := time.Now().Add(-34 * time.Hour)
	l.env.Store.Now = func() time.Time { return past }
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	l.env.Store.Now = nil
	if err := jobs.Stale(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai STALENESS ALERT", "Nightly backup age: 34h (threshold: 30h)")
}

func TestCheckFindsCorruptSegment(t *testing.T) {
	l := newLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Check(ctx(), l.env, false); err != nil {
		t.Fatalf("check of a good repo: %v", err)
	}
	l.mails(0)
	// Flip bytes in the middle of the largest segment.
	var seg string
	var size int64
	filepath.Walk(filepath.Join(l.mnt, "system/data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			seg, size = p, fi.Size()
		}
		return nil
	})
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("CORRUPTCORRUPT"), size/2)
	f.Close()
	if err := jobs.Check(ctx(), l.env, false); err == nil {
		t.Fatal("check passed a corrupt segment")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai INTEGRITY CHECK FAILED", "Check: borg check --repository-only", "Status: FAILED")
}

func TestRestoreTest(t *testing.T) {
	l := newLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	if err := jobs.RestoreTest(ctx(), l.env); err != nil {
		t.Fatalf("restore test of an intact archive: %v", err)
	}
	l.mails(0)
	os.WriteFile(filepath.Join(l.home, "canary.txt"), []byte("a different song\n"), 0o644)
	if err := jobs.RestoreTest(ctx(), l.env); err == nil {
		t.Fatal("restore test passed a mismatch")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai RESTORE TEST FAILED", "canary.txt", "differs from the live file")
}

// TestRestoreTestSamplesByBorgsRoundedMtime: without a canary the test
// samples files whose mtime borg recorded. borg shows mtimes rounded to the
// microsecond; a file whose nanoseconds round up must still count as
// unchanged, or a small repo has nothing to sample and the test fails.
func TestRestoreTestSamplesByBorgsRoundedMtime(t *testing.T) {
	l := newLab(t, labOptions{})
	l.env.Cfg.Hosts[0].Repos[0].Canary = ""
	entries, _ := os.ReadDir(l.home)
	for i, e := range entries {
		// ….999999700: borg shows the next second's .000000.
		at := time.Date(2026, 6, 1, 10, 0, i, 999999700, time.Local)
		if err := os.Chtimes(filepath.Join(l.home, e.Name()), at, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	if err := jobs.RestoreTest(ctx(), l.env); err != nil {
		t.Fatalf("restore test found nothing to sample: %v\n%s", err, l.log.String())
	}
	rec, _ := l.env.Store.Load("restore_test")
	var st state.RestoreStats
	json.Unmarshal(rec.Stats, &st)
	if len(st.Files) == 0 {
		t.Fatalf("no file sampled: %+v", rec)
	}
	l.mails(0)
}

func TestSyncRefusesUnmountedSource(t *testing.T) {
	l := newLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("sync: %v", err)
	}
	l.mails(0)
	mirrored := filepath.Join(l.nas, "backups/system/config")
	if _, err := os.Stat(mirrored); err != nil {
		t.Fatalf("NAS mirror missing: %v", err)
	}
	before := sh(t, "find", l.nas, "-printf", "%p %s %T@\n")
	sh(t, "umount", l.mnt)
	if err := jobs.Sync(ctx(), l.env); err == nil {
		t.Fatal("sync ran from an unmounted source")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai OFFSITE SYNC FAILED", "refused", "is not mounted")
	if after := sh(t, "find", l.nas, "-printf", "%p %s %T@\n"); after != before {
		t.Fatalf("the mirror changed:\nbefore\n%s\nafter\n%s", before, after)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestKilledNightlyIsReported kills a real `borgkit job nightly` with its
// borg mid-create (what an OOM kill or a power cut does), then checks that
// the next run reports it and that the repository is still sound.
func TestKilledNightlyIsReported(t *testing.T) {
	l := newLab(t, labOptions{})
	// Enough data that borg create is still running when we kill it.
	big := filepath.Join(l.home, "big")
	sh(t, "dd", "if=/dev/urandom", "of="+big, "bs=1M", "count=24", "status=none")
	bin := filepath.Join(t.TempDir(), "borgkit")
	sh(t, "go", "build", "-o", bin, "github.com/borgkit/borgkit/cmd/borgkit")
	c := exec.Command(bin, "--config", l.cfgPath, "job", "nightly", "--host", "john-ai",
		"--state-dir", l.env.Store.Dir, "--lock", l.env.LockPath, "--log-dir", l.dir)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var borg int
	for borg == 0 {
		if time.Now().After(deadline) {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			t.Fatal("borg create never started")
		}
		time.Sleep(5 * time.Millisecond)
		borg = borgRunning(l.mnt)
	}
	// Power loss: borgkit and its borg, which runs in its own process group.
	syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	syscall.Kill(-borg, syscall.SIGKILL)
	syscall.Kill(borg, syscall.SIGKILL)
	c.Wait()
	rec, _ := l.env.Store.Load("nightly")
	if rec == nil || rec.Status != state.Running {
		t.Fatalf("record after the kill: %+v", rec)
	}
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatalf("nightly after the kill: %v", err)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai TERMINATED ABNORMALLY", "nightly")
	// The killed create left no archive; the new run made the only one.
	if n := l.archives("system"); n != 1 {
		t.Fatalf("%d archives after the kill and a new run", n)
	}
	c2 := exec.Command("borg", "check", filepath.Join(l.mnt, "system"))
	c2.Env = append(os.Environ(), l.borgEnv()...)
	if out, err := c2.CombinedOutput(); err != nil {
		t.Fatalf("borg check after the kill: %v\n%s", err, out)
	}
}

// borgRunning finds the pid of a borg create writing under mnt.
func borgRunning(mnt string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		s := string(b)
		if strings.Contains(s, "create") && strings.Contains(s, mnt) && strings.Contains(s, "borg") && !strings.Contains(s, "job") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}

func TestStatusAndSummaryFromARealNight(t *testing.T) {
	l := newLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	d, err := status.Live(l.env)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := d.Text(&text, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Archives: 1 | Last backup: 0m", l.mnt + "): MOUNTED", "Status: Synced 0m ago"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("dashboard lacks %q:\n%s", want, text.String())
		}
	}
	if err := status.Summary(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(1)
	if !strings.HasPrefix(m[0].Subject, "[BACKUP] john-ai Weekly Summary") {
		t.Fatalf("subject %q", m[0].Subject)
	}
	if p, ok := m[0].Part("text/html"); !ok || !strings.Contains(p.Body, "system") {
		t.Fatalf("no HTML part naming the repo")
	}
}

// An exclude that starts with "-" was passed as "--exclude -x", two
// arguments, and borg read the pattern as an option: every nightly failed.
func TestNightlyExcludesThatLookLikeOptions(t *testing.T) {
	l := newLab(t, labOptions{excludes: []string{"'-weird'", "'--stats'", "'*/doc00.txt'"}})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatalf("nightly: %v\n%s", err, l.log.String())
	}
	l.mails(0)
	run := func(args ...string) string {
		c := exec.Command("borg", args...)
		c.Env = append(host.Environ(borg.Inherited...), borg.OnHost(host.NewLocal("t"), filepath.Join(l.dir, "keys/system.pass")).Vars()...)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("borg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	repo := filepath.Join(l.mnt, "system")
	out := run("list", "--format", "{path}{NL}", repo+"::"+strings.TrimSpace(run("list", "--short", "--last", "1", repo)))
	if strings.Contains(out, "doc00.txt") || !strings.Contains(out, "doc01.txt") {
		t.Fatalf("the excludes were not applied as patterns:\n%s", out)
	}
}

// TestStaleWatchesTheOffsiteWatchdog: the server alerts when its offsite
// host's watchdog has not reported within watchdog_max_age (a dead Pi), or
// reports that its own mail fails; a fresh report from a Pi that mails is
// fine, and a revoked Pi is no longer watched.
func TestStaleWatchesTheOffsiteWatchdog(t *testing.T) {
	l := newLab(t, labOptions{offsite: "ssh"})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	l.env.RevokedDir = t.TempDir()
	// The sync is not what this test is about: make it fresh.
	if run, err := l.env.Store.Begin("sync"); err == nil {
		run.Finish(state.OK, 0, "all mirrors up to date", nil, nil)
	}
	stale := func() []string {
		t.Helper()
		l.sink.Reset()
		if err := jobs.Stale(ctx(), l.env); err != nil {
			t.Fatal(err)
		}
		var bodies []string
		for _, m := range l.sink.Messages() {
			bodies = append(bodies, m.Subject+"\n"+m.Body)
		}
		return bodies
	}
	m := stale()
	if len(m) != 1 || !strings.Contains(m[0], "Offsite watchdog of pi age: never") || !strings.Contains(m[0], "The report of pi's watchdog has never completed") {
		t.Fatalf("no report ever: %q", m)
	}
	report := state.WatchdogReport{Version: 1, Host: "pi", Sent: time.Now(), Received: time.Now().Add(-4 * time.Hour), Status: state.OK}
	l.env.Store.SaveWatchdogReport(report)
	if m := stale(); len(m) != 1 || !strings.Contains(m[0], "Offsite watchdog of pi age: 4h (threshold: 3h)") || !strings.Contains(m[0], "pi is down") {
		t.Fatalf("silent for 4h: %q", m)
	}
	report.Received = time.Now().Add(-20 * time.Minute)
	l.env.Store.SaveWatchdogReport(report)
	if m := stale(); len(m) != 0 {
		t.Fatalf("fresh report: %q", m)
	}
	report.MailError = `sending "[WATCHDOG] john-ai heartbeat STALE": msmtp: cannot connect to smtp.example.com`
	l.env.Store.SaveWatchdogReport(report)
	if m := stale(); len(m) != 1 || !strings.Contains(m[0], "Offsite watchdog of pi age: 20m (fresh, but see below)") || !strings.Contains(m[0], "its watchdog cannot mail") {
		t.Fatalf("dead mail path: %q", m)
	}
	os.WriteFile(filepath.Join(l.env.RevokedDir, "pi"), []byte("x"), 0o644)
	if m := stale(); len(m) != 0 {
		t.Fatalf("a revoked Pi is still watched: %q", m)
	}
}

// The stale check compares the last recovery bundle's fingerprint record
// with the secrets as they are now: quiet while they match, a mail naming
// the changed secret once one does, and the record says so for the
// dashboard.
func TestStaleCheckFindsTheBundleOutOfDate(t *testing.T) {
	l := newLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(l.dir, "keys/system.pass")
	content, _ := os.ReadFile(pass)
	rec, err := fingerprint.New("john-ai", time.Now(), "00")
	if err != nil {
		t.Fatal(err)
	}
	rec.Add(fingerprint.KindPassphrase, "john-ai/system", pass, content)
	data, _ := rec.Encode()
	if err := os.WriteFile(l.env.Store.File(fingerprint.Name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	// The sync never ran in this lab: that staleness is mailed each time.
	if err := jobs.Stale(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	wantMail(t, l.mails(1)[0], "[BACKUP] john-ai STALENESS ALERT")

	os.WriteFile(pass, []byte("a new passphrase\n"), 0o600)
	if err := jobs.Stale(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(2)
	if m[0].Subject != "[BACKUP] john-ai RECOVERY BUNDLE OUT OF DATE" {
		m[0], m[1] = m[1], m[0]
	}
	wantMail(t, m[0], "[BACKUP] john-ai RECOVERY BUNDLE OUT OF DATE", "the borg passphrase of john-ai/system ("+pass+") changed")
	r, err := l.env.Store.Load(layout.JobStale)
	if err != nil {
		t.Fatal(err)
	}
	var st state.StaleStats
	if err := json.Unmarshal(r.Stats, &st); err != nil || r.Status != state.Warning || st.Bundle == nil || len(st.Bundle.Changes) != 1 {
		t.Fatalf("stale record: %s %s %v", r.Status, r.Stats, err)
	}
}
