package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/luks2"
)

// diskPlan is every command the disk path runs, in order; built apart from
// running them so tests can check the argv without device-mapper.
type diskPlan struct {
	Open, Mount, Umount, Close []string
}

// planDisk builds the commands that unlock dev read-only with the bundle's
// keyfile (and its header backup when the disk's own header is damaged)
// and mount the filesystem read-only at mnt. Read-only all the way down:
// a drill must never change the only offsite copy — not even a journal
// replay, which ext4 would do on a "ro" mount of a dirty filesystem
// unless told noload.
func planDisk(dev, keyfile, header, mapper, fstype, mnt string) diskPlan {
	open := []string{"open", "--readonly", "--key-file", keyfile}
	if header != "" {
		open = append(open, "--header", header)
	}
	open = append(open, dev, mapper)
	opts := "ro"
	switch fstype {
	case "ext4", "ext3":
		opts = "ro,noload"
	case "xfs":
		opts = "ro,norecovery"
	}
	mount := []string{"-o", opts}
	if fstype != "" {
		mount = append(mount, "-t", fstype)
	}
	mount = append(mount, "/dev/mapper/"+mapper, mnt)
	return diskPlan{
		Open:   host.Command(tools.Cryptsetup, open...).Argv,
		Mount:  host.Command(tools.Mount, mount...).Argv,
		Umount: host.Command(tools.Umount, mnt).Argv,
		Close:  host.Command(tools.Cryptsetup, "close", mapper).Argv,
	}
}

// diskSession is an unlocked, mounted disk to be closed again.
type diskSession struct {
	d        *drill
	disk     *bundle.Disk
	plan     diskPlan
	opened   bool
	mounted  bool
	mnt      string
	reposDir string
}

// chooseDisk finds the bundle's disk the drill is about.
func chooseDisk(m *bundle.Manifest, name string) (*bundle.Disk, error) {
	switch {
	case name != "":
		d, ok := m.Disk(name)
		if !ok {
			return nil, fmt.Errorf("the bundle has no single disk %q", name)
		}
		return d, nil
	case len(m.Disks) == 1:
		return &m.Disks[0], nil
	case len(m.Disks) == 0:
		return nil, errors.New("the bundle holds no LUKS disk")
	}
	var ids []string
	for i := range m.Disks {
		ids = append(ids, m.Disks[i].ID())
	}
	return nil, fmt.Errorf("the bundle holds several disks (%s): name one", strings.Join(ids, ", "))
}

// openDisk unlocks and mounts the disk. It reads the device's LUKS header
// first, in Go: a UUID other than the bundle's means the wrong disk (stop
// before cryptsetup touches it), an unreadable or damaged header means the
// bundle's header backup is used — the case the backup exists for. The
// returned session is non-nil once something needs closing.
func (d *drill) openDisk(ctx context.Context, m *bundle.Manifest) (*diskSession, error) {
	o := d.opts
	disk, err := chooseDisk(m, o.DiskName)
	if err != nil {
		return nil, err
	}
	if o.Exec == nil {
		if os.Geteuid() != 0 {
			return nil, errors.New("--disk needs root (cryptsetup and mount); without root, drill a --mirror directory")
		}
		d.opts.Exec = host.NewLocal("drill")
	}
	dr := &DiskResult{ID: disk.ID(), Device: o.Disk, Mapper: o.Mapper}
	d.res.Disk = dr
	header := ""
	f, err := os.Open(o.Disk)
	if err != nil {
		return nil, fmt.Errorf("disk %s: %w", o.Disk, err)
	}
	h, herr := luks2.ReadHeader(f)
	f.Close()
	switch {
	case herr != nil:
		header = filepath.Join(m.Dir, disk.Header)
		dr.HeaderBackup = true
		dr.Note = fmt.Sprintf("the disk's own LUKS header cannot be read (%v): opened with the header backup", herr)
	case disk.LUKSUUID != "" && !strings.EqualFold(h.UUID, disk.LUKSUUID):
		return nil, fmt.Errorf("%s has LUKS UUID %s, but the bundle's disk %s is %s: wrong disk", o.Disk, h.UUID, disk.ID(), disk.LUKSUUID)
	case h.PrimaryErr != nil:
		header = filepath.Join(m.Dir, disk.Header)
		dr.HeaderBackup = true
		dr.LUKSUUID = h.UUID
		dr.Note = fmt.Sprintf("the disk's primary LUKS header is damaged (%v): opened with the header backup", h.PrimaryErr)
	default:
		dr.LUKSUUID = h.UUID
	}
	mnt := filepath.Join(d.work, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return nil, fmt.Errorf("mountpoint: %w", err)
	}
	s := &diskSession{d: d, disk: disk, mnt: mnt,
		plan: planDisk(o.Disk, filepath.Join(m.Dir, disk.Keyfile), header, o.Mapper, disk.FSType, mnt)}
	dr.Mountpoint = mnt
	t0 := o.Now()
	d.p.Status("unlocking %s read-only", o.Disk)
	if err := s.run(ctx, s.plan.Open); err != nil {
		return nil, fmt.Errorf("unlock %s: %w", o.Disk, err)
	}
	s.opened = true
	d.p.Status("mounting %s read-only", disk.ID())
	if err := s.run(ctx, s.plan.Mount); err != nil {
		return s, fmt.Errorf("mount: %w", err)
	}
	s.mounted = true
	dr.UnlockDuration = o.Now().Sub(t0)
	s.reposDir = filepath.Join(mnt, filepath.FromSlash(disk.ReposDir))
	return s, nil
}

func (s *diskSession) run(ctx context.Context, argv []string) error {
	s.d.res.Disk.Commands = append(s.d.res.Disk.Commands, host.QuoteArgv(argv))
	if s.d.opts.Log != nil {
		fmt.Fprintf(s.d.opts.Log, "$ %s\n", host.QuoteArgv(argv))
	}
	_, err := s.d.opts.Exec.Run(ctx, host.Cmd{Argv: argv})
	return err
}

// close unmounts and locks the disk again, whatever happened before: a
// drill must not leave the offsite disk open.
func (s *diskSession) close(ctx context.Context) error {
	var errs []error
	if s.mounted {
		if err := s.run(ctx, s.plan.Umount); err != nil {
			// Still mounted: the work directory must not be removed
			// recursively through the mount.
			s.d.keepWork = true
			errs = append(errs, fmt.Errorf("umount %s: %w", s.mnt, err))
		}
	}
	if s.opened {
		// udev may still hold the device a moment after umount.
		var err error
		for i := range 3 {
			if err = s.run(ctx, s.plan.Close); err == nil {
				break
			}
			time.Sleep(time.Duration(i+1) * 500 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cryptsetup close %s: %w (close it by hand)", s.d.opts.Mapper, err))
		}
	}
	return errors.Join(errs...)
}
