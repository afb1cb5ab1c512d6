package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The lab's fixed facts: the appliance's two hosts on their own /24, and
// the disks a real site would have, with fixed UUIDs and serials so the
// site config can name them before they exist.
const (
	ServerName     = "john-ai"
	OffsiteName    = "pi"
	ServerAddress  = "10.232.0.1"
	OffsiteAddress = "10.232.0.2"

	// USBSerial is john-ai's USB backup disk; USBUUID the ext4 on it.
	USBSerial = "borgkit-usb-backup"
	USBUUID   = "3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f"
	// PiDiskSerial is the Pi's backup disk (LUKS2 after provisioning);
	// PiFSUUID the ext4 inside the LUKS volume.
	PiDiskSerial = "borgkit-pi-backup"
	PiFSUUID     = "b6e1f0a2-5c3d-4e8f-a1b2-c3d4e5f60718"
)

// PairConfig says where a Pair lives and how it runs.
type PairConfig struct {
	// Image is the server's, and the pi's unless OffsiteImage is set (an
	// arm64 pi beside an amd64 john-ai).
	Image        *Image
	OffsiteImage *Image
	Dir          string
	Accel        string
	// DiskMB sizes the two backup disks (default 1024; the files are sparse).
	DiskMB int
	Log    io.Writer
	// SnapshotCache keeps a pair just after its first boot, in a
	// directory named by everything the snapshot depends on (the image, the
	// qemu version, the machine). Pairs resume from it in seconds instead
	// of booting for a minute or more under emulation; when it is missing,
	// NewPair makes it first. "" boots every time.
	SnapshotCache string
	// ServerOnly leaves the pi out, for scenarios of john-ai alone.
	ServerOnly bool
}

// Pair is the appliance in two guests: john-ai with its USB disk (ext4
// with USBUUID, made on the host), and the pi with a blank disk for
// borgkit to put LUKS2 on, joined by a lab link. LoginKey logs the harness
// in as root on both. The disks are qcow2 so that a snapshot covers them.
type Pair struct {
	Server, Offsite *Guest
	Link            *Link
	LoginKey        *Key
	USB, PiDisk     Disk
	cfg             PairConfig
	restored        bool
	hostKeys        map[string]*Key // by guest name, the pi's even when ServerOnly leaves it out
}

// snapshotName is the internal snapshot of a booted pair.
const snapshotName = "booted"

// Files of a pair snapshot, relative to its directory and to a run's.
var snapshotFiles = []string{
	"login_key", "login_key.pub", "usb-backup.qcow2", "pi-backup.qcow2",
	ServerName + "/root.qcow2", ServerName + "/host_key", ServerName + "/host_key.pub",
	OffsiteName + "/root.qcow2", OffsiteName + "/host_key", OffsiteName + "/host_key.pub",
}

