// Package vagrant holds the Vagrantfile for users; this test keeps it and
// its borgkit config valid.
package vagrant

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/config"
)

func TestConfigIsValid(t *testing.T) {
	cfg, err := config.Load("borgkit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Host("john-ai"); !ok {
		t.Fatal("no john-ai")
	}
}

func TestVagrantValidate(t *testing.T) {
	if _, err := exec.LookPath("vagrant"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("vagrant is missing; .ci/run installs it")
		}
		t.Skip("vagrant is not installed (apt-get install vagrant)")
	}
	// Validate a copy: vagrant leaves a .vagrant directory where it runs
	// (with the admin key the Vagrantfile makes). The Vagrantfile reads
	// its disks from borgkit.yaml beside it.
	dir := t.TempDir()
	for _, name := range []string{"Vagrantfile", "borgkit.yaml"} {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := exec.Command("vagrant", "validate", "--ignore-provider")
	c.Dir = dir
	c.Env = append(os.Environ(), "VAGRANT_HOME="+t.TempDir(), "VAGRANT_CHECKPOINT_DISABLE=1")
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "validated successfully") {
		t.Fatalf("vagrant validate: %v\n%s", err, out)
	}
}
