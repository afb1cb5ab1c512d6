package recipe_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/roles/recipe"
)

func runPlan(t *testing.T, cfg *config.Config, dir string, dry bool) (*plan.Report, string, error) {
	t.Helper()
	ss, err := recipe.Steps(cfg, "john-ai", options(t))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r, err := plan.Run(context.Background(), host.NewRooted("john-ai", dir), ss, plan.Options{DryRun: dry, Printer: &plan.TextPrinter{W: &out}})
	return r, out.String(), err
}

// snapshot maps every regular file under dir to its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			m[strings.TrimPrefix(p, dir)] = string(b)
		}
		return nil
	})
	return m
}

func TestServerThirdRunChangesOnlyTheEditedSchedule(t *testing.T) {
	dir := serverTree(t)
	if r, out, err := runPlan(t, example(t), dir, false); err != nil || r.Pending() != 0 {
		t.Fatalf("second run not clean: %v\n%s", err, out)
	}
	before := snapshot(t, dir)
	edited := example(t, "    scheduler: cron", "    scheduler: cron\n    schedules:\n      check: \"30 9 * * 6\"")
	r, out, err := runPlan(t, edited, dir, false)
	if err != nil || r.Pending() != 1 {
		t.Fatalf("third run: %v, %d pending\n%s", err, r.Pending(), out)
	}
	after := snapshot(t, dir)
	var changed []string
	for p, c := range after {
		if before[p] != c && !strings.HasSuffix(p, host.OldSuffix) {
			changed = append(changed, p)
		}
	}
	sort.Strings(changed)
	if strings.Join(changed, ",") != "/etc/cron.d/borgkit" {
		t.Fatalf("changed %v, want only /etc/cron.d/borgkit\n%s", changed, out)
	}
	if !strings.Contains(after["/etc/cron.d/borgkit"], "30 9 * * 6 root /usr/local/bin/borgkit job check\n") {
		t.Fatalf("cron file:\n%s", after["/etc/cron.d/borgkit"])
	}
	if !strings.Contains(out, "-0 9 * * 6 root") || !strings.Contains(out, "+30 9 * * 6 root") {
		t.Fatalf("plan shows no diff of the change:\n%s", out)
	}
}

func TestServerConflictsApplyNothing(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string)
		id     string
		reason string
	}{
		{"repo path holds other files", func(t *testing.T, dir string) {
			put(t, dir, "/mnt/backup/john-ai-vms/disk.qcow2", "vm image", 0o644)
		}, "repo.john-ai-vms", "holds files but no borg repository"},
		{"fstab mounts our mountpoint outside the block", func(t *testing.T, dir string) {
			put(t, dir, "/etc/fstab", "UUID=1234 / ext4 defaults 0 1\n/dev/sdb1 /mnt/backup ext4 defaults 0 2\n", 0o644)
		}, "block./etc/fstab", "already mounts /mnt/backup outside the borgkit block"},
		{"a different key pair", func(t *testing.T, dir string) {
			put(t, dir, layout.SSHKey, "-----BEGIN RSA PRIVATE KEY-----\nnot ours\n-----END RSA PRIVATE KEY-----\n", 0o600)
			put(t, dir, layout.SSHKey+".pub", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC user@elsewhere\n", 0o644)
		}, "ssh-key." + layout.SSHKey, "not a usable unencrypted private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			before := snapshot(t, dir)
			r, out, err := runPlan(t, example(t), dir, false)
			if !errors.Is(err, plan.ErrConflict) || r.Conflict != 1 {
				t.Fatalf("want one conflict, got %v\n%s", err, out)
			}
			if !strings.Contains(out, "! "+tt.id) || !strings.Contains(out, tt.reason) {
				t.Fatalf("want ! %s with %q:\n%s", tt.id, tt.reason, out)
			}
			if after := snapshot(t, dir); len(after) != len(before) {
				t.Fatalf("something was applied: %d files before, %d after", len(before), len(after))
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "etc"))
			for _, e := range entries {
				if e.Name() == "borgkit" || e.Name() == "cron.d" {
					t.Fatalf("/etc/%s was created despite the conflict", e.Name())
				}
			}
		})
	}
}

