// Package stick puts the recovery bundle on an encrypted USB stick: a GPT
// on the whole device the user named (with the guard the offsite disk has:
// a device carrying anything is refused unless the user named it to be
// wiped too), a small unencrypted kit partition with what a bare machine
// needs to open the rest (Debian's packages, borgkit, a README: nothing
// secret), and a LUKS2 partition with a passphrase a person types and an
// ext4 filesystem holding the bundle. The bundle is written and verified
// there and the stick closed again.
package stick

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/recovery/bundle"
)

// BundleDir is the bundle's directory on the stick's filesystem (its root
// holds lost+found, and a bundle wants a directory of its own).
const BundleDir = "borgkit-recovery"

// Mapper is the device-mapper name the runbook opens the stick as.
const Mapper = "borgkit-stick"

// KitLabel names the kit partition (its ext4 label and GPT name), so a
// person looking at the stick with lsblk or a file manager sees what it is.
const KitLabel = "BORGKIT-KIT"

// MinPassphrase is the shortest passphrase accepted: it guards every key
// of the site, and nothing rate-limits a guess at a stolen stick.
const MinPassphrase = 12

// Options say which device and how.
type Options struct {
	// Device is the whole stick as the user named it (--encrypt).
	Device string
	// Wipe is true when the user named Device again to erase what it
	// carries (--wipe DEVICE).
	Wipe bool
	// Passphrase is what the user typed, without the line end.
	Passphrase []byte
	// KitBytes is what the kit partition must hold (the packages and
	// builds); it is sized from it.
	KitBytes int64
	// FormatArgs are extra luksFormat arguments (a lab's cheaper KDF).
	FormatArgs []string
	// Status reports each phase (may be nil).
	Status func(format string, args ...any)
}

// KitPartSize is the kit partition's size for kit bytes of packages and
// builds: ext4's inode tables and journal take about a tenth of a small
// filesystem, and the README and KIT.sha256 a little more.
func KitPartSize(kit int64) int64 {
	return kit + kit/8 + 16*mib
}

// Write lays out the stick, formats both partitions, mounts them on
// private directories and calls write with the bundle directory (inside
// the LUKS partition), the kit partition's root and what the bundle should
// record of the stick; then it unmounts, closes, and proves the passphrase
// opens the stick's header. h is the machine the stick is plugged into.
func Write(ctx context.Context, h host.Host, o Options, write func(ctx context.Context, dir, kitDir string, info bundle.Stick) error) (*bundle.Stick, error) {
	status := o.Status
	if status == nil {
		status = func(string, ...any) {}
	}
	if !h.Live() {
		return nil, errors.New("an encrypted stick is a block device of this machine: not with --root's tree as the target")
	}
	if len(bytes.TrimSpace(o.Passphrase)) < MinPassphrase {
		return nil, fmt.Errorf("the stick's passphrase must be at least %d characters: it guards every key of the site", MinPassphrase)
	}
	if bytes.ContainsAny(o.Passphrase, "\n\r") {
		return nil, errors.New("the stick's passphrase is one line: cryptsetup stops at a line end when it is typed")
	}
	if err := notInUse(ctx, h, o.Device); err != nil {
		return nil, err
	}
	if err := guard(ctx, h, o); err != nil {
		return nil, err
	}
	info := &bundle.Stick{FSUUID: uuid.NewString(), Mapper: Mapper, Dir: BundleDir, KitLabel: KitLabel, KitFSUUID: uuid.NewString()}
	status("partitioning %s: %s (unencrypted, no secrets) and a LUKS2 partition for the bundle", o.Device, KitLabel)
	kitPart, luksPart, err := Partition(ctx, h, o.Device, KitPartSize(o.KitBytes))
	if err != nil {
		return nil, fmt.Errorf("stick %s: %w", o.Device, err)
	}
	status("making the ext4 filesystem %s on %s", KitLabel, kitPart)
	if _, err := h.Run(ctx, host.Command(tools.Mkfs, "-t", "ext4", "-q", "-m", "0", "-L", KitLabel, "-U", info.KitFSUUID, kitPart)); err != nil {
		return nil, fmt.Errorf("stick %s: mkfs %s: %w", o.Device, kitPart, err)
	}
	// The partition is new and ours: what a wipefs finds there is an older
	// layout's leftover at the same offset.
	f := &steps.LUKSFormat{Device: luksPart, Allowed: true, Wipe: true, FormatArgs: o.FormatArgs,
		FSType: "ext4", FSUUID: info.FSUUID, Mapper: Mapper,
		Key: func(context.Context) ([]byte, error) { return o.Passphrase, nil }}
	status("formatting %s as LUKS2 and making an ext4 filesystem inside", luksPart)
	if err := f.Apply(ctx, h); err != nil {
		return nil, fmt.Errorf("stick %s: %w", o.Device, err)
	}
	res, err := h.Run(ctx, host.Command(tools.Cryptsetup, "luksUUID", luksPart))
	if err != nil {
		return nil, fmt.Errorf("stick %s: luksUUID: %w", o.Device, err)
	}
	info.LUKSUUID = strings.TrimSpace(string(res.Stdout))

	err = mountedAt(ctx, h, kitPart, func(kitMnt string) error {
		return mounted(ctx, h, luksPart, o.Passphrase, func(mnt string) error {
			status("writing the bundle onto the stick")
			return write(ctx, path.Join(mnt, BundleDir), kitMnt, *info)
		})
	})
	if err != nil {
		return nil, err
	}
	// What the person will do: type the passphrase at cryptsetup's prompt
	// (one line), which --test-passphrase checks without device-mapper.
	cmd := host.Command(tools.Cryptsetup, "open", "--test-passphrase", luksPart)
	cmd.Stdin = bytes.NewReader(append(append([]byte(nil), o.Passphrase...), '\n'))
	if _, err := h.Run(ctx, cmd); err != nil {
		return nil, fmt.Errorf("stick %s: the passphrase does not open it after writing: %w", o.Device, err)
	}
	return info, nil
}

