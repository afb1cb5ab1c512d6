package window

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/borgkit/borgkit/testing/loopdev"
)

func TestDiskOfPaths(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a"), 0o700)
	here := Disk(dir)
	if got := Disk(filepath.Join(dir, "a")); got != here {
		t.Errorf("a directory below %s is on %q, not %q", dir, got, here)
	}
	if got := Disk(filepath.Join(dir, "not/yet")); got != here {
		t.Errorf("a repo not made yet is on %q, not its parent's %q", got, here)
	}
	if got := Disk("/proc"); got == here {
		t.Errorf("/proc and %s are both on %q", dir, got)
	}
}

// TestDiskOfStackedDevices: two filesystems on loop devices whose images
// lie in one directory share that directory's disk (as two partitions of
// one USB disk do), while a tmpfs is a disk of its own.
func TestDiskOfStackedDevices(t *testing.T) {
	dir := t.TempDir()
	var mnts []string
	for _, name := range []string{"one", "two"} {
		d := loopdev.New(t, 32<<20)
		run(t, "mkfs.ext4", "-q", "-F", d.Path)
		mp := filepath.Join(dir, name)
		os.MkdirAll(mp, 0o700)
		run(t, "mount", d.Path, mp)
		t.Cleanup(func() { exec.Command("umount", "-l", mp).Run() })
		mnts = append(mnts, mp)
	}
	tmp := filepath.Join(dir, "tmp")
	os.MkdirAll(tmp, 0o700)
	run(t, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tmp)
	t.Cleanup(func() { exec.Command("umount", "-l", tmp).Run() })

	one, two, images := Disk(mnts[0]), Disk(mnts[1]), Disk(os.TempDir())
	if one != two {
		t.Errorf("two filesystems on images in one directory: disks %q and %q", one, two)
	}
	t.Logf("disks: %s %s, images %s, tmpfs %s", one, two, images, Disk(tmp))
	if one != images {
		t.Errorf("a loop device's filesystem is on %q, its image's directory on %q", one, images)
	}
	if Disk(tmp) == one {
		t.Errorf("a tmpfs shares %q with the loop devices", one)
	}
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
}
