// Package sshd starts a real OpenSSH server for tests: its own config, host
// key and client key in a private directory, listening on 127.0.0.1. It needs
// root (sshd's privilege separation) and /usr/sbin/sshd; without them the test
// is skipped, or fails when BORGKIT_REQUIRE_SSHD is set (CI that must not
// quietly lose the SSH tests).
package sshd

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Binary is the sshd started. It must be absolute: sshd re-executes itself.
const Binary = "/usr/sbin/sshd"

// Options adjust a server.
type Options struct {
	// AuthorizedKeys are extra authorized_keys lines, after the line for the
	// harness's client key (e.g. `restrict,command="..." ssh-ed25519 ...`).
	AuthorizedKeys []string
	// ECDSAHostKey gives the server a second host key, ecdsa-sha2-nistp256,
	// which most clients prefer to ed25519. KnownHostsPath still lists only
	// the ed25519 key: the situation of a client that learnt one key type.
	ECDSAHostKey bool
	// Config lines go before the harness's own, so they win: sshd keeps the
	// first value it reads for a keyword. No Match blocks.
	Config []string
	// UserKeys are authorized_keys lines for users other than root, by
	// user name (a real user of this machine, see testing/sysuser). sshd
	// reads them as that user, so they live in a directory anyone can
	// enter, one root-owned 0644 file per user.
	UserKeys map[string][]string
}

// Server is a running sshd.
type Server struct {
	Addr               string // 127.0.0.1:PORT
	Port               int
	Dir                string // private directory holding all the files below
	ClientKeyPath      string // unencrypted ed25519 key authorized for root
	ClientSigner       ssh.Signer
	KnownHostsPath     string // "[127.0.0.1]:PORT ssh-ed25519 ..."
	AuthorizedKeysPath string
	HostKey            ssh.PublicKey // ed25519
	HostKeyFingerprint string        // SHA256:...
	ECDSAHostKey       ssh.PublicKey // nil unless Options.ECDSAHostKey
	// UserKeysDir holds Options.UserKeys, one file per user ("" without).
	UserKeysDir string

	cmd    *exec.Cmd
	log    *syncBuffer
	probes int // readiness connections, not counted by Connections
}

// Start runs sshd until the test ends; it fails the test if sshd does not
// show its banner within 10s.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if reason := unavailable(); reason != "" {
		if os.Getenv("BORGKIT_REQUIRE_SSHD") != "" {
			t.Fatalf("sshd harness required but %s", reason)
		}
		t.Skipf("sshd harness: %s", reason)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation dir
		t.Fatalf("sshd harness: %v", err)
	}
	s := &Server{Dir: privateDir(t)}
	s.writeKeys(t, opts)
	for attempt := 0; ; attempt++ {
		err := s.start(t, opts)
		if err == nil {
			return s
		}
		// Another process may take the free port between our probe and sshd's bind.
		if attempt < 4 && strings.Contains(s.Log(), "Address already in use") {
			continue
		}
		t.Fatalf("sshd harness: %v\nsshd log:\n%s", err, s.Log())
	}
}

func unavailable() string {
	if os.Geteuid() != 0 {
		return "needs root (sshd privilege separation, logging in as root)"
	}
	if _, err := os.Stat(Binary); err != nil {
		return Binary + " is missing (apt-get install openssh-server)"
	}
	return ""
}

// privateDir returns a 0700 root-owned directory on a path that passes sshd's
// StrictModes: every parent root-owned and not group/world-writable. /tmp is
// 1777, so t.TempDir() there fails the check and /run is used instead, or,
// where /run is a world-writable tmpfs (a bare container), /var/lib.
func privateDir(t testing.TB) string {
	dir := t.TempDir()
	if securePath(filepath.Dir(dir)) {
		return chmodPrivate(t, dir)
	}
	for _, base := range []string{"/run", "/var/lib"} {
		if !securePath(base) {
			continue
		}
		dir, err := os.MkdirTemp(base, "borgkit-sshd-")
		if err != nil {
			t.Fatalf("sshd harness: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return chmodPrivate(t, dir)
	}
	t.Fatalf("sshd harness: no directory passes sshd's StrictModes (tried %s, /run and /var/lib)", filepath.Dir(dir))
	return ""
}

func chmodPrivate(t testing.TB, dir string) string {
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatalf("sshd harness: %v", err)
	}
	return dir
}

func securePath(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

func (s *Server) writeKeys(t testing.TB, opts Options) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner := writeKey(t, filepath.Join(s.Dir, "ssh_host_ed25519_key"), priv)
	if opts.ECDSAHostKey {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.ECDSAHostKey = writeKey(t, filepath.Join(s.Dir, "ssh_host_ecdsa_key"), priv).PublicKey()
	}
	s.HostKey = hostSigner.PublicKey()
	s.HostKeyFingerprint = ssh.FingerprintSHA256(s.HostKey)
	s.ClientKeyPath = filepath.Join(s.Dir, "id_ed25519")
	s.ClientSigner = newKey(t, s.ClientKeyPath)
	s.AuthorizedKeysPath = filepath.Join(s.Dir, "authorized_keys")
	lines := append([]string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.ClientSigner.PublicKey())))}, opts.AuthorizedKeys...)
	writeFile(t, s.AuthorizedKeysPath, strings.Join(lines, "\n")+"\n", 0o600)
	if len(opts.UserKeys) > 0 {
		dir, err := os.MkdirTemp("/run", "borgkit-sshd-users-")
		if err != nil {
			t.Fatalf("sshd harness: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatalf("sshd harness: %v", err)
		}
		for user, keys := range opts.UserKeys {
			writeFile(t, filepath.Join(dir, user), strings.Join(keys, "\n")+"\n", 0o644)
		}
		s.UserKeysDir = dir
	}
}