// guard is the offsite disk's rule for the whole stick: blank, or named
// to be wiped.
func guard(ctx context.Context, h host.Host, o Options) error {
	f := &steps.LUKSFormat{Device: o.Device, Allowed: true, Wipe: o.Wipe,
		Key: func(context.Context) ([]byte, error) { return o.Passphrase, nil }}
	c, err := f.Check(ctx, h)
	if err != nil {
		return fmt.Errorf("stick %s: %w", o.Device, err)
	}
	switch c.Action {
	case plan.Create:
		return nil
	case plan.OK:
		if o.Wipe {
			return nil // an old stick with the same passphrase: start afresh
		}
		return fmt.Errorf("stick %s: it is already a LUKS volume this passphrase opens; name it with --wipe %s too to start it afresh", o.Device, o.Device)
	}
	if o.Wipe {
		return fmt.Errorf("stick %s: %s", o.Device, c.Reason)
	}
	return fmt.Errorf("stick %s: %s. If it is the stick and what it holds may go, name it with --wipe %s too", o.Device, c.Reason, o.Device)
}

// Partition erases dev's signatures and writes the stick's GPT (a kit
// partition of kitSize bytes, the LUKS partition on the rest), has the
// kernel read it, and returns the two partitions' device nodes. Only
// guard's approval leads here.
func Partition(ctx context.Context, h host.Host, dev string, kitSize int64) (kitPart, luksPart string, err error) {
	size, err := blockdevInt(ctx, h, "--getsize64", dev)
	if err != nil {
		return "", "", err
	}
	ss, err := blockdevInt(ctx, h, "--getss", dev)
	if err != nil {
		return "", "", err
	}
	l, err := layoutGPT(size, int(ss), kitSize, uuid.New(), uuid.New(), uuid.New())
	if err != nil {
		return "", "", err
	}
	if _, err := h.Run(ctx, host.Command(tools.Wipefs, "--all", "--quiet", dev)); err != nil {
		return "", "", fmt.Errorf("wipefs --all: %w", err)
	}
	for _, w := range []struct {
		at   int64
		data []byte
	}{{0, l.Primary}, {l.BackupAt, l.Backup}} {
		c := host.Command(tools.Dd, "of="+dev, "bs="+strconv.FormatInt(ss, 10), "seek="+strconv.FormatInt(w.at/ss, 10),
			"iflag=fullblock", "conv=notrunc,fsync", "status=none")
		c.Stdin = bytes.NewReader(w.data)
		if _, err := h.Run(ctx, c); err != nil {
			return "", "", fmt.Errorf("write the partition table: %w", err)
		}
	}
	// The kernel reads the table itself (BLKRRPART); a kernel built
	// without GPT support (some containers' hosts) is told the partitions
	// by partx, which reads the table in userspace. One of the two is
	// enough; lsblk below says whether the partitions are there.
	_, rrErr := h.Run(ctx, host.Command(tools.Blockdev, "--rereadpt", dev))
	_, pxErr := h.Run(ctx, host.Command(tools.Partx, "--update", dev))
	// udev makes the by-uuid links the runbook names; a machine without
	// udev (a container) has the kernel's nodes all the same.
	_, _ = h.Run(ctx, host.Command(tools.Udevadm, "settle"))
	res, err := h.Run(ctx, host.Command(tools.Lsblk, "--noheadings", "--raw", "--paths", "--output", "NAME,TYPE", dev))
	if err != nil {
		return "", "", fmt.Errorf("lsblk: %w", err)
	}
	var parts []string
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "part" {
			parts = append(parts, f[0])
		}
	}
	if len(parts) != 2 {
		return "", "", fmt.Errorf("after writing two partitions lsblk shows %d %q (blockdev --rereadpt: %v; partx --update: %v; a loop device needs losetup --partscan)", len(parts), parts, rrErr, pxErr)
	}
	for _, p := range parts {
		if _, err := h.Run(ctx, host.Command(tools.Wipefs, "--all", "--quiet", p)); err != nil {
			return "", "", fmt.Errorf("wipefs --all %s: %w", p, err)
		}
	}
	return parts[0], parts[1], nil
}

