package steps_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
)

func needBorg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed (make deps installs it); these tests run the real borg")
	}
}

func TestBorgRepoInitAndKeyExport(t *testing.T) {
	needBorg(t)
	h, dir := rooted(t)
	os.MkdirAll(filepath.Join(dir, "/etc/borgkit/keys"), 0o700)
	pass := &steps.Secret{Path: "/etc/borgkit/keys/r.pass", Mode: 0o600, Owner: host.Root, What: "pass", Generate: steps.Passphrase}
	converge(t, h, pass)
	repo := &steps.BorgRepo{Name: "r", Path: "/mnt/backup/r", Encryption: "repokey-blake2", PassFile: pass.Path}
	if c := check(t, h, repo); c.Action != plan.Create {
		t.Fatalf("%+v", c)
	}
	converge(t, h, repo)
	cfg := read(t, dir, "/mnt/backup/r/config")
	if !strings.Contains(cfg, "[repository]") {
		t.Fatalf("config: %q", cfg)
	}
	key := &steps.BorgKeyExport{Repo: "r", RepoPath: repo.Path, Dest: "/etc/borgkit/keys/r.borg-key", PassFile: pass.Path}
	converge(t, h, key)
	if k := read(t, dir, "/etc/borgkit/keys/r.borg-key"); !strings.HasPrefix(k, "BORG_KEY ") {
		t.Fatalf("key export: %q", k)
	}
	// The passphrase file really opens the repo.
	c := exec.Command("borg", "info", "--json", filepath.Join(dir, "/mnt/backup/r"))
	c.Env = append(host.Environ(borg.Inherited...), borg.OnHost(h, pass.Path).Vars()...)
	if out, err := c.CombinedOutput(); err != nil || !strings.Contains(string(out), `"encryption"`) {
		t.Fatalf("borg info: %v\n%s", err, out)
	}
	// The borg key lives under the tree, not in the real /root.
	if _, err := os.Stat(filepath.Join(dir, "/root/.config/borg/security")); err != nil {
		t.Fatalf("borg base dir not moved under --root: %v", err)
	}
}

func TestBorgRepoRefusesForeignDirectory(t *testing.T) {
	needBorg(t)
	h, dir := rooted(t)
	write(t, dir, "/mnt/backup/r/photo.jpg", "precious", 0o644)
	repo := &steps.BorgRepo{Name: "r", Path: "/mnt/backup/r", Encryption: "none"}
	c := check(t, h, repo)
	if c.Action != plan.Conflict || !strings.Contains(c.Reason, "holds files but no borg repository") {
		t.Fatalf("%+v", c)
	}
	// An empty directory is fine to init into.
	h2, dir2 := rooted(t)
	os.MkdirAll(filepath.Join(dir2, "/mnt/backup/r"), 0o755)
	if c := check(t, h2, repo); c.Action != plan.Create {
		t.Fatalf("%+v", c)
	}
	converge(t, h2, repo)
}
