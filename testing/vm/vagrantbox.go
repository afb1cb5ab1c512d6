package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// vagrantBoxVersion is part of the box's key: bump it when BuildVagrantBox
// changes what it makes from the same base image.
const vagrantBoxVersion = "2"

// VagrantBoxName is the name `make vagrant` adds the box under and the
// Vagrantfile's BORGKIT_VAGRANT_BOX selects.
const VagrantBoxName = "borgkit/bookworm-lab"

// vagrantInsecureKey is Vagrant's well-known insecure public key (Vagrant's
// keys/vagrant.pub): every box authorizes it, and `vagrant up` replaces it
// with a key of the machine's own at the first login.
const vagrantInsecureKey = "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key\n"

// vagrantBoxFiles are what the box adds to the lab's image: Vagrant's
// login, DHCP on every NIC (the lab's guests get their addresses from
// fw_cfg, a Vagrant machine from libvirt's management network) and host
// keys of each machine's own, made at its first boot (ed25519 only, the
// one the lab's sshd configuration names: an RSA key takes minutes under
// emulation).
var vagrantBoxFiles = []struct {
	path, content string
	mode          os.FileMode
}{
	{"etc/sudoers.d/vagrant", "vagrant ALL=(ALL) NOPASSWD: ALL\n", 0o440},
	{"home/vagrant/.ssh/authorized_keys", vagrantInsecureKey, 0o600},
	{"etc/systemd/network/99-borgkit-vagrant-dhcp.network", `# borgkit Vagrant box: the management network's address from libvirt's DHCP.
# Vagrant writes 50-vagrant-*.network for its private networks.
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
ClientIdentifier=mac
`, 0o644},
	{"etc/systemd/system/borgkit-vagrant-hostkeys.service", `[Unit]
Description=borgkit Vagrant box: this machine's own SSH host keys, made at its first boot
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
`, 0o644},
}

// VagrantBox is a built box: the .box file `vagrant box add` takes, and the
// image it was made from.
type VagrantBox struct {
	File  string
	Image *Image
}

// boxVagrantfile is packed into the box: Vagrant merges it under the
// user's Vagrantfile. The box boots as the lab's guests do, the kernel and
// the lab's initrd from beside its disk (direct kernel boot, no bootloader
// in the image), with its raw ext4 root on the first virtio disk.
const boxVagrantfile = `# borgkit VM lab box: direct kernel boot, the kernel and initrd ship in the box.
Vagrant.configure("2") do |config|
  config.vm.provider "libvirt" do |lv|
    lv.kernel = File.join(File.dirname(__FILE__), "vmlinuz")
    lv.initrd = File.join(File.dirname(__FILE__), "initrd.img")
    lv.cmd_line = %q(%CMDLINE%)
    lv.disk_bus = "virtio"
  end
end
`