func blockdevInt(ctx context.Context, h host.Host, flag, dev string) (int64, error) {
	res, err := h.Run(ctx, host.Command(tools.Blockdev, flag, dev))
	if err != nil {
		return 0, fmt.Errorf("blockdev %s: %w", flag, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(res.Stdout)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("blockdev %s %s: %w", flag, dev, err)
	}
	return n, nil
}

// mounted opens the LUKS partition dev, mounts its filesystem on a
// private directory under /run, runs fn there, and unmounts and closes
// whatever happens.
func mounted(ctx context.Context, h host.Host, dev string, pass []byte, fn func(mnt string) error) (err error) {
	open := host.Command(tools.Cryptsetup, "open", "--key-file", "-", dev, Mapper)
	open.Stdin = bytes.NewReader(pass)
	if _, err := h.Run(ctx, open); err != nil {
		return fmt.Errorf("stick %s: open: %w", dev, err)
	}
	defer func() {
		if _, cerr := h.Run(context.WithoutCancel(ctx), host.Command(tools.Cryptsetup, "close", Mapper)); cerr != nil && err == nil {
			err = fmt.Errorf("stick %s: close: %w", dev, cerr)
		}
	}()
	return mountedAt(ctx, h, "/dev/mapper/"+Mapper, fn)
}

// mountedAt mounts the ext4 filesystem on dev on a private directory under
// /run, runs fn there, and unmounts whatever happens.
func mountedAt(ctx context.Context, h host.Host, dev string, fn func(mnt string) error) (err error) {
	bg := context.WithoutCancel(ctx)
	res, err := h.Run(ctx, host.Command(tools.Mktemp, "-d", "/run/borgkit-stick.XXXXXX"))
	if err != nil {
		return fmt.Errorf("stick %s: a mountpoint: %w", dev, err)
	}
	mnt := strings.TrimSpace(string(res.Stdout))
	defer func() { _ = h.Remove(bg, mnt) }()
	if _, err := h.Run(ctx, host.Command(tools.Mount, "-t", "ext4", "-o", "nodev,nosuid,noexec", dev, mnt)); err != nil {
		return fmt.Errorf("stick %s: mount: %w", dev, err)
	}
	defer func() {
		// umount flushes the filesystem; an error here means the bundle may
		// not be on the stick.
		if _, uerr := h.Run(bg, host.Command(tools.Umount, mnt)); uerr != nil && err == nil {
			err = fmt.Errorf("stick %s: umount: %w", dev, uerr)
		}
	}()
	return fn(mnt)
}

// notInUse refuses a device that is mounted (itself or a partition) or
// holds a swap or a device-mapper volume in use: formatting it would pull
// a filesystem from under a running system.
func notInUse(ctx context.Context, h host.Host, dev string) error {
	if _, err := h.Lstat(ctx, dev); err != nil {
		return fmt.Errorf("stick %s: %w", dev, err)
	}
	res, err := h.Run(ctx, host.Command(tools.Lsblk, "--noheadings", "--raw", "--output", "NAME,TYPE,MOUNTPOINT", dev))
	if err != nil {
		return fmt.Errorf("stick %s: lsblk: %w", dev, err)
	}
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if i == 0 && len(f) >= 2 && f[1] == "part" {
			return fmt.Errorf("stick %s is a partition: name the whole stick (its disk), which borgkit encrypts whole", dev)
		}
		if len(f) >= 3 && f[2] != "" {
			return fmt.Errorf("stick %s: %s is mounted at %s: unmount it first (and make sure it is the stick)", dev, f[0], f[2])
		}
		if i > 0 && len(f) >= 2 && f[1] == "crypt" {
			return fmt.Errorf("stick %s: it holds the open volume %s: close it first", dev, f[0])
		}
	}
	return nil
}
