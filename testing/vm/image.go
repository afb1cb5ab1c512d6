package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// guestFiles are installed into every image; see installGuestFiles.
//
//go:embed guest
var guestFiles embed.FS

// builderVersion is part of the cache key: bump it when Build changes what
// it makes from the same recipe.
const builderVersion = "5"

// DefaultCacheDir keeps built images between runs.
const DefaultCacheDir = "/var/cache/borgkit-vm"

// DefaultMirror is the Debian mirror debootstrap fetches from (the one the
// host's own apt sources use).
const DefaultMirror = "http://deb.debian.org/debian"

// Recipe is what goes into an image. Everything borgkit provisions or runs
// on a guest must be here: guests have no network to fetch a package.
type Recipe struct {
	Suite  string
	Mirror string
	// Arch is the Debian architecture; "" is amd64 (and leaves the hash of
	// a recipe made before architectures as it was).
	Arch     string `json:",omitempty"`
	Packages []string
	// SizeMB is the root filesystem's size; the image file is sparse.
	SizeMB int
	// InitrdModules are the only modules in the lab's initrd, with their
	// dependencies: enough to find and mount the virtio root. The rest load
	// from the root filesystem, as on any Debian machine.
	InitrdModules []string
}

// DefaultRecipe is Debian 12 with what both borgkit roles need: borg, rsync,
// sshd and ssh, cryptsetup, msmtp, cron, logrotate, and a kernel.
func DefaultRecipe() Recipe {
	return Recipe{
		Suite:  "bookworm",
		Mirror: DefaultMirror,
		Packages: []string{
			"systemd", "systemd-sysv", "udev", "kmod", "iproute2", "procps",
			"openssh-server", "openssh-client", "cryptsetup-bin", "e2fsprogs",
			"borgbackup", "rsync", "msmtp", "cron", "logrotate",
			"linux-image-amd64", "initramfs-tools",
		},
		SizeMB: 4096,
		// crc32c: ext4's metadata checksums ask the crypto API for it, and
		// the initrd has no modprobe to load it on demand.
		InitrdModules: []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4"},
	}
}

