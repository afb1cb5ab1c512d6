package window

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/borgkit/borgkit/templates"
)

// Disk names the disk path lies on, for the one-repo-per-disk rule: two
// repos with the same name share a disk's seeks and bandwidth.
//
// The filesystem's device (st_dev) alone would say too little and too
// much: two partitions, or a LUKS volume and a plain partition, of one USB
// disk are two devices on one spindle, and btrfs and ZFS give each
// subvolume or dataset a device number of its own. So the device is
// followed to the disks under it: through the mount table to a btrfs
// volume's block device or a ZFS dataset's pool, through sysfs from a
// partition to its disk, from a device-mapper volume (LUKS, LVM) to the
// devices beneath, and from a loop device to the disk of its backing file.
// What has no disk (tmpfs, NFS, a CIFS share) is its own device.
// A path that does not exist yet lies on its nearest existing parent's.
func Disk(path string) string { return diskOf(path, 0) }

func diskOf(path string, depth int) string {
	var st unix.Stat_t
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if err := unix.Stat(p, &st); err == nil {
			break
		}
		if p == "/" || p == "." {
			return "path:" + path // nothing to go by: a disk of its own
		}
	}
	return deviceDisk(st.Dev, depth)
}

// maxDepth bounds the walk down stacked devices (a loop device on a
// filesystem on LUKS on a partition ...).
const maxDepth = 8

func deviceDisk(dev uint64, depth int) string {
	maj, mnr := unix.Major(dev), unix.Minor(dev)
	if m, ok := mountOf(maj, mnr); ok {
		switch {
		case m.fstype == "zfs":
			pool, _, _ := strings.Cut(m.source, "/")
			return "zfs:" + pool
		case maj == 0 && strings.HasPrefix(m.source, "/dev/"):
			// btrfs: an anonymous device per subvolume; the volume's own
			// block device is the mount's source.
			var st unix.Stat_t
			if unix.Stat(m.source, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
				return blockDisk(st.Rdev, depth)
			}
		}
	}
	if maj == 0 {
		return fmt.Sprintf("dev:%d:%d", maj, mnr)
	}
	return blockDisk(dev, depth)
}

// blockDisk is the whole disk(s) under block device dev, by sysfs.
func blockDisk(dev uint64, depth int) string {
	maj, mnr := unix.Major(dev), unix.Minor(dev)
	sys, err := filepath.EvalSymlinks(fmt.Sprintf("/sys/dev/block/%d:%d", maj, mnr))
	if err != nil || depth > maxDepth {
		return fmt.Sprintf("dev:%d:%d", maj, mnr)
	}
	if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
		sys = filepath.Dir(sys) // the disk the partition is on
	}
	if b, err := os.ReadFile(filepath.Join(sys, "loop", "backing_file")); err == nil {
		return diskOf(strings.TrimSpace(string(b)), depth+1)
	}
	if slaves, _ := os.ReadDir(filepath.Join(sys, "slaves")); len(slaves) > 0 {
		var disks []string
		for _, s := range slaves {
			if d, ok := devNumber(filepath.Join(sys, "slaves", s.Name(), "dev")); ok {
				disks = append(disks, blockDisk(d, depth+1))
			}
		}
		if len(disks) > 0 {
			slices.Sort(disks)
			return strings.Join(slices.Compact(disks), "+")
		}
	}
	return "disk:" + filepath.Base(sys)
}

// devNumber reads a sysfs dev file ("8:2").
func devNumber(file string) (uint64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	var a, c uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &a, &c); err != nil {
		return 0, false
	}
	return unix.Mkdev(a, c), true
}

type mount struct{ fstype, source string }

// mountOf finds the mount of device maj:mnr in this process's mount table.
func mountOf(maj, mnr uint32) (mount, bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mount{}, false
	}
	defer f.Close()
	want := fmt.Sprintf("%d:%d", maj, mnr)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != want {
			continue
		}
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+2 >= len(fields) {
			continue
		}
		return mount{fstype: fields[sep+1], source: templates.FstabUnescape(fields[sep+2])}, true
	}
	return mount{}, false
}
