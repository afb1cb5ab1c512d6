package jobs

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/testing/sshd"
)

// The unlock against a real sshd. The server's forced command here is a
// stand-in, `cat KEYFILE`, that prints a test key as serve-key would: the
// real serve-key line and its revocation are tested with the server role.

// piCheapKDF keeps luksFormat fast; the KDF is not what is tested.
var piCheapKDF = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha256"}

type unlockLab struct {
	env     *OffsiteEnv
	srv     *sshd.Server
	server  *config.Host
	key     []byte // what the server serves
	keyFile string // the server's copy, the only file allowed to hold the key
	piDir   string // everything on the Pi's side
	log     *bytes.Buffer
}

// piNewKey writes a fresh ed25519 private key in OpenSSH format and returns
// its authorized_keys form.
func piNewKey(t *testing.T, path string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

// newPiUnlockLab starts sshd with the Pi's unlock key authorized for
// command (default: print the key file), and points pi's config at it:
// john-ai is 127.0.0.1 on sshd's port, the identity and known_hosts live in
// the Pi's temporary directory, the disk is an image file there.
func newPiUnlockLab(t *testing.T, command string) *unlockLab {
	t.Helper()
	l := &unlockLab{piDir: t.TempDir(), log: &bytes.Buffer{}}
	// 64 random bytes with a NUL and a final newline: a binary keyfile
	// must arrive byte for byte, nothing trimmed.
	l.key = make([]byte, 64)
	if _, err := rand.Read(l.key); err != nil {
		t.Fatal(err)
	}
	l.key[10], l.key[63] = 0, '\n'
	l.keyFile = filepath.Join(t.TempDir(), "pi-backup.key")
	if err := os.WriteFile(l.keyFile, l.key, 0o400); err != nil {
		t.Fatal(err)
	}
	if command == "" {
		command = "cat " + l.keyFile
	}
	sshDir := filepath.Join(l.piDir, "ssh")
	if err := os.Mkdir(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(sshDir, "unlock_ed25519")
	pub := piNewKey(t, identity)
	l.srv = sshd.Start(t, sshd.Options{AuthorizedKeys: []string{
		`restrict,from="127.0.0.1",command="` + command + `" ` + pub + " borgkit-unlock@pi",
	}})
	knownHosts := filepath.Join(sshDir, "known_hosts")
	kh, err := os.ReadFile(l.srv.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(knownHosts, kh, 0o644); err != nil {
		t.Fatal(err)
	}

	cfg, pi := piConfig(t)
	l.server, _ = cfg.Host("john-ai")
	l.server.Address, l.server.SSH.Port, l.server.SSH.User = "127.0.0.1", l.srv.Port, "root"
	pi.Unlock.Identity = identity
	d := pi.BackupDisk()
	d.Device = filepath.Join(l.piDir, "disk.img")
	d.Mountpoint = filepath.Join(l.piDir, "mnt")
	if err := os.Mkdir(d.Mountpoint, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(l.piDir, "mapper"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.env = &OffsiteEnv{
		Env:          Env{Cfg: cfg, Host: pi, Log: l.log, Store: &state.Store{Dir: filepath.Join(l.piDir, "state"), Host: "pi"}},
		MountInfo:    piMountTable(t, nil),
		KnownHosts:   knownHosts,
		MapperDir:    filepath.Join(l.piDir, "mapper"),
		Backoff:      []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
		FetchTimeout: 20 * time.Second,
		TestOpenOnly: true,
	}
	return l
}

// format puts LUKS2 on the disk image, opened by key.
func (l *unlockLab) format(t *testing.T, key []byte) {
	t.Helper()
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Skip("cryptsetup is not installed")
	}
	img := l.env.Host.BackupDisk().Device
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	c := exec.Command("cryptsetup", append(append([]string{"luksFormat", "--type", "luks2", "--batch-mode", "--key-file", "-"}, piCheapKDF...), img)...)
	c.Stdin = bytes.NewReader(key)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("luksFormat: %v\n%s", err, out)
	}
}

// noKeyAnywhere fails if any file under the Pi's directory, the state
// directory or sshd's directory holds the key, or the log does. The
// server's keyfile is the one place it may be.
func (l *unlockLab) noKeyAnywhere(t *testing.T) {
	t.Helper()
	for _, root := range []string{l.piDir, l.srv.Dir, filepath.Dir(l.keyFile)} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || p == l.keyFile {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s: %v", p, err)
				return nil
			}
			if bytes.Contains(b, l.key) || bytes.Contains(b, l.key[:32]) || bytes.Contains(b, l.key[32:]) {
				t.Errorf("%s holds the key", p)
			}
			return nil
		})
	}
	if bytes.Contains(l.log.Bytes(), l.key[:32]) || bytes.Contains(l.log.Bytes(), l.key[32:]) {
		t.Error("the log holds the key")
	}
}

