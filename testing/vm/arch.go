package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Machine is how qemu emulates one Debian architecture: the emulator, its
// machine and CPU, the serial console's name in the guest, the kernel
// package, and what a guest of it can do.
type Machine struct {
	// Arch is the Debian architecture (dpkg --print-architecture).
	Arch string
	// GOARCH builds the lab's init for it.
	GOARCH string
	QEMU   string
	// Type and CPU are qemu's -machine and -cpu under TCG.
	Type, CPU string
	// Console is the serial port's device in the guest.
	Console string
	Kernel  string // the kernel's Debian package
	// VMGenID says the machine has qemu's vmgenid device, which reseeds a
	// guest's random generator when it resumes from a snapshot; a machine
	// without it must not resume snapshots (keys made right after would
	// repeat the previous run's).
	VMGenID bool
}

// machines are the architectures the lab boots. The Raspberry Pi 4's CPU
// is a Cortex-A72, which qemu emulates without the pointer authentication
// of "max" (costly under TCG and absent on the Pi anyway).
var machines = map[string]Machine{
	"amd64": {Arch: "amd64", GOARCH: "amd64", QEMU: "qemu-system-x86_64", Type: "pc", CPU: "max", Console: "ttyS0",
		Kernel: "linux-image-amd64", VMGenID: true},
	"arm64": {Arch: "arm64", GOARCH: "arm64", QEMU: "qemu-system-aarch64", Type: "virt", CPU: "cortex-a72", Console: "ttyAMA0",
		Kernel: "linux-image-arm64"},
}

// MachineFor is the machine of a Debian architecture; "" is amd64.
func MachineFor(arch string) (Machine, error) {
	if arch == "" {
		arch = "amd64"
	}
	m, ok := machines[arch]
	if !ok {
		return Machine{}, fmt.Errorf("vm: no machine for architecture %q", arch)
	}
	return m, nil
}

// KernelCmdline boots the root overlay. Besides the console: no fsck of a
// root that only qemu writes, no CPU-bug mitigations (each costs emulated
// instructions), kernel messages from warnings up only, and the journal
// forwarded to the console so the serial log holds what every unit said.
func (m Machine) KernelCmdline() string {
	return "root=/dev/vda rw console=" + m.Console + " fsck.mode=skip mitigations=off loglevel=4 systemd.journald.forward_to_console=1"
}

// Arm64Recipe is the Raspberry Pi's image: Debian 12 for arm64, as
// Raspberry Pi OS 64-bit is (bookworm-based), with the offsite role's
// packages and GNU time for the jobs' peak memory.
func Arm64Recipe() Recipe {
	r := DefaultRecipe()
	r.Arch = "arm64"
	r.Packages = withKernel(r.Packages, machines["arm64"].Kernel)
	r.Packages = append(r.Packages, "time")
	return r
}

// TrixieRecipe is Debian 13 for amd64: borg 1.4, systemd 257, cryptsetup
// 2.7, kernel 6.12 with xz-compressed modules.
func TrixieRecipe() Recipe {
	r := DefaultRecipe()
	r.Suite = "trixie"
	return r
}

// RescueRecipe is a stranger's bare Debian 12 machine for the offline
// restore: debootstrap's minbase with only what the lab needs to boot it
// and reach it (systemd, udev, sshd, a kernel). No borgbackup, no python3,
// no cryptsetup: the recovery kit must bring them.
func RescueRecipe() Recipe {
	r := DefaultRecipe()
	r.Packages = []string{"systemd", "systemd-sysv", "udev", "kmod", "iproute2", "openssh-server",
		"linux-image-amd64", "initramfs-tools"}
	return r
}

// withKernel replaces the kernel package in pkgs.
func withKernel(pkgs []string, kernel string) []string {
	out := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		if strings.HasPrefix(p, "linux-image-") {
			p = kernel
		}
		out = append(out, p)
	}
	return out
}

// Flavours are the lab's images, with mirror: building one keeps the
// others in the cache.
func Flavours(mirror string) []Recipe {
	rs := []Recipe{DefaultRecipe(), Arm64Recipe(), TrixieRecipe(), RescueRecipe()}
	for i := range rs {
		rs[i].Mirror = mirror
	}
	return rs
}

// binfmtNames are the binfmt_misc entries qemu-user-static registers.
var binfmtNames = map[string]string{"arm64": "qemu-aarch64", "armhf": "qemu-arm", "amd64": "qemu-x86_64"}

// checkForeignArch says what is missing for debootstrap to run arch's
// programs on this host, or nil. The host's own architecture needs
// nothing.
func checkForeignArch(arch string) error {
	if hostArch() == arch {
		return nil
	}
	name, ok := binfmtNames[arch]
	if !ok {
		return fmt.Errorf("vm: no binfmt entry known for %s", arch)
	}
	b, err := os.ReadFile(filepath.Join("/proc/sys/fs/binfmt_misc", name))
	if err != nil {
		return fmt.Errorf("vm: building a %s image needs qemu-user-static registered with binfmt_misc (apt-get install qemu-user-static binfmt-support; mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc): %w", arch, err)
	}
	if !strings.HasPrefix(string(b), "enabled") {
		return fmt.Errorf("vm: binfmt_misc entry %s is disabled (update-binfmts --enable %s)", name, name)
	}
	return nil
}

// hostArch is this machine's Debian architecture.
func hostArch() string {
	for deb, m := range machines {
		if m.GOARCH == runtime.GOARCH {
			return deb
		}
	}
	return runtime.GOARCH
}
