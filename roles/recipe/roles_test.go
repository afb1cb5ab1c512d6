package recipe_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/roles/recipe"
	"github.com/borgkit/borgkit/testing/borghome"
)

var update = flag.Bool("update", false, "rewrite the golden files under templates/testdata")

const goldenDir = "../../templates/testdata"

// example is the embedded config, optionally edited, parsed strictly.
func example(t *testing.T, edits ...string) *config.Config {
	t.Helper()
	src := string(config.Example())
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(src, edits[i]) {
			t.Fatalf("example has no %q", edits[i])
		}
		src = strings.Replace(src, edits[i], edits[i+1], 1)
	}
	cfg, err := config.Parse("example.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// rendered collects what each whole-file or block step would write.
func rendered(t *testing.T, cfg *config.Config, name string) map[string][]byte {
	t.Helper()
	ss, err := recipe.Steps(cfg, name, recipe.Options{ConfigData: []byte("config\n")})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, s := range ss {
		switch s := s.(type) {
		case *steps.File:
			if s.Path != layout.ConfigFile {
				out[s.Path] = s.Content
			}
		case *steps.Block:
			if s.LinesFrom == nil && !(s.DropEmpty && len(s.Lines) == 0) {
				out[s.Path] = s.Lines
			}
		}
	}
	return out
}

func goldenName(variant, p string) string {
	return filepath.Join(goldenDir, variant, strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "_")+".golden")
}

// checkGolden compares got with the golden file of variant/p, or rewrites
// it under -update.
func checkGolden(t *testing.T, variant, p string, got []byte) {
	t.Helper()
	g := goldenName(variant, p)
	if *update {
		os.MkdirAll(filepath.Dir(g), 0o755)
		if err := os.WriteFile(g, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(g)
	if err != nil {
		t.Fatalf("%s: %v (run go test ./roles/recipe -update)", p, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s %s differs from %s:\n%s", variant, p, g, plan.UnifiedDiff(p, want, got))
	}
}

func TestGolden(t *testing.T) {
	variants := map[string]struct {
		cfg  *config.Config
		host string
	}{
		"john-ai":         {example(t), "john-ai"},
		"john-ai-systemd": {example(t, "scheduler: cron", "scheduler: systemd"), "john-ai"},
		"pi":              {example(t), "pi"},
		"archive":         {example(t), "archive"},
	}
	for variant, v := range variants {
		files := rendered(t, v.cfg, v.host)
		if len(files) < 4 {
			t.Fatalf("%s: only %d files rendered", variant, len(files))
		}
		for p, got := range files {
			checkGolden(t, variant, p, got)
		}
	}
}

// options are what every test provisions with: the example as the
// installed config and this test binary as the installed borgkit.
func options(t testing.TB) recipe.Options {
	selfOnce.Do(func() {
		self, _ := os.Executable()
		selfBin, selfErr = os.ReadFile(self)
	})
	if selfErr != nil {
		t.Fatal(selfErr)
	}
	return recipe.Options{ConfigData: config.Example(), BinaryData: selfBin}
}

var (
	selfOnce sync.Once
	selfBin  []byte
	selfErr  error
)

// provisionTree provisions the host into a fresh --root tree, with real borg.
func provisionTree(t *testing.T, cfg *config.Config, name string) (string, *plan.Report) {
	t.Helper()
	return provisionInto(t, t.TempDir(), cfg, name)
}

func provisionInto(t testing.TB, dir string, cfg *config.Config, name string) (string, *plan.Report) {
	t.Helper()
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed (make deps installs it): the role runs the real borg init")
	}
	ss, err := recipe.Steps(cfg, name, options(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := plan.Run(context.Background(), host.NewRooted(name, dir), ss, plan.Options{})
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	return dir, r
}

// serverTree is a copy of john-ai provisioned once from the example: five
// borg inits and key exports are paid once per test binary, not per test.
func serverTree(t *testing.T) string {
	t.Helper()
	templateOnce.Do(func() {
		templateDir, templateErr = os.MkdirTemp("", "borgkit-server-tree-")
		if templateErr == nil {
			cfg, err := config.Parse("example.yaml", config.Example())
			if err != nil {
				templateErr = err
				return
			}
			provisionInto(t, templateDir, cfg, "john-ai")
		}
	})
	if templateErr != nil {
		t.Fatal(templateErr)
	}
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-a", templateDir+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy server tree: %v %s", err, out)
	}
	return dir
}

var (
	templateOnce sync.Once
	templateDir  string
	templateErr  error
)

func TestMain(m *testing.M) {
	borghome.Main(m, func() {
		if templateDir != "" {
			os.RemoveAll(templateDir)
		}
	})
}

func TestRenderedFilesPassTheirValidators(t *testing.T) {
	for _, variant := range []string{"cron", "systemd"} {
		t.Run(variant, func(t *testing.T) {
			cfg := example(t, "scheduler: cron", "scheduler: "+variant)
			dir, _ := provisionInto(t, serverTree(t), cfg, "john-ai")

			// fstab: the real findmnt on the whole file borgkit wrote.
			out, _ := exec.Command("findmnt", "--verify", "--verbose", "--tab-file", filepath.Join(dir, "etc/fstab")).CombinedOutput()
			if !strings.Contains(string(out), "0 parse errors") {
				t.Errorf("findmnt --verify:\n%s", out)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "[E]") && !strings.Contains(l, "unreachable") {
					t.Errorf("findmnt: %s", l)
				}
			}

			// logrotate: any error line fails.
			out, err := exec.Command("logrotate", "-d", filepath.Join(dir, "etc/logrotate.d/borgkit")).CombinedOutput()
			if err != nil || strings.Contains(strings.ToLower(string(out)), "error") {
				t.Errorf("logrotate -d: %v\n%s", err, out)
			}

			if variant == "cron" {
				checkCronJobs(t, filepath.Join(dir, "etc/cron.d/borgkit"), 8)
				return
			}
			verifyUnits(t, dir, "etc/systemd/system/borgkit-*", 16)
			if _, err := os.Lstat(filepath.Join(dir, "etc/systemd/system/timers.target.wants/borgkit-nightly.timer")); err != nil {
				t.Errorf("timer not enabled in the tree: %v", err)
			}
		})
	}
}

// checkCronJobs parses every job line of a cron.d file: schedule, user,
// command; there must be want of them.
func checkCronJobs(t *testing.T, file string, want int) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	jobs := 0
	for i, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") || strings.Contains(strings.SplitN(l, " ", 2)[0], "=") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 8 {
			t.Errorf("cron line %d: too few fields: %q", i+1, l)
			continue
		}
		if _, err := config.ParseSchedule(strings.Join(f[:5], " ")); err != nil {
			t.Errorf("cron line %d: %v", i+1, err)
		}
		if f[5] != "root" || f[6] != layout.Binary || f[7] != "job" {
			t.Errorf("cron line %d: %q", i+1, l)
		}
		jobs++
	}
	if jobs != want {
		t.Errorf("want %d jobs, got %d", want, jobs)
	}
}