func (l *unlockLab) record(t *testing.T) (*state.Record, state.UnlockStats) {
	t.Helper()
	rec, err := l.env.Store.Load(layout.JobUnlock)
	if err != nil {
		t.Fatal(err)
	}
	var st state.UnlockStats
	if err := json.Unmarshal(rec.Stats, &st); err != nil {
		t.Fatalf("stats %s: %v", rec.Stats, err)
	}
	return rec, st
}

func (l *unlockLab) resolved(t *testing.T) *OffsiteEnv {
	t.Helper()
	e, err := l.env.resolved()
	if err != nil {
		t.Fatal(err)
	}
	e.prefix = "unlock: "
	return e
}

func TestUnlockFetchesKeyIntoMemoryOnly(t *testing.T) {
	l := newPiUnlockLab(t, "")
	e := l.resolved(t)
	k, tries, err := e.fetchKey(context.Background(), l.server)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log)
	}
	if tries != 1 || !bytes.Equal(k.bytes(), l.key) {
		t.Fatalf("tries %d, fetched %d bytes %x, want %x", tries, len(k.bytes()), k.bytes(), l.key)
	}
	buf := k.buf
	k.wipe()
	if slices.ContainsFunc(buf, func(b byte) bool { return b != 0 }) {
		t.Error("the key buffer is not zeroed after use")
	}
	if l.srv.Logins() != 1 {
		t.Errorf("%d logins", l.srv.Logins())
	}
	l.noKeyAnywhere(t)
}

// TestUnlockOpensWithFetchedKey runs the whole job with TestOpenOnly: the
// key fetched over SSH is fed to the real `cryptsetup open --test-passphrase`
// of a LUKS2 image, proof that it opens the disk. This machine has no
// device-mapper; the real open and mount are proven in the VM lab.
func TestUnlockOpensWithFetchedKey(t *testing.T) {
	l := newPiUnlockLab(t, "")
	l.format(t, l.key)
	if err := Unlock(context.Background(), l.env); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log)
	}
	rec, st := l.record(t)
	if rec.Status != state.OK || st.Server != "john-ai" || st.Tries != 1 || len(st.Disks) != 1 || st.Disks[0].Status != "verified" {
		t.Errorf("record %s %q %+v", rec.Status, rec.Message, st)
	}
	if !strings.Contains(l.log.String(), "unlock: fetched the key from john-ai (127.0.0.1:"+strconv.Itoa(l.srv.Port)+") (64 bytes)") {
		t.Errorf("log:\n%s", l.log)
	}
	l.noKeyAnywhere(t)

	// A disk formatted with another key: the served key is refused by
	// cryptsetup, and the error says which way to look.
	other := bytes.Repeat([]byte{'x'}, 64)
	l.format(t, other)
	err := Unlock(context.Background(), l.env)
	if err == nil || !strings.Contains(err.Error(), "the key served by john-ai does not open "+l.env.Host.BackupDisk().Device) {
		t.Fatalf("err = %v", err)
	}
	if rec, _ := l.record(t); rec.Status != state.Failed || rec.ExitCode != 1 {
		t.Errorf("record %+v", rec)
	}
	l.noKeyAnywhere(t)
}

// piStdinHost stands in for the machine where cryptsetup open and mount
// cannot run: it records each argv and what it got on stdin.
type piStdinHost struct {
	host.Host
	mu    sync.Mutex
	argv  [][]string
	stdin [][]byte
}

