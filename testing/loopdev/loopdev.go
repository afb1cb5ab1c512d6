// Package loopdev gives tests real block devices: image files attached as
// loop devices, detached again even when the test fails.
package loopdev

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/digest"
)

// Device is an image file attached as a loop device.
type Device struct {
	Path  string // /dev/loopN
	Image string
}

// Unavailable says why loop devices cannot be used here, or "".
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "loop devices need root"
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return "no /dev/loop-control in this kernel or container"
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		return "losetup is not installed"
	}
	return ""
}

// New attaches a fresh sparse image of size bytes. It skips the test, with
// the reason, where loop devices cannot work; set BORGKIT_REQUIRE_LOOP to
// make that a failure instead (CI, which is root).
func New(t testing.TB, size int64) *Device {
	t.Helper()
	return attach(t, size)
}

// NewPartitioned is New with the kernel's partition scan on (losetup
// --partscan), so a partition table written on it gives partitions.
func NewPartitioned(t testing.TB, size int64) *Device {
	t.Helper()
	return attach(t, size, "--partscan")
}

func attach(t testing.TB, size int64, flags ...string) *Device {
	t.Helper()
	if why := Unavailable(); why != "" {
		if os.Getenv("BORGKIT_REQUIRE_LOOP") != "" {
			t.Fatalf("loop devices required: %s", why)
		}
		t.Skip(why)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("losetup", append(append([]string{"--find", "--show"}, flags...), img)...).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v %s", img, err, out)
	}
	d := &Device{Path: strings.TrimSpace(string(out)), Image: img}
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", d.Path).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v %s", d.Path, err, out)
		}
	})
	return d
}

// Hash is the SHA-256 of the whole device, to prove a refusal changed nothing.
func (d *Device) Hash(t testing.TB) string {
	t.Helper()
	sum, _, err := digest.File(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// Run runs a program on the device (mkfs, cryptsetup) and fails the test
// if it fails.
func (d *Device) Run(t testing.TB, argv ...string) {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
}
