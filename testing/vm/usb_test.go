package vm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// archives lists the repo's archives on john-ai with borg itself, the
// passphrase read by borg from the file provisioning generated.
func (l *labSetup) archives(ctx context.Context, t *testing.T) []string {
	t.Helper()
	john, _ := l.cfg.Host(ServerName)
	c := host.Cmd{Argv: []string{"borg", "list", "--short", repoPath},
		Env: []string{"BORG_PASSCOMMAND=cat " + john.Repos[0].PassphrasePath()}}
	res, err := l.Server.RunCmd(ctx, c)
	if err != nil {
		t.Fatalf("borg list: %v\n%s", err, res.Stderr)
	}
	return strings.Fields(string(res.Stdout))
}

// TestVMServerRebootWithoutUSB proves john-ai's safety when its USB disk is
// missing at boot: the nofail fstab line lets it boot, the nightly job
// aborts before any borg command, nothing lands on the root filesystem
// under the empty mountpoint, and once the disk is back the repo is exactly
// as it was, no archive pruned.
func TestVMServerRebootWithoutUSB(t *testing.T) {
	skipUnlessVM(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := newLab(ctx, t, true)
	l.provisionServer(ctx, t)
	s := l.Server

	step(t, "two nightly runs with the disk in", func() {
		l.job(ctx, t, s, "nightly")
		seedData(ctx, t, s, dataDir+"/more", 2, 64<<10)
		l.job(ctx, t, s, "nightly")
	})
	l.withoutUSB(ctx, t)
}

// withoutUSB reboots john-ai with its USB disk unplugged: it boots
// (nofail), the nightly job aborts and writes nothing under the empty
// mountpoint, and with the disk back the repo is as it was and the next
// nightly run works. The repo must hold two archives or more.
func (l *labSetup) withoutUSB(ctx context.Context, t *testing.T) {
	t.Helper()
	s := l.Server
	before := l.archives(ctx, t)
	if len(before) < 2 {
		t.Fatalf("want 2 archives after two nightly runs, borg lists %v", before)
	}
	repo := treeHashes(ctx, t, s, repoPath)

	step(t, "reboot john-ai with the USB disk unplugged", func() {
		if err := s.Stop(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		s.SetDisks(nil)
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitSSH(ctx, bootTimeout); err != nil {
			t.Fatalf("john-ai does not boot without its USB disk (nofail): %v", err)
		}
		if got, _ := findmnt(ctx, s, "/mnt/backup"); got != "" {
			t.Fatalf("/mnt/backup is mounted (%s) with the USB disk unplugged", got)
		}
		t.Logf("boot without the disk, console:%s", grepLines(s.Console(), "mnt-backup", "Timed out"))
	})

	step(t, "job nightly aborts, writes nothing", func() {
		res, err := s.Run(ctx, layout.Binary, "job", "nightly")
		var ee *host.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("job nightly without the disk: want a failure, got %v\n%s%s", err, res.Stdout, res.Stderr)
		}
		rec := record(ctx, t, s, "nightly")
		if rec.Status != state.Aborted {
			t.Fatalf("nightly record: status %q (%s), want %q", rec.Status, rec.Message, state.Aborted)
		}
		t.Logf("nightly: exit %d, %s", ee.ExitCode, rec.Message)
		mail, err := s.ReadFile(ctx, LabMail)
		if err != nil || !strings.Contains(string(mail), alert.SubjectNightlyAborted) {
			t.Errorf("no %q mail in %s (%v)", alert.SubjectNightlyAborted, LabMail, err)
		}
		// The empty mountpoint on the root filesystem stays empty: no repo,
		// no lock, no cache was written where the disk should be.
		if out := must(ctx, t, s, "find", "/mnt/backup", "-mindepth", "1"); out != "" {
			t.Fatalf("the nightly run wrote under the unmounted /mnt/backup:\n%s", out)
		}
	})

	step(t, "disk back: repo unchanged, nothing pruned", func() {
		if err := s.Stop(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		s.SetDisks([]Disk{l.USB})
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitSSH(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
		l.assertServerDisk(ctx, t)
		sameTree(t, "repo after the aborted run vs before", repo, treeHashes(ctx, t, s, repoPath))
		after := l.archives(ctx, t)
		if strings.Join(after, " ") != strings.Join(before, " ") {
			t.Fatalf("archives before %v, after %v", before, after)
		}
		// And the next nightly run works again. Retention may prune one of
		// today's older archives now (borg keeps one a day, plus the
		// oldest), which is the prune's job, not damage.
		l.job(ctx, t, s, "nightly")
		now := l.archives(ctx, t)
		if newest := now[len(now)-1]; slices.Contains(before, newest) {
			t.Fatalf("no new archive after the nightly run with the disk back: %v", now)
		}
	})
}
