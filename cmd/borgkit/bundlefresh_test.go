package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
	"github.com/borgkit/borgkit/recovery/fingerprint"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/status"
)

// A repo re-initialised after the bundle was written (a wiped disk, a
// fresh start): provisioning refreshes its key export, and from then on the
// dashboard says the bundle on the stick is out of date, naming the export,
// until a new bundle is written.
func TestReinitialisedRepoMakesTheBundleOutOfDate(t *testing.T) {
	s := bundletest.Shared(t)
	root := filepath.Join(t.TempDir(), "server")
	if out, err := exec.Command("cp", "-a", s.Root, root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	src := host.NewRooted(s.Server.Name, root)
	dir := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() { bundletest.MakeWritable(t, dir) })
	ctx := context.Background()
	if _, err := bundle.Write(ctx, s.Cfg, s.Server, src, dir, bundle.Options{}); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(root, fingerprint.File)
	if fi, err := os.Stat(rec); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fingerprint record: %v %v", fi, err)
	}
	pass, _ := os.ReadFile(filepath.Join(root, layout.PassphraseFile("john-ai")))
	if b, _ := os.ReadFile(rec); strings.Contains(string(b), strings.TrimSpace(string(pass))) {
		t.Fatal("the fingerprint record holds a passphrase")
	}

	e := &jobs.Env{Cfg: s.Cfg, Host: s.Server, Exec: src, Store: &state.Store{Dir: filepath.Join(root, layout.StateDir), Host: s.Server.Name}}
	e.Defaults()
	bundleLine := func() (status.Check, []string) {
		t.Helper()
		d, err := status.Live(e)
		if err != nil {
			t.Fatal(err)
		}
		var issues []string
		for _, i := range d.Issues {
			issues = append(issues, i.Text)
		}
		for _, c := range d.Monitoring {
			if c.Name == "Recovery bundle" {
				return c, issues
			}
		}
		t.Fatalf("no recovery bundle line in %+v", d.Monitoring)
		return status.Check{}, nil
	}
	if c, issues := bundleLine(); c.Status != "UP TO DATE" || strings.Contains(strings.Join(issues, "\n"), fingerprint.OutOfDate) {
		t.Fatalf("a fresh bundle: %+v %q", c, issues)
	}

	repo := filepath.Join(root, "mnt/backup/john-ai")
	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	init := exec.Command("borg", "init", "--encryption", "repokey-blake2", repo)
	init.Env = append(os.Environ(), "BORG_BASE_DIR="+filepath.Join(root, "root"), "BORG_PASSCOMMAND=cat "+filepath.Join(root, layout.PassphraseFile("john-ai")))
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("borg init: %v %s", err, out)
	}
	k := &steps.BorgKeyExport{Repo: "john-ai", RepoPath: "/mnt/backup/john-ai", Dest: layout.KeyExport("john-ai"), PassFile: layout.PassphraseFile("john-ai")}
	c, err := k.Check(ctx, src)
	if err != nil || c.Action != plan.Modify {
		t.Fatalf("the plan after re-init: %+v %v", c, err)
	}
	if err := k.Apply(ctx, src); err != nil {
		t.Fatal(err)
	}
	line, issues := bundleLine()
	all := strings.Join(issues, "\n")
	if line.Status != fingerprint.OutOfDate || line.Level != status.LevelWarning ||
		!strings.Contains(all, fingerprint.OutOfDate+": the borg key export of john-ai/john-ai ("+layout.KeyExport("john-ai")+") changed") {
		t.Fatalf("after the export was refreshed: %+v\n%s", line, all)
	}
	// A new bundle makes it current again.
	dir2 := filepath.Join(t.TempDir(), "bundle2")
	t.Cleanup(func() { bundletest.MakeWritable(t, dir2) })
	if _, err := bundle.Write(ctx, s.Cfg, s.Server, src, dir2, bundle.Options{Now: func() time.Time { return time.Now().Add(time.Minute) }}); err != nil {
		t.Fatal(err)
	}
	if c, issues := bundleLine(); c.Status != "UP TO DATE" || len(issues) > 0 && strings.Contains(strings.Join(issues, "\n"), fingerprint.OutOfDate) {
		t.Fatalf("after a new bundle: %+v %q", c, issues)
	}
}
