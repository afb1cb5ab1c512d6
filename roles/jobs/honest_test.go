package jobs_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Issue 15, item 5: jobs that tell the truth. Each test fails on the code
// before it.

// TestWarningsNightHasItsOwnSubject: a night whose archives were all
// written but one of whose files changed while borg read it is neither
// FAILED (it did not fail) nor silent: it mails COMPLETED WITH WARNINGS
// and exits with its own status. (A VM whose definition cannot be dumped
// is now that guest's failure: see TestNightlyBacksUpEachGuest.)
func TestWarningsNightHasItsOwnSubject(t *testing.T) {
	l := newLab(t, labOptions{})
	live := filepath.Join(l.home, "live.db")
	writeRandom(t, live, 16<<20)
	stop := writeWhile(t, live)
	err := jobs.Nightly(ctx(), l.env)
	stop()
	var w *jobs.WarningsError
	if !errors.As(err, &w) {
		t.Fatalf("nightly returned %v, want a WarningsError", err)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP COMPLETED WITH WARNINGS", "=== NIGHTLY BACKUP COMPLETED WITH WARNINGS ===",
		"--- Backup: system ---\n  Status: WARNING (exit code 1)", live+": file changed while we backed it up")
	rec, _ := l.env.Store.Load("nightly")
	if rec.Status != state.Warning || rec.ExitCode != jobs.ExitWarnings || rec.LastSuccess.IsZero() {
		t.Fatalf("record %s exit %d, last success %v", rec.Status, rec.ExitCode, rec.LastSuccess)
	}
	if n := l.archives("system"); n != 1 {
		t.Fatalf("%d archives", n)
	}
}

// TestWarningsNightExitsFour: cron and systemd see a warnings-only night
// by its exit status: `borgkit job nightly` exits 4 (not 0, not 1) after
// a night that backed everything up but found an archive deleted by hand.
func TestWarningsNightExitsFour(t *testing.T) {
	l := newLab(t, labOptions{})
	for i := range 2 {
		time.Sleep(1100 * time.Millisecond)
		if code := l.jobCLI(t, "nightly"); code != 0 {
			t.Fatalf("night %d: exit %d", i, code)
		}
	}
	l.mails(0)
	repo := filepath.Join(l.mnt, "system")
	oldest := strings.Fields(l.borg("list", "--short", repo))[0]
	l.borg("delete", repo+"::"+oldest)
	time.Sleep(1100 * time.Millisecond)
	if code := l.jobCLI(t, "nightly"); code != 4 {
		t.Fatalf("a warnings-only night: exit %d, want 4", code)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP COMPLETED WITH WARNINGS", oldest)
	rec, _ := l.env.Store.Load("nightly")
	if rec.Status != state.Warning || rec.ExitCode != 4 {
		t.Fatalf("record %s exit %d", rec.Status, rec.ExitCode)
	}
}

// TestCheckWithoutDiskIsNotRun: with the USB disk unplugged, the weekly
// check and the verify say they did not run; no repo is marked failed,
// and the sync, once the disk is back, mirrors as before.
func TestCheckWithoutDiskIsNotRun(t *testing.T) {
	l := newLab(t, labOptions{})
	l.night(0)
	if err := jobs.Check(ctx(), l.env, false); err != nil {
		t.Fatal(err)
	}
	sh(t, "umount", l.mnt)
	for _, verify := range []bool{false, true} {
		if err := jobs.Check(ctx(), l.env, verify); err == nil {
			t.Fatal("a check without its disk succeeded")
		}
		m := l.mails(1)
		wantMail(t, m[0], "[BACKUP] john-ai INTEGRITY CHECK NOT RUN", "The check did not run", "is not mounted", "No repository was found damaged")
		job := map[bool]string{false: "check", true: "verify"}[verify]
		rec, _ := l.env.Store.Load(job)
		var st state.CheckStats
		decode(rec, &st)
		if rec.Status != state.Aborted || len(st.Repos) != 1 || st.Repos[0].Status == "failed" {
			t.Fatalf("%s record %s: %+v", job, rec.Status, st)
		}
	}
	mountDisk(t, l.backup, l.mnt)
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("the sync after a check that did not run: %v", err)
	}
	l.mails(0)
}