func put(t *testing.T, dir, p, content string, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(dir, p)
	os.MkdirAll(filepath.Dir(full), 0o700)
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// TestSecretsStayPrivate provisions with real borg while watching every
// process's argv and environment, then looks for the passphrases there and
// in every file anyone but root could read.
func TestSecretsStayPrivate(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			procs, _ := filepath.Glob("/proc/[0-9]*")
			for _, p := range procs {
				for _, f := range []string{"cmdline", "environ"} {
					if b, err := os.ReadFile(filepath.Join(p, f)); err == nil && len(b) > 0 {
						mu.Lock()
						seen[string(b)] = true
						mu.Unlock()
					}
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	dir, _ := provisionTree(t, example(t), "john-ai")
	close(stop)
	<-done

	passes, _ := filepath.Glob(filepath.Join(dir, "etc/borgkit/keys/*.pass"))
	if len(passes) != 5 {
		t.Fatalf("want 5 passphrase files, got %v", passes)
	}
	var secrets []string
	for _, p := range passes {
		b, _ := os.ReadFile(p)
		secrets = append(secrets, strings.TrimSpace(string(b)))
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", p, fi.Mode())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 10 {
		t.Fatalf("the watcher saw only %d processes; it cannot have watched the run", len(seen))
	}
	sawBorg := false
	for s := range seen {
		sawBorg = sawBorg || strings.Contains(s, "borg")
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("a passphrase appeared in a process's argv or environment: %q", s)
			}
		}
	}
	if !sawBorg {
		t.Error("the watcher never saw a borg process")
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, _ := d.Info()
		readable := fi.Mode().Perm()&0o044 != 0
		b, _ := os.ReadFile(p)
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) && (readable || !strings.HasSuffix(p, ".pass")) {
				t.Errorf("passphrase found in %s (mode %v)", p, fi.Mode())
			}
		}
		return nil
	})
}

func BenchmarkServerNoChangeLocal(b *testing.B) {
	cfg, err := config.Parse("example.yaml", config.Example())
	if err != nil {
		b.Fatal(err)
	}
	ss, err := recipe.Steps(cfg, "john-ai", options(b))
	if err != nil {
		b.Fatal(err)
	}
	h := host.NewRooted("john-ai", b.TempDir())
	if _, err := plan.Run(context.Background(), h, ss, plan.Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		r, err := plan.Run(context.Background(), h, ss, plan.Options{})
		if err != nil || r.Pending() != 0 {
			b.Fatalf("%v %+v", err, r)
		}
	}
}

// counting records the programs a run starts.
type counting struct {
	host.Host
	mu    sync.Mutex
	progs []string
}

func (c *counting) Run(ctx context.Context, cmd host.Cmd) (host.Result, error) {
	c.mu.Lock()
	c.progs = append(c.progs, cmd.Argv[0])
	c.mu.Unlock()
	return c.Host.Run(ctx, cmd)
}

func TestNoChangeRunStartsNoBorg(t *testing.T) {
	dir := serverTree(t)
	ss, err := recipe.Steps(example(t), "john-ai", options(t))
	if err != nil {
		t.Fatal(err)
	}
	h := &counting{Host: host.NewRooted("john-ai", dir)}
	r, err := plan.Run(context.Background(), h, ss, plan.Options{})
	if err != nil || r.Pending() != 0 {
		t.Fatalf("%v %+v", err, r)
	}
	if len(h.progs) != 0 {
		t.Fatalf("a no-change run under --root started %v", h.progs)
	}
}

func TestRevokeUnlockSticks(t *testing.T) {
	cfg := example(t)
	dir := serverTree(t)
	h := host.NewRooted("john-ai", dir)
	ak := func() string { b, _ := os.ReadFile(filepath.Join(dir, layout.AuthorizedKeys)); return string(b) }
	if !strings.Contains(ak(), "job serve-key pi") || !strings.Contains(ak(), "job watchdog-report pi") {
		t.Fatalf("no serve-key and watchdog-report lines to revoke:\n%s", ak())
	}
	phases, server, err := recipe.Revoke(cfg, "pi", time.Now())
	if err != nil || server.Name != "john-ai" {
		t.Fatal(err)
	}
	for _, ss := range phases {
		if _, err := plan.Run(context.Background(), h, ss, plan.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// A stolen Pi neither gets its key nor reports a healthy Pi.
	if strings.Contains(ak(), "serve-key") || strings.Contains(ak(), "watchdog-report") {
		t.Fatalf("serve-key or watchdog-report line still there:\n%s", ak())
	}
	// A later provision neither restores the line nor regenerates the key.
	ss, _ := recipe.Steps(cfg, "john-ai", options(t))
	if _, err := plan.Run(context.Background(), h, ss, plan.Options{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ak(), "serve-key") || strings.Contains(ak(), "watchdog-report") {
		t.Fatalf("provision restored a revoked unlock:\n%s", ak())
	}
	if _, _, err := recipe.Revoke(cfg, "archive", time.Now()); err == nil {
		t.Fatal("revoking a host without an unlock was accepted")
	}
}
