package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
)

// ErrUnsafeTarget is wrapped by Write's refusal of a directory the bundle
// must not be written to.
var ErrUnsafeTarget = errors.New("unsafe bundle target")

// sysRoot is where sysfs is mounted; tests point it at a fake tree.
var sysRoot = "/sys"

// resolvePath makes p absolute, clean and free of symlinks, also when its
// last components do not exist yet: the deepest existing ancestor is
// resolved and the rest appended. A target reached through a symlink into
// the backup disk must be refused like the disk itself.
func resolvePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	cur := abs
	for {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
		cur = parent
	}
}

// excludeSubtree is the subtree a borg --exclude covers when it is a plain
// path (borg's default fm: style, or pp:/pf:); false for globs and regexes,
// whose reach we do not guess (the target then counts as backed up).
func excludeSubtree(e string) (string, bool) {
	if len(e) > 3 && e[2] == ':' {
		switch e[:3] {
		case "fm:", "pp:", "pf:":
			e = e[3:]
		default:
			return "", false
		}
	}
	if !strings.HasPrefix(e, "/") || strings.ContainsAny(e, "*?[") {
		return "", false
	}
	return filepath.Clean(e), true
}

// checkTarget refuses a bundle directory that would put the keys next to
// what they protect: on the server's backup disk, inside a repo or a local
// mirror, or inside anything a repo backs up (less its excludes) — the
// bundle must survive the loss of the server and its backups, and must
// never end up inside the backup itself. It also refuses a non-empty
// directory, so a bundle is never mixed with other files.
func checkTarget(server *config.Host, src Source, dir string) (string, error) {
	target, err := resolvePath(dir)
	if err != nil {
		return "", fmt.Errorf("bundle target %s: %w", dir, err)
	}
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrUnsafeTarget, dir, fmt.Sprintf(format, args...))
	}
	onServer := func(p string) string {
		r, err := resolvePath(src.Path(p))
		if err != nil {
			return filepath.Clean(src.Path(p))
		}
		return r
	}
	for i := range server.Disks {
		d := &server.Disks[i]
		if d != server.BackupDisk() && !d.Backup {
			continue
		}
		mp := onServer(d.Mountpoint)
		if layout.Under(target, mp) {
			return "", refuse("it is on %s, the server's backup disk %s: the keys would be lost with the backups they unlock", d.Mountpoint, d.Name)
		}
		if sameMountedFS(target, mp) {
			return "", refuse("it is on the filesystem mounted at %s (the server's backup disk %s)", d.Mountpoint, d.Name)
		}
	}
	for _, r := range server.Repos {
		if layout.Under(target, onServer(r.Path)) {
			return "", refuse("it is inside repo %s (%s)", r.Name, r.Path)
		}
	}
	for _, m := range server.Mirrors {
		if m.Host == "" && layout.Under(target, onServer(m.Path)) {
			return "", refuse("it is inside the %s mirror (%s): the bundle must not live with the backups", m.Name, m.Path)
		}
	}
	for _, r := range server.Repos {
		for _, s := range r.Sources {
			if !layout.Under(target, onServer(s)) {
				continue
			}
			excluded := false
			for _, e := range r.Excludes {
				if sub, ok := excludeSubtree(e); ok && layout.Under(target, onServer(sub)) {
					excluded = true
					break
				}
			}
			if !excluded {
				return "", refuse("it is inside %s, a source of repo %s: the keys would be backed up with the data they protect (pick a directory outside the sources, such as a mounted USB stick under an excluded /media)", s, r.Name)
			}
		}
	}
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("bundle target %s: %w", dir, err)
	case !fi.IsDir():
		return "", refuse("it exists and is not a directory")
	default:
		ents, err := os.ReadDir(target)
		if err != nil {
			return "", fmt.Errorf("bundle target %s: %w", dir, err)
		}
		if len(ents) > 0 {
			return "", refuse("it is not empty (%d entries, such as %s): write a bundle into a new or empty directory", len(ents), ents[0].Name())
		}
	}
	return target, nil
}

// sameMountedFS reports whether target lies on the filesystem mounted at
// mp — only when mp really is a mountpoint (its device differs from its
// parent's), so an unmounted /mnt/backup does not make the whole root
// filesystem off-limits. It catches a second mount or bind mount of the
// backup disk that no path comparison would.
func sameMountedFS(target, mp string) bool {
	mdev, ok := devOf(mp)
	if !ok {
		return false
	}
	pdev, ok := devOf(filepath.Dir(mp))
	if !ok || pdev == mdev {
		return false
	}
	tdev, ok := devOf(existingAncestor(target))
	return ok && tdev == mdev
}

func devOf(p string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return 0, false
	}
	return uint64(st.Dev), true
}

func existingAncestor(p string) string {
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// removableWarning says when dir is not on a removable device. The bundle
// belongs on a stick kept away from the server; a bundle left on the
// server's own disk burns with it. Unknown devices (overlay, tmpfs,
// network filesystems) get a softer note rather than an error.
func removableWarning(dir string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(existingAncestor(dir), &st); err != nil {
		return fmt.Sprintf("cannot tell which device holds %s (%v): make sure it is a removable medium kept away from the server", dir, err)
	}
	dev := uint64(st.Dev)
	maj, min := devMajor(dev), devMinor(dev)
	removable, known := blockRemovable(fmt.Sprintf("%d:%d", maj, min), 0)
	switch {
	case !known:
		return fmt.Sprintf("cannot tell whether %s is on a removable device (device %d:%d is not a block device in %s): make sure it is a USB stick or similar kept away from the server", dir, maj, min, sysRoot)
	case !removable:
		return fmt.Sprintf("%s is not on a removable device (block device %d:%d): copy the bundle to a USB stick kept away from the server, then delete this copy", dir, maj, min)
	}
	return ""
}

// blockRemovable follows /sys/dev/block/MAJ:MIN to its disk and reads its
// removable flag. A partition's disk is its parent directory; a
// device-mapper or md device (LUKS on a stick) is removable when a device
// under it is. USB disks often report removable=0, so a device reached
// through a USB bus counts too.
func blockRemovable(majmin string, depth int) (removable, known bool) {
	if depth > 8 {
		return false, false
	}
	link := filepath.Join(sysRoot, "dev", "block", majmin)
	real, err := filepath.EvalSymlinks(link)
	if err != nil {
		return false, false
	}
	if strings.Contains(real, "/usb") {
		return true, true
	}
	disk := real
	if _, err := os.Stat(filepath.Join(real, "partition")); err == nil {
		disk = filepath.Dir(real)
	}
	if b, err := os.ReadFile(filepath.Join(disk, "removable")); err == nil && strings.TrimSpace(string(b)) == "1" {
		return true, true
	}
	slaves, _ := os.ReadDir(filepath.Join(real, "slaves"))
	for _, s := range slaves {
		b, err := os.ReadFile(filepath.Join(real, "slaves", s.Name(), "dev"))
		if err != nil {
			continue
		}
		if r, k := blockRemovable(strings.TrimSpace(string(b)), depth+1); k && r {
			return true, true
		}
	}
	_, err = os.Stat(filepath.Join(disk, "removable"))
	return false, err == nil || len(slaves) > 0
}

// devMajor and devMinor decode Linux's dev_t as glibc's gnu_dev_major/minor do.
func devMajor(dev uint64) uint64 { return ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xfffff000) }
func devMinor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xffffff00) }
