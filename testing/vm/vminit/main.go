//go:build linux

// Command vminit is the VM lab's initrd: the /init that finds the root
// disk and hands over to systemd. Debian's initramfs-tools start udev and
// run a shell-script pipeline, which takes 10–15 s of every boot under
// emulation; this loads the few modules the virtio root needs, mounts it
// and execs /sbin/init, in well under a second. It uses only the standard
// library so the image builder can compile it on its own.
//
// The initrd holds, besides /init, the modules to load in /modules (one
// .ko path per line of /modules/order, dependencies first) and
// /dev/console, which the kernel opens for init's stdio.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if err := boot(); err != nil {
		fmt.Fprintf(os.Stderr, "vminit: %v\n", err)
		// Nothing more can be done from here; the harness sees a guest
		// that never answers and reads this line on the serial console.
		for {
			time.Sleep(time.Hour)
		}
	}
}

func boot() error {
	for _, m := range []struct{ src, dst, fs string }{{"devtmpfs", "/dev", "devtmpfs"}, {"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	if err := loadModules("/modules/order"); err != nil {
		return err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	root, flags := "/dev/vda", uintptr(syscall.MS_RDONLY)
	for _, f := range strings.Fields(string(cmdline)) {
		switch {
		case strings.HasPrefix(f, "root="):
			root = strings.TrimPrefix(f, "root=")
		case f == "rw":
			flags &^= syscall.MS_RDONLY
		}
	}
	// The disk appears once virtio_blk has probed it, asynchronously.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(root); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("root device %s did not appear", root)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.MkdirAll("/root", 0o755); err != nil {
		return err
	}
	if err := syscall.Mount(root, "/root", "ext4", flags, ""); err != nil {
		return fmt.Errorf("mount %s: %w", root, err)
	}
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if err := syscall.Mount(d, "/root"+d, "", syscall.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s: %w", d, err)
		}
	}
	// switch_root: the new root over /, chroot into it, exec its init.
	if err := syscall.Chdir("/root"); err != nil {
		return err
	}
	if err := syscall.Mount(".", "/", "", syscall.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move root: %w", err)
	}
	if err := syscall.Chroot("."); err != nil {
		return err
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	return syscall.Exec("/sbin/init", append([]string{"/sbin/init"}, os.Args[1:]...), os.Environ())
}

// loadModules loads each module named in the order file, in order.
func loadModules(order string) error {
	f, err := os.Open(order)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		if err := loadModule("/modules/" + name); err != nil {
			return fmt.Errorf("load %s: %w", name, err)
		}
	}
	return sc.Err()
}

// loadModule hands the module's image to init_module(2); the older call
// has a number in package syscall, finit_module does not.
func loadModule(path string) error {
	img, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	params := []byte{0}
	_, _, errno := syscall.Syscall(syscall.SYS_INIT_MODULE, uintptr(unsafe.Pointer(&img[0])), uintptr(len(img)), uintptr(unsafe.Pointer(&params[0])))
	if errno != 0 && errno != syscall.EEXIST {
		return errno
	}
	return nil
}
