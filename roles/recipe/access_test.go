package recipe_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/recipe"
	"github.com/borgkit/borgkit/testing/sshd"
)

// keyPair writes an ed25519 key for the ssh client and returns its path and
// public line.
func keyPair(t *testing.T) (string, []byte) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	return p, ssh.MarshalAuthorizedKey(signer.PublicKey())
}

// sshArgv is the OpenSSH client, strict about the host key, with one identity.
func sshArgv(srv *sshd.Server, key string) []string {
	return []string{"ssh", "-i", key, "-p", strconv.Itoa(srv.Port), "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + srv.KnownHostsPath, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"}
}

func runOut(t *testing.T, argv ...string) ([]byte, error) {
	t.Helper()
	return exec.Command(argv[0], argv[1:]...).CombinedOutput()
}

func TestRrsyncKeyIsWriteOnlyAndConfined(t *testing.T) {
	if _, err := os.Stat(recipe.Rrsync); err != nil {
		t.Skip("rrsync is not installed (package rsync)")
	}
	key, pub := keyPair(t)
	base := t.TempDir()
	mount := filepath.Join(base, "mnt-backup")
	os.MkdirAll(mount, 0o755)
	line, err := recipe.RrsyncLine("127.0.0.1", mount, pub)
	if err != nil {
		t.Fatal(err)
	}
	srv := sshd.Start(t, sshd.Options{AuthorizedKeys: []string{string(line)}})
	rsh := strings.Join(sshArgv(srv, key), " ")

	src := filepath.Join(t.TempDir(), "john-ai")
	os.MkdirAll(filepath.Join(src, "data", "0"), 0o755)
	os.WriteFile(filepath.Join(src, "config"), []byte("[repository]\n"), 0o600)
	os.WriteFile(filepath.Join(src, "data", "0", "1"), bytes.Repeat([]byte("x"), 4096), 0o600)
	os.WriteFile(filepath.Join(src, "data", "0", "2"), []byte("pruned soon"), 0o600)

	push := func(args ...string) ([]byte, error) {
		return runOut(t, append([]string{"rsync", "-a", "--delete", "-e", rsh}, args...)...)
	}
	if out, err := push(src+"/", "root@127.0.0.1:john-ai/"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(mount, "john-ai", "data", "0", "1")); err != nil || len(b) != 4096 {
		t.Fatalf("pushed file missing under the mount: %v", err)
	}
	// Deleting pruned segments works.
	os.Remove(filepath.Join(src, "data", "0", "2"))
	if out, err := push(src+"/", "root@127.0.0.1:john-ai/"); err != nil {
		t.Fatalf("second push: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(mount, "john-ai", "data", "0", "2")); !os.IsNotExist(err) {
		t.Fatalf("--delete did not remove the pruned segment: %v", err)
	}
	// Reading back is refused.
	back := t.TempDir()
	if out, err := runOut(t, "rsync", "-a", "-e", rsh, "root@127.0.0.1:john-ai/", back+"/"); err == nil {
		t.Fatalf("read back allowed:\n%s", out)
	}
	if entries, _ := os.ReadDir(back); len(entries) != 0 {
		t.Fatalf("read back copied %v", entries)
	}
	// No shell.
	if out, err := runOut(t, append(sshArgv(srv, key), "root@127.0.0.1", "id")...); err == nil || strings.Contains(string(out), "uid=") {
		t.Fatalf("shell allowed: %v\n%s", err, out)
	}
	// No way out of the mount.
	for _, dest := range []string{"root@127.0.0.1:../escape/", "root@127.0.0.1:" + base + "/escape2/", "root@127.0.0.1:john-ai/../../escape3/"} {
		push(src+"/", dest)
	}
	for _, p := range []string{"escape", "escape2", "escape3"} {
		if _, err := os.Stat(filepath.Join(base, p)); !os.IsNotExist(err) {
			t.Errorf("rsync escaped the mount into %s", filepath.Join(base, p))
		}
	}
}

func TestServeKeyReturnsOnlyThatHostsKey(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "borgkit")
	if out, err := runOut(t, "go", "build", "-o", bin, "github.com/borgkit/borgkit/cmd/borgkit"); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	keyfile := filepath.Join(dir, "pi-backup.key")
	luksKey := make([]byte, 64)
	rand.Read(luksKey)
	os.WriteFile(keyfile, luksKey, 0o400)
	cfgPath := filepath.Join(dir, "borgkit.yaml")
	src := strings.Replace(string(config.Example()), "        luks:\n          key_host: john-ai\n",
		"        luks:\n          key_host: john-ai\n          keyfile: "+keyfile+"\n", 1)
	os.WriteFile(cfgPath, []byte(src), 0o644)

	unlockKey, pub := keyPair(t)
	otherKey, otherPub := keyPair(t)
	line, err := recipe.ServeKeyLine("127.0.0.1", bin+" --config "+cfgPath+" job serve-key pi --host john-ai", pub)
	if err != nil {
		t.Fatal(err)
	}
	// A key whose forced command names a host that is not an unlocked
	// offsite host gets nothing.
	wrong, _ := recipe.ServeKeyLine("127.0.0.1", bin+" --config "+cfgPath+" job serve-key archive --host john-ai", otherPub)
	srv := sshd.Start(t, sshd.Options{AuthorizedKeys: []string{string(line), string(wrong)}})

	for _, asked := range [][]string{nil, {"cat", "/etc/passwd"}, {"job", "serve-key", "archive"}} {
		argv := append(append(sshArgv(srv, unlockKey), "root@127.0.0.1"), asked...)
		c := exec.Command(argv[0], argv[1:]...)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil {
			t.Fatalf("fetch (asked %q): %v\n%s\nsshd:\n%s", asked, err, stderr.String(), srv.Log())
		}
		if !bytes.Equal(stdout.Bytes(), luksKey) {
			t.Fatalf("asked %q, got %d bytes that are not pi's key", asked, stdout.Len())
		}
	}
	out, err := runOut(t, append(sshArgv(srv, otherKey), "root@127.0.0.1")...)
	if err == nil || bytes.Contains(out, luksKey) || !strings.Contains(string(out), "not an offsite host") {
		t.Fatalf("serve-key for archive: %v\n%q", err, out)
	}
}

