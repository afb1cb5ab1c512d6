package host_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/host/hosttest"
	"github.com/borgkit/borgkit/testing/sshd"
)

func sshConfig(s *sshd.Server) host.SSHConfig {
	return host.SSHConfig{
		Name:            "sshtest",
		Addr:            s.Addr,
		User:            "root",
		IdentityFiles:   []string{s.ClientKeyPath},
		KnownHostsFiles: []string{s.KnownHostsPath},
		Timeout:         10 * time.Second,
	}
}

func dialSSH(t testing.TB, cfg host.SSHConfig) host.Host {
	t.Helper()
	h, err := host.DialSSH(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

func TestSSH(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "") // the keys under test, not the developer's agent
	s := sshd.Start(t, sshd.Options{})
	hosttest.Run(t, func(t *testing.T) (host.Host, string) {
		return dialSSH(t, sshConfig(s)), t.TempDir()
	})
}

// One TCP connection and one login serve every Run and file operation.
func TestSSHOneConnection(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{})
	conns, logins := s.Connections(), s.Logins()
	h := dialSSH(t, sshConfig(s))
	ctx := context.Background()
	for i := range 50 {
		if _, err := h.Run(ctx, host.Cmd{Argv: []string{"true"}}); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	dir := t.TempDir()
	for i := range 10 {
		p := filepath.Join(dir, "f")
		if err := h.WriteFile(ctx, p, []byte{byte(i)}, 0o600, host.Root); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Lstat(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if n := s.Connections() - conns; n != 1 {
		t.Errorf("sshd saw %d connections for 50 runs and 20 file operations, want 1", n)
	}
	if n := s.Logins() - logins; n != 1 {
		t.Errorf("sshd saw %d logins, want 1", n)
	}
	if n := strings.Count(s.Log(), "subsystem 'sftp'"); n != 1 {
		t.Errorf("sshd started sftp %d times, want 1", n)
	}
}

// Cancelling a Run kills the remote program, not just our wait for it.
func TestSSHCancelKillsRemote(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{})
	h := dialSSH(t, sshConfig(s))
	const marker = "31.4159"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := h.Run(ctx, host.Cmd{Argv: []string{"sleep", marker}})
		errc <- err
	}()
	// Cancel only once the program runs, or the test proves nothing.
	waitFor(t, "remote sleep to start", func() bool { return sleeping(marker) })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	// The kill may finish after Run returned; a loaded machine takes a while.
	waitFor(t, "remote sleep to end", func() bool { return !sleeping(marker) })
}

// More programs at once than sshd allows sessions on a connection (10 by
// default): the host runs a few at a time and the rest wait their turn,
// rather than fail to open a session.
func TestSSHManyRunsAtOnce(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{})
	h := dialSSH(t, sshConfig(s))
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			_, err := h.Run(context.Background(), host.Cmd{Argv: []string{"echo", strconv.Itoa(i)}})
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A large file goes compressed over SSH and arrives byte for byte, with
// its mode, the old content kept.
func TestSSHWriteLargeFile(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{})
	h := dialSSH(t, sshConfig(s))
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "borgkit")
	old := []byte("the previous version\n")
	if err := h.WriteFile(ctx, p, old, 0o755, host.Root); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20)
	rand.Read(data[:1<<20]) // some of it incompressible, like a binary
	for i := 1 << 20; i < len(data); i++ {
		data[i] = byte(i / 4096)
	}
	if err := h.WriteFile(ctx, p, data, 0o755, host.Root); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), wrote %d", len(got), err, len(data))
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode() != 0o755 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	if b, err := os.ReadFile(p + host.OldSuffix); err != nil || !bytes.Equal(b, old) {
		t.Errorf("old copy %q, %v", b, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sleeping reports whether a "sleep marker" process exists on this machine,
// which is also the harness's remote side.
func sleeping(marker string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && string(b) == "sleep\x00"+marker+"\x00" {
			return true
		}
	}
	return false
}

func TestSSHUnknownHostKey(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{})
	for _, files := range [][]string{nil, {filepath.Join(t.TempDir(), "missing")}, {emptyFile(t)}} {
		cfg := sshConfig(s)
		cfg.KnownHostsFiles = files
		_, err := host.DialSSH(context.Background(), cfg)
		if !errors.Is(err, host.ErrHostKeyUnknown) {
			t.Fatalf("known_hosts %q: err = %v, want ErrHostKeyUnknown", files, err)
		}
		t.Log(err)
		for _, want := range []string{s.HostKeyFingerprint, "--accept-host-key " + s.HostKeyFingerprint, "ssh-ed25519", "[127.0.0.1]:"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message lacks %q:\n%v", want, err)
			}
		}
	}
	if n := s.Logins(); n != 0 {
		t.Errorf("%d logins despite an unknown host key", n)
	}
}

