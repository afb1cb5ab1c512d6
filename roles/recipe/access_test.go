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
