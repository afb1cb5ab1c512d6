package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
)

// reachArchive opens the archive host's tree, and nothing else.
func reachArchive(a *bundletest.Archive) func(context.Context, *config.Host) (Source, error) {
	return func(_ context.Context, h *config.Host) (Source, error) {
		if h.Name == "archive" {
			return a.Src, nil
		}
		return nil, fmt.Errorf("no way to %s in this test", h.Name)
	}
}

func writeArchiveBundle(t *testing.T, a *bundletest.Archive, opts Options) (string, *Manifest, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			bundletest.MakeWritable(t, dir)
		}
	})
	server, _ := a.Cfg.Host("john-ai")
	opts.Now = func() time.Time { return time.Date(2026, 6, 12, 6, 0, 0, 0, time.UTC) }
	m, err := Write(context.Background(), a.Cfg, server, a.Site.Src, dir, opts)
	return dir, m, err
}

// The second seed's archive host: the bundle written on john-ai carries
// the archive's repo passphrase, key export and ZFS dataset key, fetched
// from the archive host byte for byte, 0400; Verify proves the key export
// and passphrase open the real repo; the runbook restores it with real
// values.
func TestWriteArchiveHostSecrets(t *testing.T) {
	a := bundletest.WithArchive(t)
	dir, m, err := writeArchiveBundle(t, a, Options{Reach: reachArchive(a)})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	for rel, src := range map[string]string{
		"borg/backup-repo.borg-key":   "/etc/borgkit/keys/backup-repo.borg-key",
		"borg/backup-repo.pass":       "/etc/borgkit/keys/backup-repo.pass",
		"zfs/archive-tank-Secure.key": a.ZFSKey,
	} {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		want, _ := os.ReadFile(a.Real(src))
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s on the archive host", rel, src)
		}
		fi, _ := os.Stat(filepath.Join(dir, rel))
		if fi.Mode().Perm() != 0o400 {
			t.Errorf("%s: mode %v, want 0400", rel, fi.Mode().Perm())
		}
		f, _ := m.File(rel)
		if f == nil || f.Source != src {
			t.Errorf("%s: manifest entry %+v, want source %s", rel, f, src)
		}
	}
	if len(m.Datasets) != 1 || m.Datasets[0] != (Dataset{Host: "archive", Name: "tank/Secure", KeyFormat: "raw",
		Keyfile: "zfs/archive-tank-Secure.key", Source: a.ZFSKey}) {
		t.Errorf("datasets = %+v", m.Datasets)
	}

	rep, err := Verify(context.Background(), dir, VerifyOptions{RepoRoots: []string{a.Site.Mirror, filepath.Dir(a.Repo)}})
	var text strings.Builder
	if rep != nil {
		rep.WriteText(&text)
	}
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, text.String())
	}
	ok := map[string]bool{}
	for _, it := range rep.Items {
		if it.Status == StatusOK {
			ok[it.Kind+" "+it.Name] = true
		}
	}
	for _, want := range []string{KindZFSKey + " archive/tank/Secure", KindBorgKey + " archive/backup-repo", KindRepo + " archive/backup-repo"} {
		if !ok[want] {
			t.Errorf("Verify has no OK %s:\n%s", want, text.String())
		}
	}

	md, err := os.ReadFile(filepath.Join(dir, RunbookMD))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range runbookDefects(string(md)) {
		t.Error(p)
	}
	for _, want := range []string{
		"REPO=/tank/Secure/Borg/backup-repo",
		// A rescue machine imports a pool its dead host never exported.
		"zpool list tank >/dev/null 2>&1 || zpool import -f -N -o readonly=on tank",
		`borg key import /srv/recovery/backup-repo "$B/borg/backup-repo.borg-key"`,
		`zfs load-key -L file://"$B/zfs/archive-tank-Secure.key" tank/Secure`,
		`install -m 0400 -o root -g root "$B/zfs/archive-tank-Secure.key" /etc/borgkit/keys/tank-Secure.key`,
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("runbook lacks %q", want)
		}
	}
	// The secrets are in files only: not in the runbook, not in bundle.json.
	pass, _ := os.ReadFile(a.Real("/etc/borgkit/keys/backup-repo.pass"))
	index, _ := os.ReadFile(filepath.Join(dir, IndexName))
	for name, b := range map[string][]byte{RunbookMD: md, IndexName: index} {
		if bytes.Contains(b, bytes.TrimSpace(pass)) {
			t.Errorf("%s contains the archive repo's passphrase", name)
		}
	}
}

