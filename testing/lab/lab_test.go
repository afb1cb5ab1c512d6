package lab_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/testing/lab"
)

// borgkitBinary is the borgkit under test: $BORGKIT_BINARY, or built from
// this tree.
func borgkitBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("BORGKIT_BINARY"); b != "" {
		return b
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "borgkit")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/borgkit/borgkit/cmd/borgkit").CombinedOutput()
	if err != nil {
		t.Fatalf("build borgkit: %v\n%s", err, out)
	}
	return bin
}

func mustRun(t *testing.T, l *lab.Lab, host string, argv ...string) string {
	t.Helper()
	out, _, err := l.Run(host, argv...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(out)
}

// borgList lists a repo's archives on john-ai with its passphrase file,
// as the jobs do (BORG_PASSCOMMAND, never the passphrase in argv).
func borgList(l *lab.Lab, repo string) ([]string, error) {
	out, _, err := l.Run(lab.Server, "env", "BORG_PASSCOMMAND=cat /etc/borgkit/keys/"+repo+".pass", "BORG_EXIT_CODES=legacy",
		"borg", "list", "--short", "/mnt/backup/"+repo)
	return strings.Fields(string(out)), err
}

// jobLog is the tail of a job's log on john-ai, for a failure message.
func jobLog(l *lab.Lab, job string) string {
	b, err := l.ReadFile(lab.Server, "/var/log/borgkit/"+job+".log")
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return job + ".log:\n" + strings.Join(lines, "\n")
}

// TestLabEndToEnd provisions john-ai and its offsite pi for real in the
// namespace lab, runs the jobs, and checks what they left on the disks;
// then it breaks things and checks the alerts.
func TestLabEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("the lab scenario takes about 30s; not with -short")
	}
	l := lab.StartT(t)
	bin := borgkitBinary(t)
	// A bound for a hang, not a speed target: the scenario takes about 30s
	// alone, and 5 minutes on a two-core machine shared by other test runs
	// (load 20 and more), where it ran out of a 5-minute bound.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	report, err := lab.RunScenario(ctx, l, lab.ScenarioOptions{Binary: bin, Out: t.Output()})
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}

	t.Run("provision", func(t *testing.T) {
		for _, h := range []string{lab.Server, lab.Offsite} {
			if c := report.FirstProvision[h]; c.Changes() == 0 || c.Conflict > 0 {
				t.Errorf("first provision of %s: %+v, want changes and no conflict", h, c)
			}
			if c := report.SecondProvision[h]; c.Changes() != 0 || c.Conflict != 0 || !c.NoChanges {
				t.Errorf("second provision of %s: %+v, want 0 changes and \"no changes\"", h, c)
			}
		}
		if got := mustRun(t, l, lab.Offsite, "cat", "/etc/borgkit/host"); got != lab.Offsite+"\n" {
			t.Errorf("pi's /etc/borgkit/host = %q", got)
		}
		// The lab's Pi disk is plain ext4 (no device-mapper here): no unlock
		// machinery, and an fstab line instead.
		calls := strings.Join(l.SystemctlCalls(lab.Offsite), "\n")
		if strings.Contains(calls, "borgkit-unlock.timer") {
			t.Errorf("pi without a LUKS disk got the unlock timer; systemctl calls:\n%s", calls)
		}
		if fstab := mustRun(t, l, lab.Offsite, "cat", "/etc/fstab"); !strings.Contains(fstab, " /mnt/backup ext4 nofail") {
			t.Errorf("pi's plain disk is not in its fstab:\n%s", fstab)
		}
		// root's authorized_keys keeps the lab admin key and gets only the
		// hash key's serve-hashes line from borgkit; the push key logs in
		// as the push user, restricted to rrsync from john-ai's address.
		ak := mustRun(t, l, lab.Offsite, "cat", "/root/.ssh/authorized_keys")
		if !strings.HasPrefix(ak, "# the lab's admin key") || strings.Contains(ak, "rrsync") ||
			!strings.Contains(ak, `restrict,from="`+lab.ServerAddr+`",command="/usr/local/bin/borgkit job serve-hashes mirror=/mnt/backup/borgkit snapshots=/mnt/backup/borgkit-snapshots"`) {
			t.Errorf("pi's root authorized_keys:\n%s", ak)
		}
		push := mustRun(t, l, lab.Offsite, "cat", "/var/lib/borgkit-push/.ssh/authorized_keys")
		if !strings.Contains(push, `restrict,from="`+lab.ServerAddr+`",command="/usr/bin/rrsync -wo /mnt/backup/borgkit"`) {
			t.Errorf("the push user's authorized_keys:\n%s", push)
		}
		if id := mustRun(t, l, lab.Offsite, "id", "-u", "borgkit-push"); id == "0\n" {
			t.Errorf("the push user is root")
		}
	})

	t.Run("repos", func(t *testing.T) {
		for _, repo := range []string{lab.RepoSystem, lab.RepoDocker} {
			archives, err := borgList(l, repo)
			if err != nil {
				t.Fatalf("borg list %s: %v", repo, err)
			}
			if len(archives) != 1 || !strings.HasPrefix(archives[0], "nightly-") {
				t.Errorf("repo %s archives %q, want one nightly-*", repo, archives)
			}
		}
		// The canary came back out of the archive byte for byte.
		if st := report.Action("job restore-test"); st == nil || !st.OK() {
			t.Errorf("restore test: %+v", st)
		}
	})

	t.Run("mirrors", func(t *testing.T) {
		if len(report.Mirrors) != 4 {
			t.Fatalf("%d mirror checks, want 4 (2 repos x nas, offsite)", len(report.Mirrors))
		}
		for _, m := range report.Mirrors {
			if m.Err != nil || len(m.Diffs) > 0 || m.Files < 5 {
				t.Errorf("mirror %s of %s right after the sync: %d files, diffs %v, err %v", m.Mirror, m.Repo, m.Files, m.Diffs, m.Err)
			}
		}
		// Still identical now, after check and restore-test opened the repos.
		for _, repo := range []string{lab.RepoSystem, lab.RepoDocker} {
			src, err := l.HashTree(lab.Server, "/mnt/backup/"+repo)
			if err != nil {
				t.Fatal(err)
			}
			pi, err := l.HashTree(lab.Offsite, lab.OffsitePath+"/"+repo)
			if err != nil {
				t.Fatal(err)
			}
			if d := lab.DiffTrees(src, pi); len(d) > 0 {
				t.Errorf("pi's mirror of %s differs: %v", repo, d)
			}
			nas, err := l.HashTree(lab.Server, lab.NASPath+"/"+repo)
			if err != nil {
				t.Fatal(err)
			}
			if d := lab.DiffTrees(src, nas); len(d) > 0 {
				t.Errorf("NAS mirror of %s differs: %v", repo, d)
			}
		}
		hb, err := l.ReadFile(lab.Offsite, lab.OffsitePath+"/.heartbeat/"+lab.Server+"-last-success")
		if err != nil {
			t.Fatal(err)
		}
		if ts, err := time.Parse(time.RFC3339, strings.TrimSpace(string(hb))); err != nil || time.Since(ts) > 10*time.Minute {
			t.Errorf("heartbeat %q: %v", hb, err)
		}
	})

	t.Run("optional", func(t *testing.T) {
		// Commands still being written are reported, not required here
		// (the demo requires them once they exist).
		for _, st := range report.Actions {
			switch {
			case !st.Optional:
			case st.Skipped != "":
				t.Logf("%s: skipped: %s", st.Name, st.Skipped)
			case st.Err != nil:
				t.Logf("%s: FAILED: %v\n%s%s", st.Name, st.Err, st.Stdout, st.Stderr)
			default:
				t.Logf("%s: ok", st.Name)
			}
		}
	})

	t.Run("silence", func(t *testing.T) {
		if len(report.Mails) != 0 {
			for _, m := range report.Mails {
				t.Errorf("mail during the healthy run: %q\n%s", m.Subject, m.Text())
			}
		}
	})

	// Fault injections, in order, on the provisioned lab.
	t.Run("usb-disk-unplugged", func(t *testing.T) {
		l.ResetMails()
		if err := l.UnplugDisk(lab.DiskUSB); err != nil {
			t.Fatal(err)
		}
		_, _, err := l.Run(lab.Server, "borgkit", "job", "nightly")
		if err == nil {
			t.Error("nightly succeeded without its backup disk")
		}
		mails, werr := l.WaitMails(1, 15*time.Second)
		if werr != nil {
			t.Fatal(werr)
		}
		want := "[BACKUP] " + lab.Server + " " + alert.SubjectNightlyAborted
		if mails[0].Subject != want || !strings.Contains(mails[0].Text(), "is not mounted at /mnt/backup") {
			t.Errorf("mail %q, want %q about the unmounted disk:\n%s", mails[0].Subject, want, mails[0].Text())
		}
		if err := l.PlugDisk(lab.DiskUSB); err != nil {
			t.Fatal(err)
		}
		// Plugged back in, the next nightly works and stays silent.
		l.ResetMails()
		if _, _, err := l.Run(lab.Server, "borgkit", "job", "nightly"); err != nil {
			t.Fatalf("nightly after replugging: %v\n%s", err, jobLog(l, "nightly"))
		}
		if archives, err := borgList(l, lab.RepoSystem); err != nil || len(archives) < 2 {
			t.Errorf("after the second nightly: archives %q, %v; want 2 (prune keeps one a day)", archives, err)
		}
		if m := l.Mails(); len(m) > 0 {
			t.Errorf("mail after a good nightly: %q", m[0].Subject)
		}
	})

	t.Run("usb-disk-unmounted", func(t *testing.T) {
		// Attached but not mounted: the nightly mounts it once through
		// borgkit's fstab line (UUID=..., nofail) and backs up.
		l.ResetMails()
		mustRun(t, l, lab.Server, "umount", "/mnt/backup")
		if _, _, err := l.Run(lab.Server, "borgkit", "job", "nightly"); err != nil {
			t.Fatalf("nightly with the disk attached but unmounted: %v\n%s", err, jobLog(l, "nightly"))
		}
		uuid := strings.TrimSpace(mustRun(t, l, lab.Server, "findmnt", "--noheadings", "--output", "UUID", "--mountpoint", "/mnt/backup"))
		if uuid != l.Disk(lab.DiskUSB).UUID {
			t.Errorf("/mnt/backup holds UUID %q after the nightly, want the USB disk's %s", uuid, l.Disk(lab.DiskUSB).UUID)
		}
		if m := l.Mails(); len(m) > 0 {
			t.Errorf("mail after a nightly that mounted its disk: %q", m[0].Subject)
		}
	})

	t.Run("pi-sshd-stopped", func(t *testing.T) {
		l.ResetMails()
		if err := l.StopSSHD(lab.Offsite); err != nil {
			t.Fatal(err)
		}
		_, _, err := l.Run(lab.Server, "borgkit", "job", "sync")
		if err == nil {
			t.Error("sync succeeded with pi's sshd stopped")
		}
		mails, werr := l.WaitMails(1, 15*time.Second)
		if werr != nil {
			t.Fatal(werr)
		}
		want := "[BACKUP] " + lab.Server + " " + alert.SubjectSyncFailed
		if mails[0].Subject != want || !strings.Contains(mails[0].Text(), "pi:") {
			t.Errorf("mail %q, want %q naming pi:\n%s", mails[0].Subject, want, mails[0].Text())
		}
		if err := l.StartSSHD(lab.Offsite); err != nil {
			t.Fatal(err)
		}
		l.ResetMails()
		if _, _, err := l.Run(lab.Server, "borgkit", "job", "sync"); err != nil {
			t.Fatalf("sync after restarting sshd: %v\n%s", err, jobLog(l, "sync"))
		}
		if m := l.Mails(); len(m) > 0 {
			t.Errorf("mail after a good sync: %q", m[0].Subject)
		}
	})

	t.Run("pi-disk-unmounted", func(t *testing.T) {
		l.ResetMails()
		if err := l.UnplugDisk(lab.DiskPi); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := l.PlugDisk(lab.DiskPi); err != nil {
				t.Error(err)
			}
		}()
		_, _, err := l.Run(lab.Server, "borgkit", "job", "sync")
		if err == nil {
			t.Error("sync succeeded while pi's backup disk is not mounted")
		}
		left := mustRun(t, l, lab.Offsite, "find", lab.OffsiteMount, "-mindepth", "1", "-maxdepth", "1")
		if left != "" {
			t.Errorf("the sync wrote into pi's root filesystem under the empty mountpoint:\n%s", left)
		}
		if _, err := l.WaitMails(1, 15*time.Second); err != nil {
			t.Errorf("no OFFSITE SYNC FAILED mail: %v", err)
		}
	})
}

