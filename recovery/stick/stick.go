// Package stick puts the recovery bundle on an encrypted USB stick: LUKS2
// on the whole device the user named (with the guard the offsite disk has:
// a device carrying anything is refused unless the user named it to be
// wiped too), a passphrase a person types, an ext4 filesystem inside, the
// bundle written and verified there, and the stick closed again. The
// runbook's first step opens it with cryptsetup on any Linux machine.
package stick

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
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
	// FormatArgs are extra luksFormat arguments (a lab's cheaper KDF).
	FormatArgs []string
	// Status reports each phase (may be nil).
	Status func(format string, args ...any)
}

// Write formats the stick, opens it, mounts it on a private directory and
// calls write with the bundle directory and what the bundle should record
// of the stick; then it unmounts, closes, and proves the passphrase opens
// the stick's header. h is the machine the stick is plugged into.
func Write(ctx context.Context, h host.Host, o Options, write func(ctx context.Context, dir string, info bundle.Stick) error) (*bundle.Stick, error) {
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
	info := &bundle.Stick{FSUUID: uuid.NewString(), Mapper: Mapper, Dir: BundleDir}
	f := &steps.LUKSFormat{Device: o.Device, Allowed: true, Wipe: o.Wipe, FormatArgs: o.FormatArgs,
		FSType: "ext4", FSUUID: info.FSUUID, Mapper: Mapper,
		Key: func(context.Context) ([]byte, error) { return o.Passphrase, nil }}
	c, err := f.Check(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("stick %s: %w", o.Device, err)
	}
	switch c.Action {
	case plan.Create:
	case plan.OK:
		if o.Wipe {
			break // an old stick with the same passphrase: start afresh
		}
		return nil, fmt.Errorf("stick %s: it is already a LUKS volume this passphrase opens; name it with --wipe %s too to start it afresh", o.Device, o.Device)
	default:
		if o.Wipe {
			return nil, fmt.Errorf("stick %s: %s", o.Device, c.Reason)
		}
		return nil, fmt.Errorf("stick %s: %s. If it is the stick and what it holds may go, name it with --wipe %s too", o.Device, c.Reason, o.Device)
	}
	status("formatting %s as LUKS2 and making an ext4 filesystem inside", o.Device)
	if err := f.Apply(ctx, h); err != nil {
		return nil, fmt.Errorf("stick %s: %w", o.Device, err)
	}
	res, err := h.Run(ctx, host.Command(tools.Cryptsetup, "luksUUID", o.Device))
	if err != nil {
		return nil, fmt.Errorf("stick %s: luksUUID: %w", o.Device, err)
	}
	info.LUKSUUID = strings.TrimSpace(string(res.Stdout))

	if err := mounted(ctx, h, o.Device, o.Passphrase, func(mnt string) error {
		status("writing the bundle onto the stick")
		return write(ctx, path.Join(mnt, BundleDir), *info)
	}); err != nil {
		return nil, err
	}
	// What the person will do: type the passphrase at cryptsetup's prompt
	// (one line), which --test-passphrase checks without device-mapper.
	cmd := host.Command(tools.Cryptsetup, "open", "--test-passphrase", o.Device)
	cmd.Stdin = bytes.NewReader(append(append([]byte(nil), o.Passphrase...), '\n'))
	if _, err := h.Run(ctx, cmd); err != nil {
		return nil, fmt.Errorf("stick %s: the passphrase does not open it after writing: %w", o.Device, err)
	}
	return info, nil
}

// mounted opens the stick, mounts its filesystem on a private directory
// under /run, runs fn there, and unmounts and closes whatever happens.
func mounted(ctx context.Context, h host.Host, dev string, pass []byte, fn func(mnt string) error) (err error) {
	open := host.Command(tools.Cryptsetup, "open", "--key-file", "-", dev, Mapper)
	open.Stdin = bytes.NewReader(pass)
	if _, err := h.Run(ctx, open); err != nil {
		return fmt.Errorf("stick %s: open: %w", dev, err)
	}
	bg := context.WithoutCancel(ctx)
	defer func() {
		if _, cerr := h.Run(bg, host.Command(tools.Cryptsetup, "close", Mapper)); cerr != nil && err == nil {
			err = fmt.Errorf("stick %s: close: %w", dev, cerr)
		}
	}()
	res, err := h.Run(ctx, host.Command(tools.Mktemp, "-d", "/run/borgkit-stick.XXXXXX"))
	if err != nil {
		return fmt.Errorf("stick %s: a mountpoint: %w", dev, err)
	}
	mnt := strings.TrimSpace(string(res.Stdout))
	defer func() { _ = h.Remove(bg, mnt) }()
	if _, err := h.Run(ctx, host.Command(tools.Mount, "-t", "ext4", "-o", "nodev,nosuid,noexec", "/dev/mapper/"+Mapper, mnt)); err != nil {
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