// NewPair makes the disks, keys and guests, or copies them from the
// snapshot; nothing runs until Boot.
func NewPair(ctx context.Context, cfg PairConfig) (*Pair, error) {
	if cfg.DiskMB == 0 {
		cfg.DiskMB = 1024
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	snapDir := ""
	if cfg.SnapshotCache != "" {
		key, err := snapshotKey(ctx, cfg)
		if err != nil {
			return nil, err
		}
		snapDir = filepath.Join(cfg.SnapshotCache, "pair-"+key)
		if err := ensureSnapshot(ctx, cfg, snapDir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	for _, n := range []string{ServerName, OffsiteName} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, n), 0o700); err != nil {
			return nil, err
		}
	}
	link, err := NewLink()
	if err != nil {
		return nil, err
	}
	p := &Pair{Link: link, cfg: cfg,
		USB:    Disk{Path: filepath.Join(cfg.Dir, "usb-backup.qcow2"), Format: "qcow2", Serial: USBSerial},
		PiDisk: Disk{Path: filepath.Join(cfg.Dir, "pi-backup.qcow2"), Format: "qcow2", Serial: PiDiskSerial}}
	hostKeys := map[string]*Key{}
	if snapDir != "" {
		for _, f := range snapshotFiles {
			if cfg.ServerOnly && (strings.HasPrefix(f, OffsiteName+"/") || f == "pi-backup.qcow2") {
				continue
			}
			if err := run(ctx, io.Discard, "cp", "--sparse=always", "--reflink=auto",
				filepath.Join(snapDir, f), filepath.Join(cfg.Dir, f)); err != nil {
				return nil, err
			}
		}
		if p.LoginKey, err = LoadKey(cfg.Dir, "login_key"); err != nil {
			return nil, err
		}
		for _, n := range []string{ServerName, OffsiteName} {
			// The pi's key comes from the snapshot even without its guest:
			// the site config pins it.
			if hostKeys[n], err = LoadKey(filepath.Join(snapDir, n), "host_key"); err != nil {
				return nil, err
			}
		}
		p.restored = true
	} else {
		for _, n := range []string{ServerName, OffsiteName} {
			if hostKeys[n], err = NewKey("root@" + n); err != nil {
				return nil, err
			}
		}
		if p.LoginKey, err = NewKey("borgkit-vm-lab"); err != nil {
			return nil, err
		}
		if err := p.LoginKey.Save(cfg.Dir, "login_key"); err != nil {
			return nil, err
		}
		if err := p.makeDisks(ctx); err != nil {
			return nil, err
		}
	}
	p.hostKeys = hostKeys
	loadvm := ""
	if p.restored {
		loadvm = snapshotName
	}
	hosts := []string{ServerAddress + "\t" + ServerName, OffsiteAddress + "\t" + OffsiteName}
	p.Server, err = NewGuest(Config{Name: ServerName, Image: cfg.Image, Dir: filepath.Join(cfg.Dir, ServerName), Index: 1,
		Link: link, End: 0, LabAddress: ServerAddress + "/24", Hosts: hosts, Disks: []Disk{p.USB},
		LoginKey: p.LoginKey, HostKey: hostKeys[ServerName], LoadVM: loadvm, Accel: cfg.Accel, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	if cfg.ServerOnly {
		return p, nil
	}
	piImage := cfg.Image
	if cfg.OffsiteImage != nil {
		piImage = cfg.OffsiteImage
	}
	p.Offsite, err = NewGuest(Config{Name: OffsiteName, Image: piImage, Dir: filepath.Join(cfg.Dir, OffsiteName), Index: 2,
		Link: link, End: 1, LabAddress: OffsiteAddress + "/24", Hosts: hosts, Disks: []Disk{p.PiDisk},
		LoginKey: p.LoginKey, HostKey: hostKeys[OffsiteName], LoadVM: loadvm, Accel: cfg.Accel, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// makeDisks makes the two backup disks. The USB disk arrives formatted,
// as the user's disk would; the pi's is blank, for borgkit's --format.
func (p *Pair) makeDisks(ctx context.Context) error {
	raw := filepath.Join(p.cfg.Dir, "usb-backup.raw")
	if err := sparseFile(raw, int64(p.cfg.DiskMB)<<20); err != nil {
		return err
	}
	defer os.Remove(raw)
	if err := run(ctx, io.Discard, "mkfs.ext4", "-q", "-F", "-L", "usb-backup", "-U", USBUUID, raw); err != nil {
		return err
	}
	if err := run(ctx, io.Discard, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, p.USB.Path); err != nil {
		return err
	}
	return run(ctx, io.Discard, "qemu-img", "create", "-q", "-f", "qcow2", p.PiDisk.Path, fmt.Sprintf("%dM", p.cfg.DiskMB))
}

// snapshotVersion is part of the snapshot key: bump it when what a
// snapshot holds changes in a way the key does not see.
const snapshotVersion = "1"

// snapshotKey names a pair snapshot by everything it must match to
// resume: qemu's version (its migration format), the image, the kernel
// command line, the machine and the disks. Only a pair of one amd64 image
// has snapshots (see Machine.VMGenID).
func snapshotKey(ctx context.Context, cfg PairConfig) (string, error) {
	m, err := MachineFor(cfg.Image.Recipe.Arch)
	if err != nil {
		return "", err
	}
	if !m.VMGenID || (cfg.OffsiteImage != nil && cfg.OffsiteImage != cfg.Image) {
		return "", fmt.Errorf("vm: a pair of %s or of two images has no snapshot; set no SnapshotCache", m.Arch)
	}
	ver, err := exec.CommandContext(ctx, m.QEMU, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", m.QEMU, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%s\n%d\n", snapshotVersion, ver, cfg.Image.Dir, m.KernelCmdline(), cfg.Accel, cfg.DiskMB)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Guests are the pair's running machines (the pi left out with ServerOnly).
func (p *Pair) Guests() []*Guest {
	if p.Offsite == nil {
		return []*Guest{p.Server}
	}
	return []*Guest{p.Server, p.Offsite}
}

// Restored says the pair resumes from the snapshot rather than booting.
func (p *Pair) Restored() bool { return p.restored }

// Boot starts the guests at once and waits for them to answer ssh.
func (p *Pair) Boot(ctx context.Context, timeout time.Duration) error {
	var fns []func() error
	for _, g := range p.Guests() {
		fns = append(fns, func() error { return g.Start(ctx) })
	}
	if err := Parallel(fns...); err != nil {
		return err
	}
	return p.WaitSSH(ctx, timeout)
}

// snapshotJob is one process's making of one snapshot, which every pair of
// the process that needs it waits for: parallel tests then resume in
// seconds instead of all booting at once on the same few cores.
type snapshotJob struct {
	done chan struct{}
	err  error
}

var (
	snapshotMu   sync.Mutex
	snapshotJobs = map[string]*snapshotJob{}
)

// ensureSnapshot makes the pair snapshot in dir unless it is there; other
// processes are kept out by a lock file, other pairs of this process wait.
func ensureSnapshot(ctx context.Context, cfg PairConfig, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return nil
	}
	snapshotMu.Lock()
	j, ok := snapshotJobs[dir]
	if !ok {
		j = &snapshotJob{done: make(chan struct{})}
		snapshotJobs[dir] = j
	}
	snapshotMu.Unlock()
	if ok {
		select {
		case <-j.done:
			return j.err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the pair snapshot: %w", ctx.Err())
		}
	}
	j.err = makeSnapshot(ctx, cfg, dir)
	close(j.done)
	return j.err
}

// makeSnapshot boots a fresh pair, saves both machines as they stand after
// boot (memory, devices and disks, in their qcow2 images), quits them and
// moves their files into dir.
func makeSnapshot(ctx context.Context, cfg PairConfig, dir string) error {
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return nil // another process made it meanwhile
	}
	start := time.Now()
	work := dir + ".build"
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fresh := cfg
	fresh.Dir, fresh.SnapshotCache, fresh.ServerOnly = work, "", false
	p, err := NewPair(ctx, fresh)
	if err != nil {
		return err
	}
	defer p.Close(false)
	if err := p.Boot(ctx, 10*time.Minute); err != nil {
		return fmt.Errorf("boot the pair to snapshot: %w", err)
	}
	booted := time.Since(start)
	var fns []func() error
	for _, g := range p.Guests() {
		fns = append(fns, func() error {
			// The page cache is in the snapshot anyway; sync only keeps the
			// disk images tidy.
			if _, err := g.Run(ctx, "sync"); err != nil {
				return err
			}
			if err := g.SaveVM(ctx, snapshotName); err != nil {
				return err
			}
			return g.Quit(ctx)
		})
	}
	if err := Parallel(fns...); err != nil {
		return err
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	for _, f := range snapshotFiles {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tmp, f)), 0o700); err != nil {
			return err
		}
		if err := run(ctx, io.Discard, "cp", "--sparse=always", "--reflink=auto", filepath.Join(work, f), filepath.Join(tmp, f)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "ready"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Log, "vm: pair snapshot made in %s (boot %s) in %s\n", time.Since(start).Round(100*time.Millisecond),
		booted.Round(100*time.Millisecond), dir)
	return nil
}

// WaitSSH waits for every guest of the pair.
func (p *Pair) WaitSSH(ctx context.Context, timeout time.Duration) error {
	var fns []func() error
	for _, g := range p.Guests() {
		fns = append(fns, func() error { return g.WaitSSH(ctx, timeout) })
	}
	return Parallel(fns...)
}

// Close kills both guests and removes their overlays (keep: leaves them).
func (p *Pair) Close(keep bool) error {
	var errs []error
	for _, g := range []*Guest{p.Server, p.Offsite} {
		if g != nil {
			errs = append(errs, g.Close(keep))
		}
	}
	return errors.Join(errs...)
}

// Parallel runs fns at once and joins their errors.
func Parallel(fns ...func() error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func sparseFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SiteConfig is the lab's borgkit.yaml: john-ai with one encrypted repo of
// /srv/data on its USB disk, mirrored to the pi, whose LUKS disk is
// unlocked with the key from john-ai. Both host keys are pinned. Every
// schedule is off so no cron job runs in the middle of a test, and alerts
// are appended to /var/mail/borgkit-lab by tee, where a test can read them.
//
// The USB disk's device timeout is 90s where the example config has 10s:
// under emulation udev reaches the disk later than 10s into the boot, the
// mount is then given up for good, and job sync refuses to run on the
// unmounted disk. With nofail the timeout never holds up the boot.
func (p *Pair) SiteConfig() []byte {
	key := func(name string) string { return strings.TrimSpace(string(p.hostKeys[name].AuthorizedKey)) }
	return fmt.Appendf(nil, `%[1]shosts:
  - name: %[2]s
    role: server
    address: %[3]s
    ssh:
      host_public_key: %[4]s
    disks:
      - name: usb-backup
        uuid: %[5]s
        mountpoint: /mnt/backup
        options: [nofail, x-systemd.device-timeout=90s]
        backup: true
    repos:
      - name: data
        path: /mnt/backup/data
        sources: [/srv/data]
        encryption: repokey-blake2
        canary: /srv/data/canary
    mirrors:
      - name: offsite
        host: %[6]s
        path: /mnt/backup
    schedules:
      nightly: "off"
      sync: "off"
      stale: "off"
      check: "off"
      verify: "off"
      restore_test: "off"
      summary: "off"
  - name: %[6]s
    role: offsite
    address: %[7]s
    ssh:
      host_public_key: %[8]s
    disks:
      - name: backup
        device: %[9]s
        uuid: %[10]s
        mountpoint: /mnt/backup
        options: [nofail]
        backup: true
        luks:
          key_host: %[2]s
    unlock:
      server: %[2]s
      retry: 45s
    schedules:
      watchdog: "off"
`, LabHeader(), ServerName, ServerAddress, key(ServerName), USBUUID, OffsiteName, OffsiteAddress, key(OffsiteName),
		p.PiDisk.ByID(), PiFSUUID)
}

// LabHeader is the top of every lab config, up to the hosts: the site,
// alerts appended to LabMail by tee, and the retention.
func LabHeader() string {
	return fmt.Sprintf(`version: 1
site: vm-lab
alerts:
  to: root@localhost
  from: root@localhost
  sendmail: [/usr/bin/tee, -a, %s]
retention:
  daily: 3
  weekly: 2
  monthly: 6
`, LabMail)
}

// LabMail is where the lab's alerts land on each guest.
const LabMail = "/var/mail/borgkit-lab"