// TestCleanupAfterCrash leaves a lab as a killed run would (its owner
// gone) and checks Cleanup removes all of it: processes, namespaces, loop
// devices, directory.
func TestCleanupAfterCrash(t *testing.T) {
	l := lab.StartT(t, lab.Options{DiskSize: 64 << 20})
	var loops []string
	for _, name := range []string{lab.DiskUSB, lab.DiskNAS, lab.DiskPi} {
		loops = append(loops, l.Disk(name).Device)
	}
	// Pretend the owner died: a pid that exited.
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	entry := fmt.Sprintf("%d\n%s\n", c.Process.Pid, l.Dir)
	if err := os.WriteFile(filepath.Join("/run/borgkit-lab", l.ID), []byte(entry), 0o600); err != nil {
		t.Fatal(err)
	}
	anchors := []int{l.AnchorPID(lab.Server), l.AnchorPID(lab.Offsite)}
	if err := lab.Cleanup(lab.NSPrefix); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for _, h := range l.Hosts() {
		if _, err := os.Stat("/run/netns/" + h.NetNS); err == nil {
			t.Errorf("namespace %s survived Cleanup", h.NetNS)
		}
	}
	time.Sleep(100 * time.Millisecond) // the anchors are reaped by this process
	for _, pid := range anchors {
		if err := syscall.Kill(pid, 0); err == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(b), ") Z ") {
				t.Errorf("anchor pid %d survived Cleanup", pid)
			}
		}
	}
	for _, dev := range loops {
		if b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file"); err == nil && strings.Contains(string(b), l.Dir) {
			t.Errorf("loop device %s still holds %s", dev, strings.TrimSpace(string(b)))
		}
	}
	if _, err := os.Stat(l.Dir); err == nil {
		t.Errorf("lab directory %s survived Cleanup", l.Dir)
	}
	// Close after Cleanup finds nothing left to do and does not fail
	// (StartT's cleanup calls it again).
	if err := l.Close(); err != nil {
		t.Errorf("Close after Cleanup: %v", err)
	}
}

