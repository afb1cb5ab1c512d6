package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
	"github.com/borgkit/borgkit/recovery/kit"
)

// fakeELF writes the header of an ELF executable for machine: enough for
// the kit's architecture check, which reads nothing else.
func fakeELF(t *testing.T, p string, is64 bool, machine uint16) {
	t.Helper()
	var b []byte
	if is64 {
		b = make([]byte, 64)
		b[4] = 2 // ELFCLASS64
		binary.LittleEndian.PutUint16(b[52:], 64)
		binary.LittleEndian.PutUint16(b[54:], 56)
		binary.LittleEndian.PutUint16(b[58:], 64)
	} else {
		b = make([]byte, 52)
		b[4] = 1 // ELFCLASS32
		binary.LittleEndian.PutUint16(b[40:], 52)
		binary.LittleEndian.PutUint16(b[42:], 32)
		binary.LittleEndian.PutUint16(b[46:], 40)
	}
	copy(b, "\x7fELF")
	b[5], b[6] = 1, 1                        // little endian, version 1
	binary.LittleEndian.PutUint16(b[16:], 2) // ET_EXEC
	binary.LittleEndian.PutUint16(b[18:], machine)
	binary.LittleEndian.PutUint32(b[20:], 1)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// kitBuilds is a builds directory with the other architectures' builds
// (the test binary is the amd64 one).
func kitBuilds(t *testing.T) string {
	dir := t.TempDir()
	fakeELF(t, filepath.Join(dir, "arm64", "borgkit"), true, 183) // EM_AARCH64
	fakeELF(t, filepath.Join(dir, "armhf", "borgkit"), false, 40) // EM_ARM
	return dir
}

// kitCache is what an earlier fetch left in the kit cache: two packages
// per architecture, pinned to their files.
func kitCache(t *testing.T) string {
	cache := t.TempDir()
	for _, arch := range kit.Arches {
		dir := filepath.Join(cache, kit.Release+"-"+arch)
		r := kit.Repo{Arch: arch, Suite: kit.Suite, Base: kit.Base, Mirror: kit.DefaultMirror, Wanted: kit.Wanted,
			Fetched: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC), Stanzas: map[string]string{}}
		for _, name := range kit.Wanted {
			data := []byte("not really a package: " + name + " " + arch)
			sum := sha256.Sum256(data)
			d := kit.Deb{Name: name, Version: "1.0-1", Arch: arch, File: name + "_1.0-1_" + arch + ".deb", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
			r.Debs = append(r.Debs, d)
			r.Stanzas[name] = fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nFilename: pool/main/x/%s\nSize: %d\nSHA256: %s\n", name, d.Version, arch, d.File, d.Size, d.SHA256)
			if err := os.MkdirAll(filepath.Join(dir, "archives"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "archives", d.File), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(dir, "repo.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cache
}

func makeWritable(t *testing.T, dir string) {
	if _, err := os.Stat(dir); err == nil {
		bundletest.MakeWritable(t, dir)
	}
}

// deadMirror refuses connections: a server with no network.
const deadMirror = "http://127.0.0.1:9/debian"

// --kit with no network takes the packages of the last fetch from the
// cache and says so; the bundle pins them, verify checks the pins, and the
// runbook installs them with apt from the bundle. With nothing cached the
// bundle is written without packages, saying so in a warning, bundle.json
// and the runbook.
func TestRecoveryBundleKit(t *testing.T) {
	s := bundletest.Shared(t)
	cfg := writeConfig(t, string(s.ConfigYAML))
	builds := kitBuilds(t)
	dir := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() { makeWritable(t, dir) })
	out, code := run(t, "recovery-bundle", "--config", cfg, "--root", s.Root, "--host", "john-ai", "--to", dir,
		"--kit", "--kit-cache", kitCache(t), "--kit-mirror", deadMirror, "--kit-security", deadMirror, "--builds", builds)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "offline kit for arm64: the mirror could not be reached") || !strings.Contains(out, "fetched on 2026-11-30") {
		t.Errorf("no word of the stale packages:\n%s", out)
	}
	m, err := bundle.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kit == nil || len(m.Kit.Debian) != 2 || len(m.Kit.Borgkit) != 3 || len(m.Kit.Missing) != 0 {
		t.Fatalf("kit: %+v", m.Kit)
	}
	rep, err := bundle.Verify(t.Context(), dir, bundle.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	kits := 0
	for _, it := range rep.Items {
		if it.Kind == bundle.KindKit {
			kits++
		}
	}
	if kits != 5 {
		t.Errorf("verify checked %d kit items, want 2 package sets and 3 builds:\n%+v", kits, rep.Items)
	}
	md, _ := os.ReadFile(filepath.Join(dir, bundle.RunbookMD))
	for _, want := range []string{"apt-get $APT install -y --no-install-recommends borgbackup cryptsetup-bin",
		`file:$B/kit/debian-12-$ARCH ./`, `install -m 0755 "$B/kit/borgkit/$ARCH/borgkit" /usr/local/bin/borgkit`,
		"`kit/debian-12-arm64/` | 2 Debian 12 packages for arm64"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("runbook lacks %q", want)
		}
	}

	// Nothing cached, no network: the bundle is still written, and says
	// it has no packages.
	dir2 := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() { makeWritable(t, dir2) })
	out, code = run(t, "recovery-bundle", "--config", cfg, "--root", s.Root, "--host", "john-ai", "--to", dir2,
		"--kit", "--kit-cache", t.TempDir(), "--kit-mirror", deadMirror, "--kit-security", deadMirror, "--builds", builds)
	if code != exitOK || !strings.Contains(out, "warning: NO OFFLINE PACKAGES: amd64:") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	m, err = bundle.Open(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kit == nil || len(m.Kit.Debian) != 0 || len(m.Kit.Missing) != 2 {
		t.Fatalf("kit: %+v", m.Kit)
	}
	md, _ = os.ReadFile(filepath.Join(dir2, bundle.RunbookMD))
	if !strings.Contains(string(md), "**This bundle has no packages for an offline install:** amd64:") || !strings.Contains(string(md), "apt-get update && apt-get install -y borgbackup") {
		t.Errorf("runbook:\n%s", md)
	}

	// The kit's flags without --kit are a usage error.
	if out, code := run(t, "recovery-bundle", "--to", dir2, "--builds", builds); code != exitUsage || !strings.Contains(out, "go with --kit") {
		t.Errorf("--builds without --kit: exit %d %s", code, out)
	}
}
