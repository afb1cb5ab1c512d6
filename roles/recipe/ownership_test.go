package recipe_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
)

// Files borgkit owns are replaced only when they are borgkit's: a marker
// must start the first line, the installed config carries one, and the
// host file holds this host's name. Each of these was overwritten before
// (a copy kept, but no conflict).
func TestForeignFilesAreConflicts(t *testing.T) {
	for _, tc := range []struct {
		name, path, content string
		id, reason          string
	}{
		{"host file with other content", layout.HostFile, "this machine is mine\n", "file." + layout.HostFile, "not a host name borgkit wrote"},
		{"host file of another host", layout.HostFile, "pi\n", "file." + layout.HostFile, `names this machine borgkit host "pi", not "john-ai"`},
		{"config that is not borgkit's", layout.ConfigFile, "# my notes\nnothing: here\n", "file." + layout.ConfigFile, "not the config borgkit installed"},
		{"marker on the second line", layout.CronFile, "# my own jobs\n# Managed by borgkit, not really\n0 * * * * root true\n", "file." + layout.CronFile, "its first line does not start with"},
		{"marker inside a sentence", layout.LogrotateFile, "# This is not Managed by borgkit.\n/var/log/x { }\n", "file." + layout.LogrotateFile, "its first line does not start with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			put(t, dir, tc.path, tc.content, 0o644)
			_, out, err := runPlan(t, example(t), dir, true)
			if !errors.Is(err, plan.ErrConflict) || !strings.Contains(out, "! "+tc.id) || !strings.Contains(out, tc.reason) {
				t.Fatalf("want ! %s with %q, got %v:\n%s", tc.id, tc.reason, err, out)
			}
		})
	}
}

// The config may be provisioned from its installed place: that file is
// this very config, not a foreign one, and it gets its marker line.
func TestInstalledConfigFromItself(t *testing.T) {
	dir := t.TempDir()
	put(t, dir, layout.ConfigFile, string(config.Example()), 0o640)
	r, out, err := runPlan(t, example(t), dir, true)
	if err != nil || r.Conflict != 0 || !strings.Contains(out, "~ file."+layout.ConfigFile) {
		t.Fatalf("%v:\n%s", err, out)
	}
	inst := config.Installed(config.Example())
	if !strings.HasPrefix(string(inst), "# Managed by borgkit: ") || string(config.Installed(inst)) != string(inst) {
		t.Fatalf("installing the installed config changes it:\n%s", inst)
	}
	if _, err := config.Parse("installed.yaml", inst); err != nil {
		t.Fatal(err)
	}
}

// The fstab candidate used to be written to a fixed path in /etc and
// deleted after: a file of the user's at that path was overwritten and
// lost. Now findmnt reads a copy in a fresh temporary directory.
func TestFstabVerifyLeavesAForeignCandidate(t *testing.T) {
	dir := serverTree(t)
	os.Remove(filepath.Join(dir, "etc/fstab"))
	const mine = "my notes, not an fstab\n"
	put(t, dir, "/etc/fstab.borgkit-candidate", mine, 0o600)
	if _, out, err := runPlan(t, example(t), dir, false); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/fstab.borgkit-candidate")); err != nil || string(b) != mine {
		t.Fatalf("the user's file: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/fstab")); err != nil {
		t.Fatal(err)
	}
}