// TestLabHosts checks the hosts are separate machines that can mail, and
// that Close removes every trace of them.
func TestLabHosts(t *testing.T) {
	if why := lab.Unavailable(); why != "" {
		if os.Getenv(lab.RequireEnv) != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	l, err := lab.Start(context.Background(), lab.Options{DiskSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// The hosts really are separate: own hostname, own /etc, own /root.
	for _, h := range []string{lab.Server, lab.Offsite} {
		if got, _, err := l.Run(h, "hostname"); err != nil || string(got) != h+"\n" {
			t.Errorf("%s: hostname %q, %v", h, got, err)
		}
		if got, err := l.ReadFile(h, "/etc/hostname"); err != nil || string(got) != h+"\n" {
			t.Errorf("%s: /etc/hostname %q, %v", h, got, err)
		}
	}
	mine, _ := os.ReadFile("/etc/hostname")
	if slices.Contains([]string{lab.Server + "\n", lab.Offsite + "\n"}, string(mine)) {
		t.Errorf("the machine's own /etc/hostname became %q", mine)
	}
	// Both hosts mail through msmtp to the listener in john-ai's
	// namespace: john-ai locally, pi over the veth pair.
	for _, h := range []string{lab.Server, lab.Offsite} {
		msg := "Subject: hello from " + h + "\n\nlab mail\n"
		if _, _, err := l.RunInput(context.Background(), h, strings.NewReader(msg), "msmtp", "-C", "/etc/msmtprc", "--", lab.MailTo); err != nil {
			t.Errorf("%s: msmtp: %v", h, err)
		}
	}
	if mails, err := l.WaitMails(2, 10*time.Second); err != nil {
		t.Error(err)
	} else if mails[0].Subject != "hello from "+lab.Server || mails[1].From != "root@"+lab.Offsite+".lab" || mails[1].Text() != "lab mail\n" {
		t.Errorf("mails: %+v", mails)
	}
	hosts := l.Hosts()
	dir := l.Dir
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if _, err := os.Stat("/run/netns/" + h.NetNS); err == nil {
			t.Errorf("namespace %s survived Close", h.NetNS)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s survived Close", dir)
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, bf := range loops {
		if b, _ := os.ReadFile(bf); strings.Contains(string(b), dir) {
			t.Errorf("%s still backed by %s", bf, b)
		}
	}
}