// The runbook's restore of the archive repo, run as written against the
// real repo: the passphrase from the bundle and the key export imported
// into a copy extract the archived files.
func TestRunbookRestoresArchiveRepo(t *testing.T) {
	a := bundletest.WithArchive(t)
	dir, _, err := writeArchiveBundle(t, a, Options{Reach: reachArchive(a)})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, RunbookMD))
	section := string(md)
	i := strings.Index(section, "### Repository archive/backup-repo")
	if i < 0 {
		t.Fatal("no section for archive/backup-repo")
	}
	section = section[i:]
	if j := strings.Index(section[1:], "\n## "); j >= 0 {
		section = section[:j+1]
	}
	blocks := shellBlocks(section)
	if len(blocks) != 3 {
		t.Fatalf("want 3 command blocks (setup, key import into a copy, restore), got %d:\n%s", len(blocks), section)
	}
	// The rescue machine's paths, moved under the test's temp dir: the
	// repo where the archive host mounts it, /srv where the runbook writes.
	work := t.TempDir()
	srv := filepath.Join(work, "srv")
	script := strings.Join([]string{
		"set -eu",
		"B=" + shq(dir),
		strings.ReplaceAll(blocks[0], "REPO=/tank/Secure/Borg/backup-repo", "REPO="+shq(a.Repo)),
		strings.ReplaceAll(blocks[1], "/srv/", srv+"/"),
		strings.ReplaceAll(strings.ReplaceAll(blocks[2], "/srv/", srv+"/"), " | less", ""),
	}, "\n")
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "BORG_BASE_DIR="+filepath.Join(work, "home"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runbook commands: %v\n%s\n--- script:\n%s", err, out, script)
	}
	restored := filepath.Join(srv, "restore/backup-repo")
	n := 0
	err = filepath.WalkDir(a.Real(a.Data), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a.Root, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(restored, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: restored %q, %v; want %q", rel, got, err, want)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walked %d files: %v", n, err)
	}
}

// Without a way to reach the archive host the bundle is refused, naming
// the host: a bundle that cannot restore it must not look complete.
func TestWriteRefusesUnreachableArchive(t *testing.T) {
	a := bundletest.WithArchive(t)
	dir, _, err := writeArchiveBundle(t, a, Options{})
	if err == nil || !strings.Contains(err.Error(), "archive") {
		t.Fatalf("Write without Reach: %v, want an error naming archive", err)
	}
	if _, serr := os.Stat(dir); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("a refused bundle left %s behind", dir)
	}

	// A damaged ZFS key on the archive host is caught while the host
	// still has the good one.
	if err := os.Chmod(a.Real(a.ZFSKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.Real(a.ZFSKey), []byte("short"), 0o400); err != nil {
		t.Fatal(err)
	}
	_, _, err = writeArchiveBundle(t, a, Options{Reach: reachArchive(a)})
	if err == nil || !strings.Contains(err.Error(), "tank/Secure") || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("Write with a 5-byte raw key: %v", err)
	}
	if err := os.Remove(a.Real(a.ZFSKey)); err != nil {
		t.Fatal(err)
	}
	_, _, err = writeArchiveBundle(t, a, Options{Reach: reachArchive(a)})
	if err == nil || !strings.Contains(err.Error(), a.ZFSKey) {
		t.Fatalf("Write without the ZFS key: %v", err)
	}
}

// shellBlocks returns the bodies of the ```sh blocks of md.
func shellBlocks(md string) []string {
	var out []string
	var cur []string
	in := false
	for _, line := range strings.Split(md, "\n") {
		switch {
		case !in && line == "```sh":
			in, cur = true, nil
		case in && line == "```":
			in = false
			out = append(out, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return out
}

// The NAS credentials go into the bundle only when the config asks
// (shares[].in_bundle), and the runbook then mounts the share with them.
func TestWriteShareCredentialsOnlyWhenAsked(t *testing.T) {
	a := bundletest.WithArchive(t)
	_, m, err := writeArchiveBundle(t, a, Options{Reach: reachArchive(a)})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if f.Role == RoleCredentials {
			t.Errorf("credentials %s bundled without in_bundle", f.Path)
		}
	}

	const line = "        credentials: /etc/borgkit/nas.credentials\n"
	if !bytes.Contains(a.YAML, []byte(line)) {
		t.Fatal("fixture config has no NAS credentials line")
	}
	cfg, err := config.Parse("borgkit.yaml", bytes.Replace(a.YAML, []byte(line), []byte(line+"        in_bundle: true\n"), 1))
	if err != nil {
		t.Fatal(err)
	}
	// The server's tree, copied so the shared one stays as it is, with
	// the credentials file provisioning writes.
	root := filepath.Join(t.TempDir(), "server")
	if out, err := exec.Command("cp", "-a", a.Site.Root, root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	creds := []byte("username=backup\npassword=s3cret-nas\n")
	if err := os.WriteFile(filepath.Join(root, "etc/borgkit/nas.credentials"), creds, 0o600); err != nil {
		t.Fatal(err)
	}
	server, _ := cfg.Host("john-ai")
	dir := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() { bundletest.MakeWritable(t, dir) })
	src := host.NewRooted("john-ai", root)
	m, err = Write(context.Background(), cfg, server, src, dir, Options{Reach: reachArchive(a)})
	if err != nil {
		t.Fatal(err)
	}
	rel := "shares/john-ai-nas.credentials"
	if r, ok := m.Repo("john-ai"); !ok || len(r.Copies) == 0 || r.Copies[0].Credentials != rel {
		t.Errorf("the NAS copy of john-ai does not name its credentials: %+v", r)
	}
	got, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil || !bytes.Equal(got, creds) {
		t.Fatalf("%s: %q, %v", rel, got, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, rel)); fi.Mode().Perm() != 0o400 {
		t.Errorf("%s: mode %v", rel, fi.Mode().Perm())
	}
	md, _ := os.ReadFile(filepath.Join(dir, RunbookMD))
	if !strings.Contains(string(md), `mount -t cifs -o ro,credentials="$B/`+rel+`" //nas.lan/backups /mnt/recovery/nas`) {
		t.Errorf("runbook does not mount the share with the bundled credentials:\n%s", md)
	}
	if bytes.Contains(md, []byte("s3cret-nas")) {
		t.Error("the runbook contains the NAS password")
	}
	for _, p := range runbookDefects(string(md)) {
		t.Error(p)
	}
}