// Hash names the recipe in the cache: the recipe, the files baked into the
// image and the builder's version.
func (r Recipe) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "builder %s\n", builderVersion)
	j, _ := json.Marshal(r)
	h.Write(j)
	h.Write(vminitSource)
	_ = walkGuestFiles(func(name string, data []byte) error {
		fmt.Fprintf(h, "\n%s %d\n", name, len(data))
		h.Write(data)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// debootstrapHash keys the debootstrap stage alone, so changing a file
// baked into the image does not fetch every package again.
func (r Recipe) debootstrapHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "debootstrap %s %s %s\n", r.Suite, r.Mirror, strings.Join(r.Packages, ","))
	if r.Arch != "" {
		fmt.Fprintf(h, "arch %s\n", r.Arch)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Image is a built base image in the cache. Nothing writes to it: guests
// boot overlays.
type Image struct {
	Dir    string // cache/<hash>
	Root   string // raw ext4 image of the root filesystem
	Kernel string
	Initrd string
	Recipe Recipe
	// Built is how long Build took; 0 when the image came from the cache.
	Built time.Duration
}

// Build returns the image for r under cacheDir, building it first when the
// cache does not hold it. Concurrent callers (parallel tests, two go test
// processes) wait on a lock file and share one build. Progress and the
// builders' output go to log.
func Build(ctx context.Context, cacheDir string, r Recipe, log io.Writer) (*Image, error) {
	img, err := build(ctx, cacheDir, cacheDir, r.Hash(), r, nil, log)
	if err == nil && img.Built > 0 {
		pruneCache(cacheDir, r, log)
	}
	return img, err
}

// layer adds to a configured image tree before it becomes the image; dst is
// the image's directory in the making, for files kept beside the image.
type layer struct {
	meta  any // written to ready, for the record
	apply func(ctx context.Context, tree, dst string, log io.Writer) error
}

// build makes the image named key under outDir from r's debootstrap stage
// in cacheDir, with extra (nil: none) applied after the lab's own
// configuration.
func build(ctx context.Context, cacheDir, outDir, key string, r Recipe, extra *layer, log io.Writer) (*Image, error) {
	if log == nil {
		log = io.Discard
	}
	dir := filepath.Join(outDir, key)
	img := &Image{Dir: dir, Root: filepath.Join(dir, "root.raw"), Kernel: filepath.Join(dir, "vmlinuz"),
		Initrd: filepath.Join(dir, "initrd.img"), Recipe: r}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, filepath.Join(outDir, key+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return img, nil
	}
	start := time.Now()
	fmt.Fprintf(log, "vm: building image %s in %s\n", key, dir)
	rootfs, err := debootstrap(ctx, cacheDir, r, log)
	if err != nil {
		return nil, err
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	// The configured tree is a copy: the debootstrap stage stays pristine
	// for the next recipe that differs only in the files baked in.
	tree := filepath.Join(tmp, "rootfs")
	if err := run(ctx, log, "cp", "-a", "--reflink=auto", rootfs, tree); err != nil {
		return nil, err
	}
	if err := configure(ctx, tree, r, log); err != nil {
		return nil, fmt.Errorf("configure image: %w", err)
	}
	if extra != nil {
		if err := extra.apply(ctx, tree, tmp, log); err != nil {
			return nil, err
		}
	}
	if err := bootFiles(ctx, tree, tmp, r, log); err != nil {
		return nil, err
	}
	raw := filepath.Join(tmp, "root.raw")
	// mkfs.ext4 -d fills the filesystem from the tree: no loop device, no
	// mount, so it works on a host kernel without either.
	if err := run(ctx, log, "mkfs.ext4", "-q", "-F", "-L", "borgkit-root", "-d", tree, "-E", "root_owner=0:0",
		raw, strconv.Itoa(r.SizeMB)+"M"); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(tree); err != nil {
		return nil, err
	}
	var meta []byte
	if extra != nil {
		meta, _ = json.MarshalIndent(extra.meta, "", "  ")
	} else {
		meta, _ = json.MarshalIndent(r, "", "  ")
	}
	if err := os.WriteFile(filepath.Join(tmp, "ready"), append(meta, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	img.Built = time.Since(start)
	fmt.Fprintf(log, "vm: image %s built in %s\n", key, img.Built.Round(time.Second))
	return img, nil
}

// pruneCache removes the images (with their snapshots) and debootstrap
// stages of other recipes once a new image is built: each is a gigabyte,
// and a recipe that changed will not come back. The lab's other flavours
// on r's mirror (the Pi's arm64 image, Debian 13) stay, and so does an
// image another process holds the build lock of.
func pruneCache(cacheDir string, r Recipe, log io.Writer) {
	keep := map[string]bool{r.Hash(): true, "debootstrap-" + r.debootstrapHash(): true}
	for _, f := range Flavours(r.Mirror) {
		keep[f.Hash()], keep["debootstrap-"+f.debootstrapHash()] = true, true
	}
	pruneDirs(cacheDir, keep, log)
}

// pruneDirs removes the finished cache directories in dir that keep does
// not name, each unless another process holds its lock.
func pruneDirs(dir string, keep map[string]bool, log io.Writer) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || keep[name] || strings.HasSuffix(name, ".tmp") {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, name, "ready")); err != nil {
			continue // not ours, or not finished
		}
		lock := filepath.Join(dir, name+".lock")
		f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			fmt.Fprintf(log, "vm: removing %s from the cache (another recipe)\n", name)
			_ = os.RemoveAll(filepath.Join(dir, name))
			_ = os.Remove(lock)
		}
		f.Close()
	}
}

// debootstrap runs the first stage, cached under its own key.
func debootstrap(ctx context.Context, cacheDir string, r Recipe, log io.Writer) (string, error) {
	dir := filepath.Join(cacheDir, "debootstrap-"+r.debootstrapHash())
	rootfs := filepath.Join(dir, "rootfs")
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return rootfs, nil
	}
	for _, prog := range []string{"debootstrap", "mkfs.ext4", "cp"} {
		if _, err := exec.LookPath(prog); err != nil {
			return "", fmt.Errorf("%s is needed to build the VM image (apt-get install debootstrap e2fsprogs): %w", prog, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	start := time.Now()
	argv := []string{"debootstrap", "--variant=minbase", "--components=main", "--include=" + strings.Join(r.Packages, ",")}
	foreign := r.Arch != "" && r.Arch != hostArch()
	if r.Arch != "" {
		argv = append(argv, "--arch="+r.Arch)
	}
	if foreign {
		// Another architecture's second stage runs its programs through
		// qemu-user-static, registered with binfmt_misc (F: the host's
		// interpreter, so nothing is copied into the tree). It runs apart,
		// after the tree is told not to build Debian's initrd from most
		// modules: the lab boots its own (vminit), and mkinitramfs under
		// emulation took 40 minutes of a 2-core host.
		if err := checkForeignArch(r.Arch); err != nil {
			return "", err
		}
		argv = append(argv, "--foreign")
	}
	err := run(ctx, log, append(argv, r.Suite, rootfs, r.Mirror)...)
	if err == nil && foreign {
		conf := filepath.Join(rootfs, "etc/initramfs-tools/conf.d/borgkit-vm.conf")
		if err = os.MkdirAll(filepath.Dir(conf), 0o755); err == nil {
			err = os.WriteFile(conf, []byte("# borgkit VM lab: guests boot the lab's own initrd\nMODULES=list\n"), 0o644)
		}
		if err == nil {
			err = run(ctx, log, "chroot", rootfs, "/debootstrap/debootstrap", "--second-stage")
		}
	}
	if err != nil {
		return "", fmt.Errorf("debootstrap (its log: %s): %w", filepath.Join(rootfs, "debootstrap", "debootstrap.log"), err)
	}
	// Downloaded packages are not needed in the image.
	if err := removeGlob(filepath.Join(rootfs, "var/cache/apt/archives/*.deb")); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "vm: debootstrap took %s\n", time.Since(start).Round(time.Second))
	return rootfs, os.WriteFile(filepath.Join(dir, "ready"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// configure makes the debootstrapped tree a bootable lab guest.
func configure(ctx context.Context, tree string, r Recipe, log io.Writer) error {
	m, err := MachineFor(r.Arch)
	if err != nil {
		return err
	}
	write := func(p, content string, mode os.FileMode) error {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			return err
		}
		return os.Chmod(full, mode)
	}
	files := []struct {
		path, content string
		mode          os.FileMode
	}{
		{"etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n", 0o644},
		{"etc/hostname", "borgkit-vm\n", 0o644},
		// Empty: each guest's systemd makes its own machine id at first boot.
		{"etc/machine-id", "", 0o444},
		{"etc/modules-load.d/borgkit-vm.conf", "qemu_fw_cfg\n", 0o644},
		// Hardware qemu emulates but no test uses: probing it costs seconds
		// of boot under emulation (the IDE controller alone several).
		{"etc/modprobe.d/borgkit-vm.conf", blacklist, 0o644},
		// A volatile journal spares every boot the flush to disk; what a
		// boot said is on the serial console anyway (forward_to_console).
		{"etc/systemd/journald.conf.d/borgkit-vm.conf", "[Journal]\nStorage=volatile\n", 0o644},
		{"etc/systemd/system/borgkit-vm-setup.service", mustGuestFile("borgkit-vm-setup.service"), 0o644},
		{"usr/local/sbin/borgkit-vm-setup", mustGuestFile("borgkit-vm-setup"), 0o755},
		{"etc/ssh/sshd_config.d/borgkit-vm.conf", mustGuestFile("sshd-borgkit-vm.conf"), 0o644},
	}
	for _, f := range files {
		if err := write(f.path, f.content, f.mode); err != nil {
			return err
		}
	}
	// Host keys made by openssh-server's postinst would be shared by every
	// guest; each guest gets its own from fw_cfg instead.
	if err := removeGlob(filepath.Join(tree, "etc/ssh/ssh_host_*")); err != nil {
		return err
	}
	// systemctl enable works offline in a chroot: it only makes symlinks.
	if err := run(ctx, log, "chroot", tree, "systemctl", "enable", "systemd-networkd.service", "borgkit-vm-setup.service"); err != nil {
		return err
	}
	// The first boot must not wait for a network that has no DHCP server or
	// for an ssh host key generator.
	// Nor run what a lab guest never needs; each unit costs boot time under
	// emulation.
	// The console's getty too: nobody logs in there.
	return run(ctx, log, append([]string{"chroot", tree, "systemctl", "mask", "serial-getty@" + m.Console + ".service"}, maskedUnits...)...)
}

// blacklist keeps the guest kernel from loading drivers for emulated
// hardware nothing uses.
const blacklist = `# borgkit VM lab: emulated hardware no test uses
blacklist ata_piix
blacklist ata_generic
blacklist pata_acpi
blacklist floppy
blacklist pcspkr
blacklist psmouse
blacklist serio_raw
blacklist i2c_piix4
blacklist joydev
blacklist evdev
blacklist drm
blacklist bochs
blacklist kvm
blacklist kvm_amd
blacklist kvm_intel
`

// maskedUnits are units a lab guest does without: the first boot must not
// wait for a network without DHCP, and periodic maintenance must not run
// in the middle of a test.
var maskedUnits = []string{
	"systemd-networkd-wait-online.service",
	"apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
	"fstrim.timer", "dpkg-db-backup.timer", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
	"getty@tty1.service", "systemd-pstore.service", "modprobe@drm.service",
}

// imageKernel is the version of the newest kernel in tree, the one
// bootFiles puts beside the image.
func imageKernel(tree string) (string, error) {
	kernels, err := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if err != nil || len(kernels) == 0 {
		return "", fmt.Errorf("no kernel under %s/boot (is linux-image-ARCH in the recipe?)", tree)
	}
	slices.Sort(kernels)
	return strings.TrimPrefix(filepath.Base(kernels[len(kernels)-1]), "vmlinuz-"), nil
}

// bootFiles puts the newest kernel beside the image, with the lab's own
// initrd, for qemu -kernel/-initrd: no bootloader to install or emulate.
func bootFiles(ctx context.Context, tree, dst string, r Recipe, log io.Writer) error {
	kver, err := imageKernel(tree)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(tree, "boot", "vmlinuz-"+kver))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dst, "vmlinuz"), b, 0o644); err != nil {
		return err
	}
	m, err := MachineFor(r.Arch)
	if err != nil {
		return err
	}
	init, err := buildInit(ctx, dst, m.GOARCH, log)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Join(dst, "vminit-src"))
	defer os.Remove(init)
	return makeInitrd(tree, kver, r.InitrdModules, init, filepath.Join(dst, "initrd.img"))
}

