package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func dial(t *testing.T, s *Server, signer ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	check, err := knownhosts.New(s.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: check,
	})
}

func output(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	return string(out)
}

func TestStart(t *testing.T) {
	s := Start(t, Options{})
	key, err := os.ReadFile(s.ClientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(t, s, signer)
	if err != nil {
		t.Fatalf("dial with the harness files: %v\n%s", err, s.Log())
	}
	defer c.Close()
	if got := output(t, c, "id -u"); got != "0\n" {
		t.Errorf("id -u = %q, want root", got)
	}
	if !strings.HasPrefix(s.HostKeyFingerprint, "SHA256:") {
		t.Errorf("fingerprint %q", s.HostKeyFingerprint)
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1 (probes excluded)", n)
	}
	if n := s.Logins(); n != 1 {
		t.Errorf("Logins() = %d, want 1", n)
	}
}

// An extra authorized_keys line with a forced command applies to its key only.
func TestForcedCommand(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, Options{})
	s.AddAuthorizedKey(t, `restrict,command="echo forced" `+string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	c, err := dial(t, s, signer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := output(t, c, "id -u"); got != "forced\n" {
		t.Errorf("forced key ran %q, want the forced command", got)
	}
}
