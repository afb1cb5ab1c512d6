package bundle_test

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
)

// stickWithKit is a stick with a kit partition, as stick.Write records it.
func stickWithKit() *bundle.Stick {
	return &bundle.Stick{LUKSUUID: "7d1b6c2e-0a4f-4e8b-9c3d-2e1f0a9b8c7d", FSUUID: "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
		Mapper: "borgkit-stick", Dir: "borgkit-recovery", KitLabel: "BORGKIT-KIT", KitFSUUID: "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"}
}

// On a stick with a kit partition the kit's files go there, with a README
// and KIT.sha256 that sha256sum checks, and nothing else: no secret, no
// runbook with the site's secrets' paths. The bundle keeps the pins;
// verify checks the kit partition against them when given it, skips it
// (passing) when not, and fails on a changed package there even when
// KIT.sha256 was made to match.
func TestWriteKitPartition(t *testing.T) {
	kitDir := t.TempDir()
	t.Cleanup(func() { bundletest.MakeWritable(t, kitDir) })
	_, m := writeBundle(t, bundle.Options{Kit: fakeKit(t), Stick: stickWithKit(), KitDir: kitDir})

	var onKit []string
	_ = filepath.WalkDir(kitDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(kitDir, p)
			onKit = append(onKit, rel)
		}
		return err
	})
	for _, f := range onKit {
		if !strings.HasPrefix(f, "kit/") && f != bundle.KitReadme && f != bundle.KitManifest {
			t.Errorf("the kit partition holds %s", f)
		}
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "kit")); err == nil {
		t.Error("the kit is in the bundle's directory too")
	}
	c := exec.Command("sha256sum", "--quiet", "-c", bundle.KitManifest)
	c.Dir = kitDir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c %s on the kit partition: %v\n%s", bundle.KitManifest, err, out)
	}
	c = exec.Command("sha256sum", "--quiet", "-c", bundle.ManifestName)
	c.Dir = m.Dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c %s in the bundle: %v\n%s", bundle.ManifestName, err, out)
	}
	readme, err := os.ReadFile(filepath.Join(kitDir, bundle.KitReadme))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if !bundle.KitRole(f.Role) && strings.Contains(string(readme), f.Path) && f.Role != bundle.RoleRunbook {
			t.Errorf("the README on the kit partition names the bundle's %s", f.Path)
		}
	}
	for _, want := range []string{"mount -o ro,noload /dev/disk/by-uuid/0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9 $KIT", "file:$KIT/kit/debian-12-$ARCH", "cryptsetup open --readonly /dev/disk/by-uuid/7d1b6c2e"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("the README lacks %q:\n%s", want, readme)
		}
	}

	// The runbook's order on a machine without cryptsetup: mount the kit,
	// install from it, open the stick, check the bundle, then the disks.
	md, err := os.ReadFile(filepath.Join(m.Dir, bundle.RunbookMD))
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for _, step := range []string{"mount -o ro,noload /dev/disk/by-uuid/0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9 $KIT", "(cd $KIT && sha256sum -c KIT.sha256)",
		"apt-get $APT install", `install -m 0755 "$KIT/kit/borgkit/$ARCH/borgkit"`,
		"cryptsetup open --readonly /dev/disk/by-uuid/7d1b6c2e-0a4f-4e8b-9c3d-2e1f0a9b8c7d borgkit-stick\nmkdir -p /mnt/borgkit-stick\nmount -o ro,noload /dev/mapper/borgkit-stick /mnt/borgkit-stick\ncd /mnt/borgkit-stick/borgkit-recovery\n",
		"borgkit recovery-bundle verify --kit-dir $KIT \"$B\"", "B=$(pwd)\nsha256sum -c MANIFEST.sha256\n", "cryptsetup open --readonly --key-file"} {
		i := strings.Index(string(md), step)
		if i <= last {
			t.Fatalf("the runbook has %q at %d, after the step before it (%d):\n%s", step, i, last, md[:min(len(md), 4000)])
		}
		last = i
	}

	count := func(rep *bundle.Report, st bundle.Status) int {
		n := 0
		for _, it := range rep.Items {
			if it.Kind == bundle.KindFile && it.Status == st && strings.HasPrefix(it.Name, "kit/") {
				n++
			}
		}
		return n
	}
	rep, err := bundle.Verify(context.Background(), m.Dir, bundle.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify without the kit partition: %v", err)
	}
	if n := count(rep, bundle.StatusSkipped); n != 6 {
		t.Errorf("verify without the kit partition skipped %d kit files, want 6 (3 packages, Packages, Release, borgkit)", n)
	}
	rep, err = bundle.Verify(context.Background(), m.Dir, bundle.VerifyOptions{KitDir: kitDir})
	if err != nil {
		t.Fatalf("verify with the kit partition: %v", err)
	}
	if n := count(rep, bundle.StatusOK); n != 6 {
		t.Errorf("verify checked %d kit files, want 6", n)
	}

	// Someone with the stick swaps a package and makes KIT.sha256 agree.
	bundletest.MakeWritable(t, kitDir)
	deb := filepath.Join(kitDir, "kit/debian-12-amd64/borgbackup_1.0-1~deb12u1_amd64.deb")
	if err := os.WriteFile(deb, []byte("a package someone slipped in"), 0o644); err != nil {
		t.Fatal(err)
	}
	rehashFile(t, kitDir, bundle.KitManifest)
	rep, err = bundle.Verify(context.Background(), m.Dir, bundle.VerifyOptions{KitDir: kitDir})
	if err == nil {
		t.Fatal("verify passed a swapped package on the kit partition")
	}
	if f := rep.Failed(); len(f) != 1 || !strings.Contains(f[0].Detail, "against the pin in bundle.json") {
		t.Fatalf("failed: %+v", f)
	}
}

// rehashFile rewrites the sha256sum file name in dir to match dir's files.
func rehashFile(t *testing.T, dir, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		data, err := os.ReadFile(filepath.Join(dir, f[1]))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sha(data)+"  "+f[1])
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
