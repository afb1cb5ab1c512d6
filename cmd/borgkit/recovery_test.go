package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
)

// recovery-bundle on a server tree reaches the archive host's tree through
// --host-root and carries its secrets; without a way to reach it, it
// refuses and says how to give one.
func TestRecoveryBundleHostRoot(t *testing.T) {
	a := bundletest.WithArchive(t)
	cfgFile := filepath.Join(t.TempDir(), "borgkit.yaml")
	if err := os.WriteFile(cfgFile, a.YAML, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			bundletest.MakeWritable(t, dir)
		}
	})

	out, code := run(t, "--config", cfgFile, "recovery-bundle", "--root", a.Site.Root, "--host", "john-ai", "--to", dir)
	if code == 0 || !strings.Contains(out, "--host-root archive=DIR") {
		t.Fatalf("without --host-root: exit %d, %s", code, out)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a refused bundle was left behind")
	}

	out, code = run(t, "--config", cfgFile, "recovery-bundle", "--root", a.Site.Root, "--host", "john-ai",
		"--host-root", "archive="+a.Root, "--to", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	m, err := bundle.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "zfs/archive-tank-Secure.key"))
	want, _ := os.ReadFile(a.Real(a.ZFSKey))
	if len(m.Datasets) != 1 || !bytes.Equal(got, want) {
		t.Errorf("datasets %+v; bundled ZFS key equal to the archive's: %v", m.Datasets, bytes.Equal(got, want))
	}
	if r, ok := m.Repo("backup-repo"); !ok || r.KeyExport == "" || r.Passphrase == "" {
		t.Errorf("archive repo in the bundle: %+v", r)
	}
	if bytes.Contains([]byte(out), bytes.TrimSpace(want)) {
		t.Error("the output contains the ZFS key")
	}
}
