package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Disk names.
const (
	DiskUSB = "usb-backup" // john-ai's USB backup disk at /mnt/backup
	DiskNAS = "nas"        // john-ai's second disk standing in for the NAS share, /mnt/nas
	DiskPi  = "backup"     // the Pi's disk at /mnt/backup (plain ext4: no device-mapper here)
)

// Disk returns the named disk, or nil.
func (l *Lab) Disk(name string) *Disk {
	for _, d := range l.disks {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// startDisks makes each disk an ext4 image with a random UUID (fixed UUIDs
// would make `mount UUID=` ambiguous with two labs, or a leftover, on the
// machine), attaches it and mounts it in its host's namespace.
func (l *Lab) startDisks(ctx context.Context) error {
	if err := os.Mkdir(filepath.Join(l.Dir, "disks"), 0o700); err != nil {
		return err
	}
	for _, spec := range []struct{ host, name, mp string }{
		{Server, DiskUSB, "/mnt/backup"},
		{Server, DiskNAS, "/mnt/nas"},
		{Offsite, DiskPi, "/mnt/backup"},
	} {
		d := &Disk{Name: spec.name, Host: spec.host, Mountpoint: spec.mp, UUID: uuid.NewString(),
			Image: filepath.Join(l.Dir, "disks", spec.host+"-"+spec.name+".img")}
		l.disks = append(l.disks, d)
		f, err := os.Create(d.Image)
		if err != nil {
			return err
		}
		err = f.Truncate(l.opts.DiskSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("disk image %s: %w", d.Image, err)
		}
		// -m 0: no blocks reserved for root, so the disk's fill is what
		// borg and rsync put there.
		if _, err := l.local(ctx, mkfsProg, "-q", "-F", "-m", "0", "-U", d.UUID, "-L", spec.host+"-"+spec.name, d.Image); err != nil {
			return err
		}
		if err := l.PlugDisk(d.Name); err != nil {
			return err
		}
	}
	return nil
}

// PlugDisk attaches a disk's image as a loop device and mounts it at its
// mountpoint on its host, as plugging the USB disk back in and mounting it.
func (l *Lab) PlugDisk(name string) error {
	d := l.Disk(name)
	if d == nil {
		return fmt.Errorf("lab: no disk %q", name)
	}
	if d.Device != "" {
		return fmt.Errorf("lab: disk %s is already attached as %s", name, d.Device)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := l.local(ctx, losetupProg, "--find", "--show", d.Image)
	if err != nil {
		return err
	}
	d.Device = strings.TrimSpace(string(out))
	if _, _, err := l.RunContext(ctx, d.Host, "mount", "-t", "ext4", d.Device, d.Mountpoint); err != nil {
		return err
	}
	return nil
}

// UnplugDisk unmounts a disk on its host and detaches its loop device: the
// USB disk pulled out. The image and its data stay for PlugDisk.
func (l *Lab) UnplugDisk(name string) error {
	d := l.Disk(name)
	if d == nil {
		return fmt.Errorf("lab: no disk %q", name)
	}
	if d.Device == "" {
		return fmt.Errorf("lab: disk %s is not attached", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := l.RunContext(ctx, d.Host, "umount", d.Mountpoint); err != nil {
		return err
	}
	if err := detach(ctx, l, d.Device); err != nil {
		return err
	}
	d.Device = ""
	return nil
}

// detach detaches a loop device, retrying while the kernel still holds it
// from a mount namespace that is being torn down.
func detach(ctx context.Context, l *Lab, dev string) error {
	var err error
	for range 50 {
		if !attached(dev) {
			return nil // detached already: autoclear after the last unmount
		}
		if _, err = l.local(ctx, losetupProg, "--detach", dev); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// attached tells whether a loop device has a backing file.
func attached(dev string) bool {
	_, err := os.Stat(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	return err == nil
}
