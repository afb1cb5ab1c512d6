package roles_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/roles"
)

var update = flag.Bool("update", false, "rewrite the golden files under templates/testdata")

const goldenDir = "../templates/testdata"

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
	ss, err := roles.Steps(cfg, name, roles.Options{ConfigData: []byte("config\n")})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, s := range ss {
		switch s := s.(type) {
		case *steps.File:
			if s.Path != config.DefaultPath {
				out[s.Path] = s.Content
			}
		case *steps.Block:
			if s.LinesFrom == nil {
				out[s.Path] = s.Lines
			}
		}
	}
	return out
}

func goldenName(variant, p string) string {
	return filepath.Join(goldenDir, variant, strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "_")+".golden")
}

func TestGolden(t *testing.T) {
	variants := map[string]*config.Config{
		"john-ai":         example(t),
		"john-ai-systemd": example(t, "scheduler: cron", "scheduler: systemd"),
	}
	for variant, cfg := range variants {
		files := rendered(t, cfg, "john-ai")
		if len(files) < 4 {
			t.Fatalf("%s: only %d files rendered", variant, len(files))
		}
		for p, got := range files {
			g := goldenName(variant, p)
			if *update {
				os.MkdirAll(filepath.Dir(g), 0o755)
				if err := os.WriteFile(g, got, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(g)
			if err != nil {
				t.Fatalf("%s: %v (run go test ./roles -update)", p, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s %s differs from %s:\n%s", variant, p, g, plan.UnifiedDiff(p, want, got))
			}
		}
	}
}

// provisionTree provisions the host into a fresh --root tree.
func provisionTree(t *testing.T, cfg *config.Config, name string) (string, *plan.Report) {
	t.Helper()
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed (make deps installs it): the role runs the real borg init")
	}
	dir := t.TempDir()
	self, _ := os.Executable()
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := roles.Steps(cfg, name, roles.Options{ConfigData: config.Example(), BinaryData: bin})
	if err != nil {
		t.Fatal(err)
	}
	h := host.NewRooted(name, dir)
	r, err := plan.Run(context.Background(), h, ss, plan.Options{})
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	return dir, r
}

func TestRenderedFilesPassTheirValidators(t *testing.T) {
	for _, variant := range []string{"cron", "systemd"} {
		t.Run(variant, func(t *testing.T) {
			cfg := example(t, "scheduler: cron", "scheduler: "+variant)
			dir, _ := provisionTree(t, cfg, "john-ai")

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
				checkCron(t, filepath.Join(dir, "etc/cron.d/borgkit"))
				return
			}
			// systemd-analyze verify inside the tree, which needs the
			// system's own targets there for the dependencies.
			cp := exec.Command("cp", "-a", "/lib/systemd/system", filepath.Join(dir, "usr/lib/systemd/"))
			os.MkdirAll(filepath.Join(dir, "usr/lib/systemd"), 0o755)
			if out, err := cp.CombinedOutput(); err != nil {
				t.Fatalf("copy system units: %v %s", err, out)
			}
			units, _ := filepath.Glob(filepath.Join(dir, "etc/systemd/system/borgkit-*"))
			if len(units) != 14 {
				t.Fatalf("want 7 service+timer pairs, got %d units", len(units))
			}
			args := []string{"verify", "--root=" + dir}
			for _, u := range units {
				args = append(args, strings.TrimPrefix(u, dir))
			}
			if out, err := exec.Command("systemd-analyze", args...).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			if _, err := os.Lstat(filepath.Join(dir, "etc/systemd/system/timers.target.wants/borgkit-nightly.timer")); err != nil {
				t.Errorf("timer not enabled in the tree: %v", err)
			}
		})
	}
}

// checkCron parses every job line of a cron.d file: schedule, user, command.
func checkCron(t *testing.T, file string) {
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
		if f[5] != "root" || f[6] != roles.Binary || f[7] != "job" {
			t.Errorf("cron line %d: %q", i+1, l)
		}
		jobs++
	}
	if jobs != 7 {
		t.Errorf("want 7 jobs, got %d", jobs)
	}
}