// TestReportKeyOnlyReports is the Pi's report key as the server role
// authorizes it, against a real sshd and the real borgkit: it hands a
// report to watchdog-report for that one host, whatever command the client
// asks for; it gets no shell, no forwarding, nothing back but the verdict;
// a report that is not one is refused and nothing is kept.
func TestReportKeyOnlyReports(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "borgkit")
	if out, err := runOut(t, "go", "build", "-o", bin, "github.com/borgkit/borgkit/cmd/borgkit"); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "borgkit.yaml")
	os.WriteFile(cfgPath, config.Example(), 0o644)
	stateDir := filepath.Join(dir, "state")
	reportKey, pub := keyPair(t)
	line, err := recipe.ReportKeyLine("127.0.0.1", bin+" --config "+cfgPath+" job watchdog-report pi --host john-ai --state-dir "+stateDir, pub)
	if err != nil {
		t.Fatal(err)
	}
	srv := sshd.Start(t, sshd.Options{AuthorizedKeys: []string{string(line)}})
	kept := filepath.Join(stateDir, layout.WatchdogReports, "pi.json")
	send := func(report string, extra ...string) (string, error) {
		t.Helper()
		os.Remove(kept)
		argv := append(append(append(sshArgv(srv, reportKey), "-T"), extra...), "root@127.0.0.1")
		c := exec.Command(argv[0], argv[1:]...)
		c.Stdin = strings.NewReader(report)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	report := `{"version":1,"host":"pi","sent":"2026-06-12T06:00:00Z","status":"ok","message":"heartbeats fresh","disk_mounted":true,"disk_percent":41,"snapshots":3}`
	for _, asked := range [][]string{nil, {"cat", "/etc/passwd"}, {"job", "watchdog-report", "archive"}} {
		c := append(append(sshArgv(srv, reportKey), "-T", "root@127.0.0.1"), asked...)
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Stdin = strings.NewReader(report)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "report kept" {
			t.Fatalf("report (asked %q): %v\n%s\nsshd:\n%s", asked, err, out, srv.Log())
		}
		b, err := os.ReadFile(kept)
		if err != nil || !strings.Contains(string(b), `"host": "pi"`) || !strings.Contains(string(b), `"from": "127.0.0.1"`) {
			t.Fatalf("kept (asked %q): %v\n%s", asked, err, b)
		}
		os.Remove(kept)
	}
	refused := []struct{ name, report string }{
		{"another host's", strings.Replace(report, `"host":"pi"`, `"host":"archive"`, 1)},
		{"a command in a field", strings.Replace(report, `"version":1`, `"version":1,"command":"id"`, 1)},
		{"an escape sequence", strings.Replace(report, "heartbeats fresh", `\u001b]0;owned\u0007`, 1)},
		{"too long", report + strings.Repeat(" ", 5000)},
		{"nothing", ""},
	}
	for _, r := range refused {
		out, err := send(r.report)
		if err == nil || !strings.Contains(out, "watchdog-report pi") {
			t.Errorf("%s: accepted: %v\n%s", r.name, err, out)
		}
		if _, err := os.Stat(kept); !os.IsNotExist(err) {
			t.Errorf("%s: a refused report was kept", r.name)
		}
	}
	// No shell, and no forwarding (restrict).
	if out, err := send("", "-tt"); strings.Contains(out, "uid=") || err == nil {
		t.Errorf("a terminal session: %v\n%s", err, out)
	}
	if out, err := send("", "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:0:127.0.0.1:"+strconv.Itoa(srv.Port)); err == nil {
		t.Errorf("port forwarding allowed:\n%s", out)
	}
}
