package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
	"github.com/borgkit/borgkit/recovery/fingerprint"
	"github.com/borgkit/borgkit/testing/sshd"
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

	out, code := run(t, "recovery-bundle", "--config", cfgFile, "--root", a.Site.Root, "--host", "john-ai", "--to", dir)
	if code == 0 || !strings.Contains(out, "--host-root archive=DIR") {
		t.Fatalf("without --host-root: exit %d, %s", code, out)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a refused bundle was left behind")
	}

	out, code = run(t, "recovery-bundle", "--config", cfgFile, "--root", a.Site.Root, "--host", "john-ai",
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
	// The archive host keeps the record of what the bundle packed of its
	// secrets, so its own dashboard sees when one changes.
	rec, err := os.ReadFile(a.Real(fingerprint.File))
	if err != nil {
		t.Fatal(err)
	}
	fp, err := fingerprint.Decode("archive", rec)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, s := range fp.Secrets {
		kinds = append(kinds, s.Kind+" "+s.Path)
	}
	for _, w := range []string{fingerprint.KindZFSKey + " " + a.ZFSKey, fingerprint.KindBorgKey + " /etc/borgkit/keys/backup-repo.borg-key", fingerprint.KindPassphrase + " /etc/borgkit/keys/backup-repo.pass"} {
		if !slices.Contains(kinds, w) {
			t.Errorf("the archive host's record lacks %q: %q", w, kinds)
		}
	}
	if len(kinds) != 3 {
		t.Errorf("the archive host's record holds another host's secrets: %q", kinds)
	}
}

// Live, recovery-bundle reaches the archive host over SSH, as provisioning
// does: a real sshd serves the ZFS key, which arrives in the bundle byte
// for byte and 0400, and nowhere in the command's output.
func TestRecoveryBundleOverSSH(t *testing.T) {
	srv := sshd.Start(t, sshd.Options{})
	s := bundletest.Shared(t)
	keyDir := t.TempDir()
	zkey := make([]byte, 32)
	rand.Read(zkey)
	keyPath := filepath.Join(keyDir, "tank-Secure.key")
	if err := os.WriteFile(keyPath, zkey, 0o400); err != nil {
		t.Fatal(err)
	}
	yaml := append(append([]byte(nil), s.ConfigYAML...), fmt.Sprintf(`  - name: archive
    role: archive
    address: 127.0.0.1
    ssh:
      port: %d
    datasets:
      - name: tank/Secure
        properties:
          encryption: aes-256-gcm
          keyformat: raw
          keylocation: file://%s
`, srv.Port, keyPath)...)
	cfgFile := filepath.Join(t.TempDir(), "borgkit.yaml")
	if err := os.WriteFile(cfgFile, yaml, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			bundletest.MakeWritable(t, dir)
		}
	})
	out, code := run(t, "recovery-bundle", "--config", cfgFile, "--root", s.Root, "--host", "john-ai", "--to", dir)
	if code == 0 || !strings.Contains(out, "--host-root archive=DIR") {
		t.Fatalf("--root without --host-root must not go over SSH: exit %d, %s", code, out)
	}
	// Live: the server side still from its tree (this test's machine is not
	// john-ai), the archive host over SSH.
	o := &bundleOptions{To: dir, Root: "", Host: "john-ai", Owner: -1,
		Identity: []string{srv.ClientKeyPath}, KnownHosts: []string{srv.KnownHostsPath}}
	g := &globals{ConfigPath: cfgFile, configSet: true}
	var buf bytes.Buffer
	if err := runBundleWriteFrom(context.Background(), o, g, strings.NewReader(""), &buf, &buf, s.Src); err != nil {
		t.Fatalf("recovery-bundle: %v\n%s", err, buf.String())
	}
	got, err := os.ReadFile(filepath.Join(dir, "zfs/archive-tank-Secure.key"))
	if err != nil || !bytes.Equal(got, zkey) {
		t.Fatalf("bundled ZFS key: %v, equal %v", err, bytes.Equal(got, zkey))
	}
	if fi, _ := os.Stat(filepath.Join(dir, "zfs/archive-tank-Secure.key")); fi.Mode().Perm() != 0o400 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if srv.Logins() == 0 {
		t.Error("sshd saw no login: the key did not come over SSH")
	}
	if bytes.Contains(buf.Bytes(), zkey) {
		t.Error("the output contains the key")
	}
}