// TestStaleAlertsOnAFutureLastSuccess: a last success recorded hours
// ahead of now (a clock set wrong) is no proof of a fresh backup.
func TestStaleAlertsOnAFutureLastSuccess(t *testing.T) {
	l := newLab(t, labOptions{})
	future := time.Now().Add(20 * time.Hour)
	l.env.Store.Now = func() time.Time { return future }
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	l.env.Store.Now = nil
	l.env.Cfg.Hosts[0].Mirrors = nil // only the nightly is judged
	if err := jobs.Stale(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai STALENESS ALERT", "Nightly backup age: 19h in the future", "a clock was wrong")
}

// TestRevokedPiGetsNoPush: after revoke-unlock, the sync sends the stolen
// Pi nothing, not even a connection attempt, and says so in its record.
func TestRevokedPiGetsNoPush(t *testing.T) {
	l, pi := newOffsiteLab(t, labOptions{})
	l.night(0)
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	before := treeSums(t, pi.root)
	os.MkdirAll(l.env.RevokedDir, 0o755)
	os.WriteFile(filepath.Join(l.env.RevokedDir, "pi"), []byte("revoked\n"), 0o644)
	conns := pi.srv.Connections()
	l.night(1)
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("sync with a revoked Pi: %v", err)
	}
	l.mails(0)
	if got := treeSums(t, pi.root); got != before {
		t.Fatal("the revoked Pi's mirror changed")
	}
	if n := pi.srv.Connections(); n != conns {
		t.Fatalf("%d connections to the revoked Pi", n-conns)
	}
	rec, _ := l.env.Store.Load("sync")
	var st state.SyncStats
	decode(rec, &st)
	if len(st.Mirrors) != 2 || st.Mirrors[1].Status != "revoked" || st.Mirrors[0].Status != "ok" {
		t.Fatalf("mirrors %+v", st.Mirrors)
	}
}

// suspectLab is a lab whose data is one stable 2 MB file and a small one
// changed each night: a normal night adds a few kilobytes.
func suspectLab(t *testing.T) *lab {
	l := newLab(t, labOptions{})
	l.env.Host.Thresholds.Suspicious = &config.Suspicious{Nights: 5, MinNights: 3}
	sh(t, "dd", "if=/dev/urandom", "of="+filepath.Join(l.home, "stable.bin"), "bs=1M", "count=2", "status=none")
	for i := range 3 {
		time.Sleep(1100 * time.Millisecond)
		os.WriteFile(filepath.Join(l.home, "diary.txt"), []byte(strings.Repeat(fmt.Sprintf("day %d\n", i), 500)), 0o644)
		if err := jobs.Nightly(ctx(), l.env); err != nil {
			t.Fatalf("night %d: %v", i, err)
		}
	}
	l.mails(0)
	return l
}

// TestSuspiciousBackup: a night that saves far less than the recent ones
// (the sources emptied), or far more new data (every file rewritten, as a
// mass encryption does), mails SUSPICIOUS BACKUP with the figures and
// prunes nothing.
func TestSuspiciousBackup(t *testing.T) {
	t.Run("sources emptied", func(t *testing.T) {
		l := suspectLab(t)
		ents, _ := os.ReadDir(l.home)
		for _, e := range ents {
			if e.Name() != "canary.txt" {
				os.Remove(filepath.Join(l.home, e.Name()))
			}
		}
		before := l.archives("system")
		time.Sleep(1100 * time.Millisecond)
		var w *jobs.WarningsError
		if err := jobs.Nightly(ctx(), l.env); !errors.As(err, &w) {
			t.Fatalf("nightly: %v", err)
		}
		m := l.mails(1)
		wantMail(t, m[0], "[BACKUP] john-ai SUSPICIOUS BACKUP", "--- system: nightly-", "1 files, under 50% of the median of the last 3 nights",
			"Median of  3 nights:", "nothing was pruned")
		if n := l.archives("system"); n != before+1 {
			t.Fatalf("%d archives after a suspicious night, %d before: something was pruned", n, before)
		}
	})
	t.Run("mass encryption", func(t *testing.T) {
		l := suspectLab(t)
		sh(t, "dd", "if=/dev/urandom", "of="+filepath.Join(l.home, "stable.bin"), "bs=1M", "count=2", "status=none")
		ents, _ := os.ReadDir(l.home)
		for _, e := range ents {
			p := filepath.Join(l.home, e.Name())
			b, _ := os.ReadFile(p)
			for i := range b {
				b[i] ^= 0x5a
			}
			os.WriteFile(p, b, 0o644)
		}
		time.Sleep(1100 * time.Millisecond)
		var w *jobs.WarningsError
		if err := jobs.Nightly(ctx(), l.env); !errors.As(err, &w) {
			t.Fatalf("nightly: %v", err)
		}
		m := l.mails(1)
		wantMail(t, m[0], "[BACKUP] john-ai SUSPICIOUS BACKUP", "of new data, over 10 times the median of the last 3 nights", "a mass encryption")
	})
}