// checkAuthorizedKeys: the file at path authorizes exactly one key, the
// server's key at key, with exactly the options opts.
func checkAuthorizedKeys(t *testing.T, path, serverDir, key, opts string) {
	t.Helper()
	ak, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(filepath.Join(serverDir, key+".pub"))
	wantKey, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatalf("%s.pub: %v", key, err)
	}
	var lines int
	for _, l := range strings.Split(string(ak), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines++
		got, _, gotOpts, _, err := ssh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			t.Fatalf("%s: line %q: %v", path, l, err)
		}
		if !bytes.Equal(got.Marshal(), wantKey.Marshal()) {
			t.Errorf("%s: key %q is not the server's %s", path, l, key)
		}
		if strings.Join(gotOpts, ",") != opts {
			t.Errorf("%s: options %v", path, gotOpts)
		}
	}
	if lines != 1 {
		t.Errorf("%s: %d authorized keys, want 1", path, lines)
	}
}

func TestOffsiteFromServerTree(t *testing.T) {
	cfg := example(t)
	serverDir := serverTree(t)
	dir := t.TempDir()
	o := options(t)
	o.Local = host.NewRooted("john-ai", serverDir)
	ss, err := recipe.Steps(cfg, "pi", o)
	if err != nil {
		t.Fatal(err)
	}
	// The keys from the server are small files the engine writes beside
	// the others.
	for _, s := range ss {
		if s.ID() == "file."+layout.ReportIdentity {
			if b, ok := s.(plan.Beside); !ok || b.Place() != layout.ReportIdentity {
				t.Errorf("%s is not applied beside other steps", s.ID())
			}
		}
	}
	h := host.NewRooted("pi", dir)
	if _, err := plan.Run(context.Background(), h, ss, plan.Options{}); err != nil {
		t.Fatalf("provision pi: %v", err)
	}
	if r, err := plan.Run(context.Background(), h, ss, plan.Options{}); err != nil || r.Pending() != 0 {
		t.Fatalf("second run: %v %+v", err, r)
	}
	// The unlock identity is the server's pair for this Pi, byte for byte.
	want, _ := os.ReadFile(filepath.Join(serverDir, layout.UnlockKey("pi")))
	got, err := os.ReadFile(filepath.Join(dir, "etc/borgkit/ssh/unlock_ed25519"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("unlock identity not installed from the server: %v", err)
	}
	// So is the watchdog's report identity.
	want, _ = os.ReadFile(filepath.Join(serverDir, layout.ReportKey("pi")))
	if got, err := os.ReadFile(filepath.Join(dir, layout.ReportIdentity)); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("report identity not installed from the server: %v", err)
	}
	// root's authorized_keys: exactly the server's hash key, serve-hashes
	// on the mirror root only; the push key logs in as the push user.
	checkAuthorizedKeys(t, filepath.Join(dir, layout.AuthorizedKeys), serverDir, layout.HashKey,
		`restrict,from="100.64.0.1",command="/usr/local/bin/borgkit job serve-hashes mirror=/mnt/backup/borgkit snapshots=/mnt/backup/borgkit-snapshots"`)
	// The push user's authorized_keys: exactly the server's push key,
	// rrsync write-only, root's file.
	if fi, err := os.Stat(filepath.Join(dir, layout.PushAuthorizedKeys)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("push authorized_keys: %v %v", fi, err)
	}
	checkAuthorizedKeys(t, filepath.Join(dir, layout.PushAuthorizedKeys), serverDir, layout.SSHKey,
		`restrict,from="100.64.0.1",command="/usr/bin/rrsync -wo /mnt/backup/borgkit"`)
	checkCronJobs(t, filepath.Join(dir, "etc/cron.d/borgkit"), 2)
	verifyUnits(t, dir, "etc/systemd/system/borgkit-unlock.*", 2)
	if _, err := os.Lstat(filepath.Join(dir, "etc/systemd/system/timers.target.wants/borgkit-unlock.timer")); err != nil {
		t.Errorf("unlock timer not enabled: %v", err)
	}
}