func mustGuestFile(name string) string {
	b, err := guestFiles.ReadFile("guest/" + name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func walkGuestFiles(fn func(name string, data []byte) error) error {
	entries, err := guestFiles.ReadDir("guest")
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := guestFiles.ReadFile("guest/" + e.Name())
		if err != nil {
			return err
		}
		if err := fn(e.Name(), b); err != nil {
			return err
		}
	}
	return nil
}

func removeGlob(pattern string) error {
	m, err := filepath.Glob(pattern)
	if err != nil {
		return err
	}
	for _, p := range m {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// run runs argv on the host, its output to log; the error carries the
// command and the tail of its output.
func run(ctx context.Context, log io.Writer, argv ...string) error {
	return runEnv(ctx, log, nil, argv...)
}

// runEnv is run with env added to the environment.
func runEnv(ctx context.Context, log io.Writer, env []string, argv ...string) error {
	var tail bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	w := io.MultiWriter(log, &tail)
	cmd.Stdout, cmd.Stderr = w, w
	// debootstrap asks nothing, but a package's maintainer script must
	// never wait on a terminal.
	cmd.Env = append(append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"), env...)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w%s", strings.Join(argv, " "), err, lastLines(tail.Bytes(), 10))
	}
	return nil
}

func lastLines(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n\t" + strings.Join(lines, "\n\t")
}

// lockFile takes an exclusive flock on path, waiting while ctx allows.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s (another build): %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