// BuildVagrantBox returns the libvirt box made from the lab's amd64 image,
// building the image and the box first when the cache lacks them: the
// image with sudo (from Debian, installed in a chroot), a vagrant user
// with the insecure key, DHCP and first-boot host keys; then its root as
// qcow2 with the kernel, the lab's initrd and a Vagrantfile that boots
// them, in one tar.
func BuildVagrantBox(ctx context.Context, cacheDir string, log io.Writer) (*VagrantBox, error) {
	if log == nil {
		log = io.Discard
	}
	base := DefaultRecipe()
	h := sha256.New()
	fmt.Fprintf(h, "vagrant box %s\nbase %s\n", vagrantBoxVersion, base.Hash())
	for _, f := range vagrantBoxFiles {
		fmt.Fprintf(h, "%s %o %s\n", f.path, f.mode, f.content)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	// The lab's own image first: its build holds the lock that keeps two
	// processes from running the shared debootstrap stage at once.
	if _, err := Build(ctx, cacheDir, base, log); err != nil {
		return nil, err
	}
	outDir := filepath.Join(cacheDir, "vagrant")
	img, err := build(ctx, cacheDir, outDir, key, base, &layer{meta: map[string]string{"vagrant_box": vagrantBoxVersion, "base": base.Hash()},
		apply: func(ctx context.Context, tree, _ string, log io.Writer) error {
			if err := vagrantLayer(ctx, tree, log); err != nil {
				return fmt.Errorf("vagrant box layer: %w", err)
			}
			return nil
		}}, log)
	if err != nil {
		return nil, err
	}
	if img.Built > 0 {
		pruneDirs(outDir, map[string]bool{key: true}, log)
	}
	box := &VagrantBox{File: filepath.Join(img.Dir, "borgkit-bookworm.box"), Image: img}
	unlock, err := lockFile(ctx, filepath.Join(outDir, key+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(box.File); err == nil {
		return box, nil
	}
	return box, packBox(ctx, img, box.File, log)
}

// vagrantLayer makes the configured tree a Vagrant box's.
func vagrantLayer(ctx context.Context, tree string, log io.Writer) error {
	const policy = "usr/sbin/policy-rc.d"
	if err := os.WriteFile(filepath.Join(tree, policy), []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"apt-get", "update", "-q"},
		{"apt-get", "install", "-y", "-q", "--no-install-recommends", "sudo"},
		{"useradd", "--create-home", "--shell", "/bin/bash", "--user-group", "vagrant"},
	} {
		if err := inChroot(ctx, log, tree, argv...); err != nil {
			return err
		}
	}
	for _, f := range vagrantBoxFiles {
		full := filepath.Join(tree, f.path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(f.content), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(full, f.mode); err != nil {
			return err
		}
	}
	for _, argv := range [][]string{
		{"chmod", "0700", "/home/vagrant/.ssh"},
		{"chown", "-R", "vagrant:vagrant", "/home/vagrant"},
		{"systemctl", "enable", "borgkit-vagrant-hostkeys.service"},
		{"visudo", "-c", "-f", "/etc/sudoers.d/vagrant"},
	} {
		if err := inChroot(ctx, log, tree, argv...); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(tree, policy)); err != nil {
		return err
	}
	if err := removeGlob(filepath.Join(tree, "var/lib/apt/lists/*_Packages")); err != nil {
		return err
	}
	return removeGlob(filepath.Join(tree, "var/cache/apt/archives/*.deb"))
}

// packBox writes the .box: box.img (the root as qcow2), metadata.json,
// the kernel, the initrd and the box's Vagrantfile, as an uncompressed tar
// (the qcow2 is most of it and compresses little for the time it takes).
func packBox(ctx context.Context, img *Image, dst string, log io.Writer) error {
	tmp := dst + ".tmp"
	work := tmp + ".d"
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := run(ctx, log, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", img.Root, filepath.Join(work, "box.img")); err != nil {
		return err
	}
	fi, err := os.Stat(img.Root)
	if err != nil {
		return err
	}
	gb := (fi.Size() + 1<<30 - 1) >> 30
	meta, _ := json.Marshal(map[string]any{"provider": "libvirt", "format": "qcow2", "virtual_size": gb})
	m, err := MachineFor(img.Recipe.Arch)
	if err != nil {
		return err
	}
	// Without the journal on the console: Vagrant's users read the console
	// only when a boot went wrong.
	cmdline := strings.Replace(m.KernelCmdline(), " systemd.journald.forward_to_console=1", "", 1)
	for name, data := range map[string]string{
		"metadata.json": string(meta) + "\n",
		"Vagrantfile":   strings.Replace(boxVagrantfile, "%CMDLINE%", cmdline, 1),
	} {
		if err := os.WriteFile(filepath.Join(work, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	for _, f := range []string{img.Kernel, img.Initrd} {
		if err := run(ctx, log, "cp", f, work); err != nil {
			return err
		}
	}
	if err := run(ctx, log, "tar", "-C", work, "-cf", tmp, "metadata.json", "Vagrantfile", "box.img", filepath.Base(img.Kernel), filepath.Base(img.Initrd)); err != nil {
		return err
	}
	fmt.Fprintf(log, "vm: vagrant box %s\n", dst)
	return os.Rename(tmp, dst)
}