// verifyUnits runs systemd-analyze verify inside the tree, which needs the
// system's own targets there for the dependencies.
func verifyUnits(t *testing.T, dir, glob string, want int) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "usr/lib/systemd"), 0o755)
	if _, err := os.Stat(filepath.Join(dir, "usr/lib/systemd/system")); err != nil {
		if out, err := exec.Command("cp", "-a", "/lib/systemd/system", filepath.Join(dir, "usr/lib/systemd/")).CombinedOutput(); err != nil {
			t.Fatalf("copy system units: %v %s", err, out)
		}
	}
	units, _ := filepath.Glob(filepath.Join(dir, glob))
	if len(units) != want {
		t.Fatalf("want %d units, got %v", want, units)
	}
	args := []string{"verify", "--root=" + dir}
	for _, u := range units {
		args = append(args, strings.TrimPrefix(u, dir))
	}
	if out, err := exec.Command("systemd-analyze", args...).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestArchiveTree(t *testing.T) {
	dir, r := provisionTree(t, example(t), "archive")
	if r.Skip != 4 {
		t.Errorf("want packages and three ZFS datasets skipped under --root, got %d skips", r.Skip)
	}
	for _, d := range []string{"tank/Secure/Borg", "tank/Secure/backup"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", d, err, fi)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tank/Secure/Borg/backup-repo/config")); err != nil {
		t.Errorf("borg repo: %v", err)
	}
	verifyUnits(t, dir, "etc/systemd/system/borgkit-*", 19) // with the boot unit that loads the ZFS keys
	if fi, err := os.Stat(filepath.Join(dir, "etc/borgkit/keys/tank-Secure.key")); err != nil || fi.Mode().Perm() != 0o400 || fi.Size() != 32 {
		t.Errorf("ZFS keyfile: %v %v", err, fi)
	}
}