// TestEveryBorgCallHasATimeout: a borg run past its timeout is killed and
// reported, whatever kind it is, not only a create.
func TestEveryBorgCallHasATimeout(t *testing.T) {
	l := newLab(t, labOptions{})
	l.night(0)
	l.env.Host.Timeouts = &config.Timeouts{Check: "50ms", Prune: "50ms"}
	if err := jobs.Check(ctx(), l.env, false); err == nil {
		t.Fatal("a check past its timeout passed")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai INTEGRITY CHECK FAILED", "borg check timed out after 50ms (raise timeouts.check")
	time.Sleep(1100 * time.Millisecond)
	if err := jobs.Nightly(ctx(), l.env); err == nil {
		t.Fatal("a prune past its timeout passed")
	}
	m = l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP FAILED", "--- Retention + compact: system ---\n  Status: FAILED", "borg prune timed out after 50ms")
}

// TestKilledBorgkitTakesItsBorg: SIGKILL of `borgkit job nightly` alone
// (not its process group) leaves no borg behind to hold the repo after
// the host lock is gone, and the next nightly runs normally.
func TestKilledBorgkitTakesItsBorg(t *testing.T) {
	l := newLab(t, labOptions{})
	sh(t, "dd", "if=/dev/urandom", "of="+filepath.Join(l.home, "big"), "bs=1M", "count=24", "status=none")
	c := exec.Command(borgkitBinary(t), "--config", l.cfgPath, "job", "nightly", "--host", "john-ai",
		"--state-dir", l.env.Store.Dir, "--lock", l.env.LockPath, "--log-dir", l.dir)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for borgRunning(l.mnt) == 0 {
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatal("borg create never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Process.Signal(syscall.SIGKILL) // borgkit only
	c.Wait()
	deadline = time.Now().Add(20 * time.Second)
	for borgRunning(l.mnt) != 0 {
		if time.Now().After(deadline) {
			syscall.Kill(borgRunning(l.mnt), syscall.SIGKILL)
			t.Fatal("borg create outlived the borgkit that started it")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatalf("the nightly after the kill: %v", err)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai TERMINATED ABNORMALLY", "nightly")
	if n := l.archives("system"); n != 1 {
		t.Fatalf("%d archives", n)
	}
}

// jobCLI runs the real binary as cron does, against the lab.
func (l *lab) jobCLI(t *testing.T, job string) int {
	t.Helper()
	args := []string{"--config", l.cfgPath, "job", job, "--host", "john-ai", "--state-dir", l.env.Store.Dir, "--log-dir", l.dir}
	if job != "stale" { // the one job here that runs no borg takes no borg lock
		args = append(args, "--lock", l.env.LockPath)
	}
	out, err := exec.Command(borgkitBinary(t), args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Logf("borgkit job %s: exit %d\n%s", job, ee.ExitCode(), out)
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("borgkit job %s: %v", job, err)
	}
	return 0
}

// TestBrokenConfigStillAlerts: a config broken between two runs leaves the
// night neither silent nor unrecorded: the job exits 2, mails through the
// last config that loaded, and records the failed run.
func TestBrokenConfigStillAlerts(t *testing.T) {
	l := newLab(t, labOptions{})
	l.env.Cfg.Hosts[0].Mirrors = nil
	if code := l.jobCLI(t, "stale"); code != 0 {
		t.Fatalf("stale: exit %d", code)
	}
	l.mails(1) // the nightly never ran: stale says so
	good, _ := os.ReadFile(l.cfgPath)
	os.WriteFile(l.cfgPath, append(good, []byte("  bogus: [unclosed\n")...), 0o644)
	if code := l.jobCLI(t, "nightly"); code != 2 {
		t.Fatalf("nightly with a broken config: exit %d, want 2", code)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai CONFIG BROKEN", "Job: nightly", "the config "+l.cfgPath+" does not load", "borgkit config validate")
	rec, err := l.env.Store.Load("nightly")
	if err != nil || rec.Status != state.Failed || rec.ExitCode != 2 || !strings.Contains(rec.Message, "does not load") {
		t.Fatalf("record %+v %v", rec, err)
	}
}

// TestFullStateDirStillMails: a state directory with no space left makes
// the nightly stop, and say so by mail.
func TestFullStateDirStillMails(t *testing.T) {
	l := newLab(t, labOptions{})
	dir := filepath.Join(l.dir, "full-state")
	os.MkdirAll(dir, 0o755)
	sh(t, "mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir)
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	l.env.Store.Dir = dir
	exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(dir, "filler"), "bs=4k").Run() // until ENOSPC
	if err := jobs.Nightly(ctx(), l.env); err == nil {
		t.Fatal("the nightly ran without a record")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP ABORTED", "its record cannot be written", "no space left on device", dir)
}
