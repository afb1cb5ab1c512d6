package bundle_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
	"github.com/borgkit/borgkit/recovery/kit"
)

// fakeKit is one architecture's packages as a fetch leaves them in the
// cache, and the test binary as amd64's borgkit.
func fakeKit(t *testing.T) *bundle.KitInput {
	t.Helper()
	dir := t.TempDir()
	r := &kit.Repo{Arch: "amd64", Suite: kit.Suite, Base: kit.Base, Mirror: kit.DefaultMirror, Wanted: kit.Wanted,
		Fetched: fixedNow(), Stanzas: map[string]string{}, Path: dir}
	for _, name := range append([]string{"libpopt0"}, kit.Wanted...) {
		data := []byte("package " + name)
		d := kit.Deb{Name: name, Version: "2:1.0-1~deb12u1", Arch: "amd64", File: name + "_1.0-1~deb12u1_amd64.deb", SHA256: sha(data), Size: int64(len(data))}
		r.Debs = append(r.Debs, d)
		r.Stanzas[name] = fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\nFilename: pool/main/x/%s\nSize: %d\nSHA256: %s\n", name, d.Version, d.File, d.Size, d.SHA256)
		if err := os.WriteFile(filepath.Join(dir, d.File), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle.KitInput{Debian: []*kit.Repo{r}, Borgkit: []bundle.KitBuild{{Arch: "amd64", Data: b, Source: self}},
		Missing: []string{"arm64: the mirror could not be reached"}}
}

// The kit's packages are pinned in bundle.json and form an apt repository
// whose index lists exactly the pins; verify proves both, and refuses a
// package file or an index that is not the pinned one even when the
// checksums were made to match.
func TestWriteKitVerify(t *testing.T) {
	_, m := writeBundle(t, bundle.Options{Kit: fakeKit(t)})
	if m.Kit == nil || len(m.Kit.Debian) != 1 || len(m.Kit.Debian[0].Debs) != 3 || len(m.Kit.Missing) != 1 {
		t.Fatalf("kit: %+v", m.Kit)
	}
	if !strings.Contains(strings.Join(m.Warnings, "\n"), "NO OFFLINE PACKAGES: arm64: the mirror could not be reached") {
		t.Errorf("warnings: %v", m.Warnings)
	}
	rep, err := bundle.Verify(context.Background(), m.Dir, bundle.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var kits []string
	for _, it := range rep.Items {
		if it.Kind == bundle.KindKit && it.Status == bundle.StatusOK {
			kits = append(kits, it.Name)
		}
	}
	if strings.Join(kits, " ") != "debian-12-amd64 borgkit-amd64" {
		t.Errorf("kit items: %v", kits)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "no offline packages: arm64") {
		t.Errorf("verify warnings: %v", rep.Warnings)
	}

	release := func(dir string) {
		idx, err := os.ReadFile(filepath.Join(dir, "kit/debian-12-amd64/Packages"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "kit/debian-12-amd64/Release"), kit.ReleaseFile("amd64", fixedNow(), idx), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, file, want string
		edit             func(string) string
		release          bool
	}{
		{"another package file", "kit/debian-12-amd64/borgbackup_1.0-1~deb12u1_amd64.deb", "is not the pinned file",
			func(string) string { return "a package someone slipped in" }, false},
		{"an index listing another checksum", "kit/debian-12-amd64/Packages", "is not the pinned",
			func(s string) string { return strings.Replace(s, "SHA256: ", "SHA256: 0", 1) }, true},
		{"an index listing an unpinned package", "kit/debian-12-amd64/Packages", "which bundle.json does not pin",
			func(s string) string { return s + "Package: evil\nVersion: 1\n\n" }, true},
		{"an index the Release file does not name", "kit/debian-12-amd64/Packages", "does not name this index's checksum",
			func(s string) string { return s + "\n" }, false},
		{"borgkit that is no executable", "kit/borgkit/amd64/borgkit", "is not an executable for amd64",
			func(string) string { return "#!/bin/sh\n" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyBundle(t, m.Dir)
			p := filepath.Join(dir, tc.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(tc.edit(string(b))), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.release {
				release(dir)
			}
			rehash(t, dir)
			rep, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{})
			if err == nil {
				t.Fatal("verify passed")
			}
			failed := rep.Failed()
			if len(failed) != 1 || failed[0].Kind != bundle.KindKit || !strings.Contains(failed[0].Detail, tc.want) {
				t.Fatalf("failed items: %+v", failed)
			}
		})
	}
}

// The runbook of a bundle with a kit installs from it with apt and no
// other source, and puts borgkit on the PATH; reviewed as a golden file.
func TestRunbookKitGolden(t *testing.T) {
	in := fakeKit(t)
	site := bundletest.Shared(t)
	m, err := bundle.Layout(site.Cfg, site.Server, fixedNow())
	if err != nil {
		t.Fatal(err)
	}
	r := in.Debian[0]
	m.Kit = &bundle.Kit{Debian: []bundle.KitRepo{{Arch: r.Arch, Suite: r.Suite, Base: r.Base, Mirror: r.Mirror, Fetched: r.Fetched,
		Wanted: r.Wanted, Dir: kit.Dir(r.Arch), Debs: r.Debs, Stale: "the mirror could not be reached (E: Failed to fetch); these are the packages fetched on 2026-06-11 06:00 UTC"}},
		Borgkit: []bundle.KitBinary{{Arch: "amd64", Path: "kit/borgkit/amd64/borgkit"}, {Arch: "arm64", Path: "kit/borgkit/arm64/borgkit"}},
		Missing: in.Missing}
	for _, d := range r.Debs {
		m.Files = append(m.Files, bundle.File{Path: kit.Dir("amd64") + "/" + d.File, Role: bundle.RoleKitDeb, For: "amd64"})
	}
	m.Files = append(m.Files, bundle.File{Path: "kit/borgkit/amd64/borgkit", Role: bundle.RoleKitBorgkit, For: "amd64"})
	md, _, err := bundle.RenderRunbook(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join("testdata", "runbook-kit.md.golden")
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.WriteFile(p, md, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(md) {
		t.Errorf("%s differs (go test -update after checking the change); got:\n%s", p, md)
	}
}
