package vm

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestVMUnlockAtBoot proves the offsite disk's life across reboots: the
// unlock timer fetches the key from john-ai over SSH at boot and mounts
// the disk from its mapper; with john-ai down the pi still boots, leaves
// the disk shut and retries, and once john-ai is back a timer run (not the
// test) unlocks it.
func TestVMUnlockAtBoot(t *testing.T) {
	skipUnlessVM(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	// However this test ends, a waiting TestVMDisasterDrill learns of it.
	t.Cleanup(func() { handDrill(nil) })
	l := newLab(ctx, t, false)
	l.provisionServer(ctx, t)
	l.provisionOffsite(ctx, t)
	l.nightlyAndSync(ctx, t)
	pi, s := l.Offsite, l.Server

	step(t, "reboot pi: the timer unlocks", func() {
		if err := pi.Reboot(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
		d := l.waitUnlocked(ctx, t, unlockTimeout)
		t.Logf("mounted %s after ssh answered", d.Round(time.Second))
		l.assertUnlocked(ctx, t)
		log := must(ctx, t, pi, "cat", "/var/log/borgkit/unlock.log")
		if !strings.Contains(log, "fetched the key from "+ServerName) {
			t.Fatalf("unlock.log does not say the key was fetched:\n%s", log)
		}
		// What the console said during this boot: the timer started the
		// service and it finished.
		if c := pi.Console(); !strings.Contains(c, "Finished borgkit-unlock.service") {
			t.Errorf("the serial console of this boot does not show borgkit-unlock.service finishing:%s", grepLines(c, "borgkit"))
		}
		sameTree(t, "mirror on the pi after reboot", l.mirrored, treeHashes(ctx, t, pi, l.mirror()))
		must(ctx, t, pi, "test", "-s", l.heartbeat())
	})

	step(t, "sync again after the pi's reboot", func() {
		l.job(ctx, t, s, "sync")
	})

	var drill *drillInput
	if selected("TestVMDisasterDrill") {
		step(t, "recovery bundle for the drill", func() {
			drill = l.makeDrillInput(ctx, t)
		})
	}

	step(t, "power-cycle pi with john-ai down: boots, stays locked, retries", func() {
		if err := s.Stop(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		// Off and on again this time, as after a power cut (the first
		// reboot was systemctl reboot). While it is off its disk is a
		// closed LUKS volume at rest: the copy the disaster drill gets.
		if err := pi.Stop(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if drill != nil {
			if err := run(ctx, testLog{t}, "cp", "--sparse=always", l.PiDisk.Path, drill.disk); err != nil {
				t.Fatal(err)
			}
			handDrill(drill)
		}
		if err := pi.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := pi.WaitSSH(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
		// The first timer run (OnBootSec) must fail, retrying within the
		// run, and leave the disk shut.
		waitFor(ctx, t, "a failed unlock run", unlockTimeout, 3*time.Second, func() (bool, string) {
			j := journal(ctx, pi, "borgkit-unlock.service")
			return strings.Contains(j, "Failed with result"), j
		})
		j := journal(ctx, pi, "borgkit-unlock.service")
		t.Logf("unlock journal with john-ai down:\n%s", j)
		for _, want := range []string{"unreachable after 3 tries", "the timer tries again"} {
			if !strings.Contains(j, want) {
				t.Errorf("unlock journal lacks %q", want)
			}
		}
		if got, _ := findmnt(ctx, pi, l.piDisk.Mountpoint); got != "" {
			t.Fatalf("%s is mounted (%s) though the key server is down", l.piDisk.Mountpoint, got)
		}
		if _, err := pi.Run(ctx, "test", "-e", l.piDisk.MapperPath()); err == nil {
			t.Fatalf("%s exists though no key could be fetched", l.piDisk.MapperPath())
		}
	})

	step(t, "john-ai back: a timer run unlocks the pi", func() {
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitSSH(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
		// The lab's unlock.retry is 45s (OnUnitInactiveSec, AccuracySec=1s)
		// after the failed run; the time left is the run itself under
		// emulation. Nothing here starts the service, so a mount now is the
		// timer's doing.
		d := l.waitUnlocked(ctx, t, 4*time.Minute)
		t.Logf("mounted %s after john-ai answered ssh", d.Round(time.Second))
		l.assertUnlocked(ctx, t)
		j := journal(ctx, pi, "borgkit-unlock.service")
		if n := strings.Count(j, "Starting borgkit-unlock.service"); n < 2 {
			t.Fatalf("want a failed run and the timer's retry, journal shows %d runs:\n%s", n, j)
		}
		t.Logf("unlock journal:\n%s", j)
		sameTree(t, "mirror on the pi after the retry", l.mirrored, treeHashes(ctx, t, pi, l.mirror()))
		// john-ai came back with its USB disk mounted by fstab, and the
		// next sync goes through to the unlocked pi.
		l.assertServerDisk(ctx, t)
		l.job(ctx, t, s, "sync")
	})
}
