package drill

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPlanDisk(t *testing.T) {
	p := planDisk("/dev/disk/by-id/usb-test", "/b/luks/pi-backup.key", "", "borgkit-drill", "ext4", "/tmp/w/mnt")
	want := diskPlan{
		Open:   []string{"cryptsetup", "open", "--readonly", "--key-file", "/b/luks/pi-backup.key", "/dev/disk/by-id/usb-test", "borgkit-drill"},
		Mount:  []string{"mount", "-o", "ro,noload", "-t", "ext4", "/dev/mapper/borgkit-drill", "/tmp/w/mnt"},
		Umount: []string{"umount", "/tmp/w/mnt"},
		Close:  []string{"cryptsetup", "close", "borgkit-drill"},
	}
	if !slices.Equal(p.Open, want.Open) || !slices.Equal(p.Mount, want.Mount) || !slices.Equal(p.Umount, want.Umount) || !slices.Equal(p.Close, want.Close) {
		t.Errorf("plan %q\nwant %q", p, want)
	}
	p = planDisk("/img", "/k", "/b/luks/h.img", "m", "xfs", "/mnt")
	if want := []string{"cryptsetup", "open", "--readonly", "--key-file", "/k", "--header", "/b/luks/h.img", "/img", "m"}; !slices.Equal(p.Open, want) {
		t.Errorf("open with header: %q", p.Open)
	}
	if want := []string{"mount", "-o", "ro,norecovery", "-t", "xfs", "/dev/mapper/m", "/mnt"}; !slices.Equal(p.Mount, want) {
		t.Errorf("xfs mount: %q", p.Mount)
	}
	if p = planDisk("/img", "/k", "", "m", "btrfs", "/mnt"); !slices.Equal(p.Mount, []string{"mount", "-o", "ro", "-t", "btrfs", "/dev/mapper/m", "/mnt"}) {
		t.Errorf("btrfs mount: %q", p.Mount)
	}
}

func TestBorgTime(t *testing.T) {
	got, err := borgTime("2026-06-12T00:42:07.000000")
	if err != nil || !got.Equal(time.Date(2026, 6, 12, 0, 42, 7, 0, time.Local)) {
		t.Errorf("%v %v", got, err)
	}
	if _, err := borgTime("yesterday"); err == nil {
		t.Error("parsed garbage")
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b}
	p.status("phase %d", 1)
	p.tick("file %d/%d", 1, 2)
	p.done()
	if b.String() != "phase 1\n" {
		t.Errorf("log progress %q", b.String())
	}
	b.Reset()
	p = &progress{w: &b, tty: true}
	p.status("a")
	p.tick("b")
	p.done()
	if b.String() != "\r\033[Ka\r\033[Kb\r\033[K" {
		t.Errorf("tty progress %q", b.String())
	}
	var nilp *progress
	nilp.status("x") // no writer, no panic
}

func TestHumanFigures(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", in, got, want)
		}
	}
	if got := roundDur(90*time.Minute + 4*time.Second); got != "1h30m0s" {
		t.Errorf("roundDur = %q", got)
	}
	if got := cell("a|b\tc"); !strings.Contains(got, `\|`) {
		t.Errorf("cell = %q", got)
	}
}