// newKey writes a fresh unencrypted ed25519 key to path.
func newKey(t testing.TB, path string) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writeKey(t, path, priv)
}

// writeKey writes an unencrypted private key in OpenSSH format to path, and
// its public key to path.pub.
func writeKey(t testing.TB, path string, priv crypto.PrivateKey) ssh.Signer {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(pem.EncodeToMemory(block)), 0o600)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path+".pub", string(ssh.MarshalAuthorizedKey(signer.PublicKey())), 0o644)
	return signer
}

func writeFile(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatalf("sshd harness: %v", err)
	}
}

// shellStartupFiles are root's shell startup files, when the harness runs
// as root and can hide them from sshd's sessions.
func shellStartupFiles() []string {
	if os.Geteuid() != 0 {
		return nil
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return nil
	}
	// sshd takes the home from the password database, whatever $HOME says.
	u, err := user.Current()
	if err != nil {
		return nil
	}
	home := u.HomeDir
	var out []string
	for _, n := range []string{".bashrc", ".profile", ".bash_profile", ".bash_login"} {
		p := filepath.Join(home, n)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && !strings.ContainsRune(p, '\'') {
			out = append(out, p)
		}
	}
	return out
}

func (s *Server) start(t testing.TB, opts Options) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.KnownHostsPath = filepath.Join(s.Dir, "known_hosts")
	writeFile(t, s.KnownHostsPath, knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey)+"\n", 0o600)
	config := filepath.Join(s.Dir, "sshd_config")
	writeFile(t, config, s.config(opts), 0o600)

	s.log = &syncBuffer{}
	s.probes = 0
	s.cmd = exec.Command(Binary, "-D", "-e", "-f", config)
	if masked := shellStartupFiles(); len(masked) > 0 {
		// sshd runs every command through the user's login shell, and bash
		// reads ~/.bashrc for it. That file is the machine's, not borgkit's
		// (here it starts pyenv, seconds per session on a loaded machine):
		// in a mount namespace of its own, sshd's sessions see it empty.
		script := ""
		for _, f := range masked {
			script += "mount --bind /dev/null '" + f + "' && "
		}
		s.cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script + `exec "$0" "$@"`, Binary}, s.cmd.Args[1:]...)...)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// Own process group: the per-connection children go with the listener.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); close(exited) }()
	stop := func() {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	if err := s.waitReady(exited, 10*time.Second); err != nil {
		stop()
		return err
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("sshd log (%s):\n%s", s.Addr, s.Log())
		}
	})
	return nil
}

func (s *Server) config(opts Options) string {
	sftp := "internal-sftp"
	if _, err := os.Stat("/usr/lib/openssh/sftp-server"); err == nil {
		sftp = "/usr/lib/openssh/sftp-server" // what Debian's own config uses
	}
	lines := append([]string{}, opts.Config...)
	if s.ECDSAHostKey != nil {
		lines = append(lines, "HostKey "+filepath.Join(s.Dir, "ssh_host_ecdsa_key"))
	}
	lines = append(lines,
		"Port "+strconv.Itoa(s.Port),
		"ListenAddress 127.0.0.1",
		"HostKey "+filepath.Join(s.Dir, "ssh_host_ed25519_key"),
		"PidFile "+filepath.Join(s.Dir, "sshd.pid"),
		"AuthorizedKeysFile "+s.authorizedKeysFiles(),
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes yes",
		"LogLevel VERBOSE",
		"Subsystem sftp "+sftp,
	)
	return strings.Join(lines, "\n") + "\n"
}

// authorizedKeysFiles is root's file, then each other user's.
func (s *Server) authorizedKeysFiles() string {
	if s.UserKeysDir == "" {
		return s.AuthorizedKeysPath
	}
	return s.AuthorizedKeysPath + " " + filepath.Join(s.UserKeysDir, "%u")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits for a connection that shows the SSH banner.
func (s *Server) waitReady(exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited: %v", s.cmd.ProcessState)
		default:
		}
		if err := s.probe(); err == nil {
			return s.waitProbesLogged(deadline)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("no SSH banner on %s after %v: %w", s.Addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitProbesLogged waits until sshd has logged every probe connection: the
// line is written by the per-connection child, possibly after the banner
// reached us, and Connections would otherwise count a late probe as a client.
func (s *Server) waitProbesLogged(deadline time.Time) error {
	for strings.Count(s.Log(), "Connection from ") < s.probes {
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not log its %d readiness connection(s)", s.probes)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func (s *Server) probe() error {
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	s.probes++
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

// Log returns what sshd logged so far.
func (s *Server) Log() string { return s.log.String() }

// Connections counts the TCP connections sshd accepted from clients (its
// "Connection from" lines), not counting the harness's readiness probes.
func (s *Server) Connections() int {
	return strings.Count(s.Log(), "Connection from ") - s.probes
}

// Logins counts successful public key logins.
func (s *Server) Logins() int {
	return strings.Count(s.Log(), "Accepted publickey for ")
}

// AddAuthorizedKey appends a line to authorized_keys; sshd reads the file
// on every login, so it applies to the next connection.
func (s *Server) AddAuthorizedKey(t testing.TB, line string) {
	t.Helper()
	f, err := os.OpenFile(s.AuthorizedKeysPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("sshd harness: %v", err)
	}
	_, err = f.WriteString(strings.TrimRight(line, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("sshd harness: %v", err)
	}
}

// syncBuffer is the sshd log: written by os/exec's copier, read by tests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
