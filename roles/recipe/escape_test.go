package recipe_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A From with a display name went into msmtprc as it stood, and msmtp took
// "Backup <me@example.com>" for the envelope sender. msmtprc carries the
// bare address; the mail's From header keeps the name.
func TestMsmtprcCarriesTheBareFromAddress(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "smtp.pass")
	if err := os.WriteFile(pass, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := example(t, "  from: me@example.com", "  from: Backup Appliance <me@example.com>",
		"password_file: /etc/borgkit/smtp.pass", "password_file: "+pass)
	rc := rendered(t, cfg, "john-ai")["/etc/msmtprc"]
	if !strings.Contains(string(rc), "\nfrom me@example.com\n") {
		t.Fatalf("msmtprc:\n%s", rc)
	}
	if _, err := exec.LookPath("msmtp"); err != nil {
		if os.Getenv("BORGKIT_REQUIRE_MSMTP") != "" {
			t.Fatal(err)
		}
		t.Skip("msmtp is not installed (make deps installs it): the rendered file is read by the real msmtp")
	}
	f := filepath.Join(dir, "msmtprc")
	if err := os.WriteFile(f, rc, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("msmtp", "-C", f, "--pretend", "-t")
	cmd.Stdin = strings.NewReader("To: ops@example.com\nSubject: test\n\nbody\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("msmtp --pretend: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "\nfrom = me@example.com\n") {
		t.Fatalf("msmtp reads another sender:\n%s", out)
	}
}
