package vm

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// vminitSource is the lab's /init (package vminit), compiled at image
// build time with nothing but the standard library.
//
//go:embed vminit/main.go
var vminitSource []byte

// buildInit compiles vminit into dir/init: a static binary, so the initrd
// needs no libc.
func buildInit(ctx context.Context, dir, goarch string, log io.Writer) (string, error) {
	src := filepath.Join(dir, "vminit-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module vminit\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), vminitSource, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "init")
	cmd := []string{"go", "-C", src, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "."}
	if err := runEnv(ctx, log, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + goarch, "GOTOOLCHAIN=local", "GOFLAGS="}, cmd...); err != nil {
		return "", fmt.Errorf("build the lab's init: %w", err)
	}
	return out, nil
}

// moduleOrder resolves names (virtio_blk, ext4, ...) against the kernel's
// modules.dep into .ko paths, each after the modules it needs. A module
// the kernel has built in (modules.builtin beside modules.dep: virtio_pci
// on some architectures) needs no loading and is left out.
func moduleOrder(depFile string, names []string) ([]string, error) {
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(depFile), "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(b)) {
			builtin[modName(line)] = true
		}
	}
	f, err := os.Open(depFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{} // path -> dependency paths
	byName := map[string]string{} // module name -> path
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[modName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var order []string
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		// modules.dep lists the deepest dependency last.
		d := deps[p]
		for i := len(d) - 1; i >= 0; i-- {
			visit(d[i])
		}
		order = append(order, p)
	}
	for _, n := range names {
		p, ok := byName[modName(n)]
		if !ok && builtin[modName(n)] {
			continue
		}
		if !ok {
			return nil, fmt.Errorf("module %s is not in %s (built in, or not in this kernel)", n, depFile)
		}
		visit(p)
	}
	return order, nil
}

// modName is a module's canonical name: the file's base name without
// .ko(.xz), dashes as underscores, as the kernel itself names modules.
func modName(p string) string {
	b := filepath.Base(p)
	b = strings.TrimSuffix(strings.TrimSuffix(b, ".xz"), ".ko")
	return strings.ReplaceAll(b, "-", "_")
}

// makeInitrd writes the lab's initrd to out: /init, /dev/console and the
// modules of names with their dependencies, as an uncompressed newc cpio
// (nothing to decompress under emulation; qemu loads it in a blink).
func makeInitrd(tree, kernelVersion string, names []string, initBin, out string) error {
	modDir := filepath.Join(tree, "lib", "modules", kernelVersion)
	order, err := moduleOrder(filepath.Join(modDir, "modules.dep"), names)
	if err != nil {
		return err
	}
	var c cpioWriter
	for _, d := range []string{"dev", "proc", "sys", "root", "modules"} {
		c.add(d, 0o040755, 0, 0, nil)
	}
	c.add("dev/console", 0o020600, 5, 1, nil)
	init, err := os.ReadFile(initBin)
	if err != nil {
		return err
	}
	c.add("init", 0o100755, 0, 0, init)
	var list bytes.Buffer
	for _, p := range order {
		b, err := os.ReadFile(filepath.Join(modDir, p))
		if err != nil {
			return err
		}
		name := filepath.Base(p)
		if strings.HasSuffix(p, ".xz") {
			// Debian 13 ships its modules xz-compressed; the lab's init hands
			// a module to init_module(2) as it is, so it goes in plain.
			if b, err = unxz(b); err != nil {
				return fmt.Errorf("decompress %s: %w", p, err)
			}
			name = strings.TrimSuffix(name, ".xz")
		}
		c.add("modules/"+name, 0o100644, 0, 0, b)
		fmt.Fprintln(&list, name)
	}
	c.add("modules/order", 0o100644, 0, 0, list.Bytes())
	return os.WriteFile(out, c.close(), 0o644)
}

// unxz decompresses b with the host's xz (the standard library has no xz).
func unxz(b []byte) ([]byte, error) {
	cmd := exec.Command("xz", "-dc")
	cmd.Stdin = bytes.NewReader(b)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("xz -dc: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// cpioWriter builds a "newc" cpio archive, the initramfs format.
type cpioWriter struct {
	buf bytes.Buffer
	ino int
}

func (c *cpioWriter) add(name string, mode, rdevMajor, rdevMinor int, data []byte) {
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *cpioWriter) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

func (c *cpioWriter) close() []byte {
	c.add("TRAILER!!!", 0, 0, 0, nil)
	return c.buf.Bytes()
}