func (h *piStdinHost) Run(_ context.Context, c host.Cmd) (host.Result, error) {
	var in []byte
	if c.Stdin != nil {
		in, _ = io.ReadAll(c.Stdin)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.argv = append(h.argv, c.Argv)
	h.stdin = append(h.stdin, in)
	return host.Result{}, nil
}

// TestUnlockOpenAndMountArgv pins the argv of the real open and mount (run
// for real in the VM lab) and that the key reaches cryptsetup on stdin.
func TestUnlockOpenAndMountArgv(t *testing.T) {
	l := newPiUnlockLab(t, "")
	l.format(t, l.key)
	rec := &piStdinHost{Host: host.NewLocal("pi")}
	l.env.Exec, l.env.TestOpenOnly = rec, false
	d := l.env.Host.BackupDisk()
	d.Options = []string{"nofail", "x-systemd.device-timeout=10s", "noatime", "errors=remount-ro"}
	if err := Unlock(context.Background(), l.env); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log)
	}
	mapper := filepath.Join(l.env.MapperDir, "backup")
	want := [][]string{
		{"cryptsetup", "open", "--key-file", "-", d.Device, "backup"},
		{"mount", "-t", "ext4", "-o", "noatime,errors=remount-ro", mapper, d.Mountpoint},
	}
	if !slices.EqualFunc(rec.argv, want, slices.Equal) {
		t.Fatalf("ran %q\nwant %q", rec.argv, want)
	}
	if !bytes.Equal(rec.stdin[0], l.key) || len(rec.stdin[1]) != 0 {
		t.Errorf("stdin of cryptsetup %x, of mount %x", rec.stdin[0], rec.stdin[1])
	}
	if _, st := l.record(t); st.Disks[0].Status != "ok" {
		t.Errorf("stats %+v", st)
	}

	// The mapper is open but the mount failed earlier: only mount, no fetch.
	rec.argv, rec.stdin = nil, nil
	if err := os.WriteFile(mapper, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	logins := l.srv.Logins()
	if err := Unlock(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	if len(rec.argv) != 1 || rec.argv[0][0] != "mount" || l.srv.Logins() != logins {
		t.Errorf("ran %q with %d new logins", rec.argv, l.srv.Logins()-logins)
	}
}

func TestUnlockAlreadyOpenIsQuick(t *testing.T) {
	l := newPiUnlockLab(t, "")
	d := l.env.Host.BackupDisk()
	mapper := filepath.Join(l.env.MapperDir, "backup")
	if err := os.WriteFile(mapper, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l.env.MountInfo = piMountTable(t, map[string]string{d.Mountpoint: mapper})
	start := time.Now()
	if err := Unlock(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second || l.srv.Connections() != 0 {
		t.Errorf("took %s, %d connections", time.Since(start), l.srv.Connections())
	}
	if _, err := l.env.Store.Load(layout.JobUnlock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a record was written for a disk already open: %v", err)
	}

	// Something else mounted there: refused, not mounted over.
	l.env.MountInfo = piMountTable(t, map[string]string{d.Mountpoint: "/dev/sdz1"})
	err := Unlock(context.Background(), l.env)
	if err == nil || !strings.Contains(err.Error(), "already has /dev/sdz1 (ext4) mounted") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnlockServerUnreachable(t *testing.T) {
	l := newPiUnlockLab(t, "")
	l.format(t, l.key)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	l.server.SSH.Port = port
	err = Unlock(context.Background(), l.env)
	where := "john-ai (127.0.0.1:" + strconv.Itoa(port) + ")"
	if err == nil || !strings.Contains(err.Error(), "fetch key from "+where+": unreachable after 3 tries") ||
		!strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("err = %v", err)
	}
	for _, line := range []string{
		"unlock: server " + where + " unreachable: ssh: connect to host 127.0.0.1 port " + strconv.Itoa(port) + ": Connection refused; next try in 10ms",
		"; next try in 20ms",
	} {
		if !strings.Contains(l.log.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, l.log)
		}
	}
	rec, st := l.record(t)
	if rec.Status != state.Failed || st.Tries != 3 || st.Disks[0].Status != "failed" {
		t.Errorf("record %s %+v", rec.Status, st)
	}
}

func TestUnlockRefusesWrongHostKey(t *testing.T) {
	l := newPiUnlockLab(t, "")
	l.format(t, l.key)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(other)
	if err != nil {
		t.Fatal(err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(l.srv.Addr)}, signer.PublicKey())
	if err := os.WriteFile(l.env.KnownHosts, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Unlock(context.Background(), l.env)
	if err == nil || !strings.Contains(err.Error(), "host key does not match "+l.env.KnownHosts) {
		t.Fatalf("err = %v", err)
	}
	// Not retried, and never logged in: no key was asked for.
	if _, st := l.record(t); st.Tries != 1 || l.srv.Logins() != 0 {
		t.Errorf("tries %d, logins %d", st.Tries, l.srv.Logins())
	}
	if strings.Contains(l.log.String(), "next try") {
		t.Errorf("a host key mismatch was retried:\n%s", l.log)
	}
}

func TestUnlockServerRefuses(t *testing.T) {
	tests := []struct {
		name, command, want string
	}{
		{"serve-key refuses", "echo serve-key pi: unlock revoked >&2; exit 1", "the server refused (exit 1): serve-key pi: unlock revoked"},
		{"no key", "true", "the server sent no key"},
		{"too much", "head -c 10000 /dev/zero", "more than 8192 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newPiUnlockLab(t, tt.command)
			l.format(t, l.key)
			err := Unlock(context.Background(), l.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v", err)
			}
			if _, st := l.record(t); st.Tries != 1 {
				t.Errorf("tries %d: a refusal is not retried", st.Tries)
			}
		})
	}
}

func TestUnlockDeviceMissingFetchesNothing(t *testing.T) {
	l := newPiUnlockLab(t, "")
	err := Unlock(context.Background(), l.env) // the image was never created
	if err == nil || !strings.Contains(err.Error(), "is not present") {
		t.Fatalf("err = %v", err)
	}
	if l.srv.Connections() != 0 {
		t.Errorf("%d connections for a disk that is not there", l.srv.Connections())
	}
}

func TestUnlockMissingIdentity(t *testing.T) {
	l := newPiUnlockLab(t, "")
	l.format(t, l.key)
	os.Remove(l.env.Host.Unlock.Identity)
	err := Unlock(context.Background(), l.env)
	if err == nil || !strings.Contains(err.Error(), "unlock identity "+l.env.Host.Unlock.Identity+" is missing (provision pi from john-ai)") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnlockSSHArgv(t *testing.T) {
	cfg, pi := piConfig(t)
	dir := t.TempDir()
	id, kh := filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts")
	os.WriteFile(id, nil, 0o600)
	os.WriteFile(kh, nil, 0o644)
	pi.Unlock.Identity = id
	server, _ := cfg.Host("john-ai")
	e := &OffsiteEnv{Env: Env{Cfg: cfg, Host: pi}, KnownHosts: kh}
	argv, err := e.unlockSSHArgv(server)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ssh", "-F", "none", "-T", "-i", id, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + kh,
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", "22", "root@100.64.0.1"}
	if !slices.Equal(argv, want) {
		t.Errorf("argv %q\nwant %q", argv, want)
	}
	// roles.OffsiteKnownHosts, beside the unlock identity (roles cannot be
	// imported here: it imports this package).
	if layout.UnlockKnownHosts != "/etc/borgkit/ssh/known_hosts" || filepath.Dir(layout.UnlockKnownHosts) != filepath.Dir(layout.UnlockIdentity) {
		t.Errorf("UnlockKnownHosts %s", layout.UnlockKnownHosts)
	}
}

func TestPiMountOptions(t *testing.T) {
	got := offsiteMountOptions([]string{"nofail", "defaults", "x-systemd.device-timeout=10s", "noatime", "_netdev", "noauto", "comment=x", "ro"})
	if !slices.Equal(got, []string{"noatime", "ro"}) {
		t.Errorf("got %q", got)
	}
}