func TestSSHHostKeyChanged(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	other := randomKey(t)
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, other)
	if err := os.WriteFile(kh, []byte("# comment\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := sshConfig(s)
	cfg.KnownHostsFiles = []string{kh}
	_, err := host.DialSSH(context.Background(), cfg)
	if !errors.Is(err, host.ErrHostKeyChanged) {
		t.Fatalf("err = %v, want ErrHostKeyChanged", err)
	}
	t.Log(err)
	for _, want := range []string{"HOST KEY CHANGED", kh + ":2", s.HostKeyFingerprint, ssh.FingerprintSHA256(other)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q:\n%v", want, err)
		}
	}
	if n := s.Logins(); n != 0 {
		t.Errorf("%d logins despite a changed host key", n)
	}
}

func TestSSHAcceptHostKey(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	cfg := sshConfig(s)
	cfg.KnownHostsFiles = []string{kh}

	cfg.AcceptHostKey = ssh.FingerprintSHA256(randomKey(t))
	if _, err := host.DialSSH(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), s.HostKeyFingerprint) {
		t.Fatalf("a wrong pin: err = %v", err)
	}

	cfg.AcceptHostKey = s.HostKeyFingerprint
	h := dialSSH(t, cfg)
	key := host.SSHHostKey(h)
	if key == nil || ssh.FingerprintSHA256(key) != s.HostKeyFingerprint {
		t.Fatalf("SSHHostKey = %v", key)
	}
	if err := os.WriteFile(kh, []byte("# no newline at end"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := host.AppendKnownHost(kh, s.Addr, key); err != nil {
		t.Fatal(err)
	}
	cfg.AcceptHostKey = ""
	h2 := dialSSH(t, cfg) // now known
	if _, err := h2.Run(context.Background(), host.Cmd{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if host.SSHHostKey(host.NewLocal("x")) != nil {
		t.Error("SSHHostKey of a local host")
	}
}

func TestSSHAuthFailure(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{})
	cfg := sshConfig(s)
	cfg.IdentityFiles = []string{filepath.Join(t.TempDir(), "missing")}
	if _, err := host.DialSSH(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "no usable private key") {
		t.Errorf("no key: err = %v", err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	stranger := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(stranger, pemEncode(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.IdentityFiles = []string{stranger, filepath.Join(t.TempDir(), "missing")}
	_, err := host.DialSSH(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("unauthorized key: err = %v", err)
	}
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }

func emptyFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomKey(t *testing.T) ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A host with ed25519 and ecdsa keys, known by its ed25519 key only, must not
// look changed: x/crypto on its own would prefer ecdsa.
func TestSSHKnownKeyTypePreferred(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{ECDSAHostKey: true})
	check, err := knownhosts.New(s.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	signer := clientSigner(t, s)
	if _, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: check}); err == nil {
		t.Log("x/crypto picked the known key type by itself; the test below proves less")
	}
	h := dialSSH(t, sshConfig(s))
	if got := host.SSHHostKey(h).Type(); got != ssh.KeyAlgoED25519 {
		t.Errorf("negotiated %s, want the known ed25519", got)
	}
}

func clientSigner(t *testing.T, s *sshd.Server) ssh.Signer {
	b, err := os.ReadFile(s.ClientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

// A server allowing fewer sessions than are opened ahead still runs
// programs, one after another and beside SFTP: the idle sessions are given
// back when sshd refuses a new one.
func TestSSHFewSessions(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(t, sshd.Options{Config: []string{"MaxSessions 3"}})
	h := dialSSH(t, sshConfig(s))
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "f")
	for i := range 8 {
		if _, err := h.Run(ctx, host.Cmd{Argv: []string{"true"}}); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if err := h.WriteFile(ctx, p, []byte{byte(i)}, 0o600, host.Root); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if b, err := h.ReadFile(ctx, p); err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("read %d: %q, %v", i, b, err)
		}
	}
}
