package steps_test

import (
	"fmt"
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

// Under --root borg runs with BORG_BASE_DIR=ROOT/root and follows symlinks:
// ROOT/root/.config and .cache linked out of the tree put its security and
// cache directories there. Every path borg is given or finds is checked at
// plan time, and a link out of the tree is a conflict.
func TestBorgStaysInTheTree(t *testing.T) {
	needBorg(t)
	for _, link := range []string{"/root/.config", "/root/.cache", "/root/.config/borg", "/mnt/backup", "/etc/borgkit/keys"} {
		t.Run(link, func(t *testing.T) {
			h, dir := rooted(t)
			outside := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "/etc/borgkit/keys"), 0o700)
			os.MkdirAll(filepath.Join(dir, filepath.Dir(link)), 0o755)
			os.RemoveAll(filepath.Join(dir, link))
			if err := os.Symlink(outside, filepath.Join(dir, link)); err != nil {
				t.Fatal(err)
			}
			pass := "/etc/borgkit/keys/r.pass"
			repo := &steps.BorgRepo{Name: "r", Path: "/mnt/backup/r", Encryption: "repokey-blake2", PassFile: pass}
			key := &steps.BorgKeyExport{Repo: "r", RepoPath: repo.Path, Dest: "/etc/borgkit/keys/r.borg-key", PassFile: pass}
			var reasons []string
			for _, s := range []plan.Step{repo, key} {
				c, err := s.Check(t.Context(), h)
				if err == nil && c.Action != plan.Conflict {
					t.Fatalf("%s: %+v", s.ID(), c)
				}
				reasons = append(reasons, c.Reason+fmt.Sprint(err))
				if err := s.Apply(t.Context(), h); err == nil {
					t.Errorf("%s: applied through %s", s.ID(), link)
				}
			}
			if !strings.Contains(strings.Join(reasons, " "), "outside the root") {
				t.Errorf("reasons %q", reasons)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Fatalf("borg wrote outside the tree: %v", entries)
			}
		})
	}
}

// A key export destination that is a symlink was found only when chmod
// refused it, after every step before had been applied.
func TestBorgKeyExportRefusesASymlinkAtPlanTime(t *testing.T) {
	h, dir := rooted(t)
	os.MkdirAll(filepath.Join(dir, "/etc/borgkit/keys"), 0o700)
	write(t, dir, "/etc/borgkit/keys/elsewhere", "", 0o600)
	for _, target := range []string{"elsewhere", "missing"} {
		dest := filepath.Join(dir, "/etc/borgkit/keys/r.borg-key")
		os.Remove(dest)
		os.Symlink(target, dest)
		key := &steps.BorgKeyExport{Repo: "r", RepoPath: "/mnt/backup/r", Dest: "/etc/borgkit/keys/r.borg-key"}
		if c := check(t, h, key); c.Action != plan.Conflict || !strings.Contains(c.Reason, "is a symlink") {
			t.Fatalf("-> %s: %+v", target, c)
		}
	}
}
