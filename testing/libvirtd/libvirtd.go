// Package libvirtd starts Debian's libvirt daemon for tests: the real
// libvirtd with its QEMU driver, in a private mount namespace whose
// /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
// /var/log/libvirt are empty tmpfs mounts, so the machine's own libvirt
// (and its domains) is never touched. Clients reach it by a socket in the
// test's directory; Start points LIBVIRT_DEFAULT_URI there, so a virsh
// started by the code under test talks to this daemon. Domains are defined,
// never started: no KVM is needed.
package libvirtd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary is the daemon started.
const Binary = "/usr/sbin/libvirtd"

// Daemon is a running libvirtd.
type Daemon struct {
	URI string // qemu:///system?socket=DIR/run/libvirt-sock
	Dir string
}

// Unavailable says why no daemon can be started here, "" when one can.
func Unavailable() string {
	switch {
	case os.Geteuid() != 0:
		return "libvirtd needs root (a private mount namespace)"
	case !exists(Binary):
		return Binary + " is not installed (Debian: libvirt-daemon libvirt-daemon-driver-qemu)"
	}
	for _, p := range []string{"virsh", "unshare"} {
		if _, err := exec.LookPath(p); err != nil {
			return p + " is not installed"
		}
	}
	return ""
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// setup runs inside the new mount namespace: it masks the machine's
// libvirt directories, gives the daemon the libvirt-qemu user its QEMU
// driver looks up at start (Debian's libvirt-daemon-system creates it; here
// only a bind-mounted passwd has it) and runs it as root.
const setup = `set -e
dir=$1
for f in passwd group; do cp /etc/$f "$dir/$f"; done
grep -q '^libvirt-qemu:' "$dir/passwd" || echo 'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin' >> "$dir/passwd"
grep -q '^libvirt-qemu:' "$dir/group" || echo 'libvirt-qemu:x:64055:' >> "$dir/group"
grep -q '^kvm:' "$dir/group" || echo 'kvm:x:64056:' >> "$dir/group"
mount --bind "$dir/passwd" /etc/passwd
mount --bind "$dir/group" /etc/group
for d in /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
  mkdir -p "$d"; mount -t tmpfs -o mode=0755 tmpfs "$d"
done
printf 'user = "root"\ngroup = "root"\n' > /etc/libvirt/qemu.conf
exec ` + Binary + ` --config "$dir/libvirtd.conf" --pid-file "$dir/run/libvirtd.pid"
`

// Start runs a daemon for the test and stops it at its end. It skips the
// test where none can run; BORGKIT_REQUIRE_LIBVIRT makes that a failure.
func Start(t testing.TB) *Daemon {
	t.Helper()
	return start(t, "")
}

// StartIn is Start with the daemon's sockets in sockDir. A lab host whose
// /run/libvirt is sockDir then reaches the daemon as a user's host reaches
// Debian's: by the default URI, with no LIBVIRT_DEFAULT_URI and no config.
func StartIn(t testing.TB, sockDir string) *Daemon {
	t.Helper()
	return start(t, sockDir)
}

func start(t testing.TB, sockDir string) *Daemon {
	t.Helper()
	if why := Unavailable(); why != "" {
		if os.Getenv("BORGKIT_REQUIRE_LIBVIRT") != "" {
			t.Fatalf("libvirtd required: %s", why)
		}
		t.Skip(why)
	}
	dir, err := os.MkdirTemp("", "libvirtd-") // short: a socket path is at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	if sockDir == "" {
		sockDir = run
	} else if err := os.MkdirAll(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("unix_sock_dir = %q\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n", sockDir)
	if err := os.WriteFile(filepath.Join(dir, "libvirtd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "libvirtd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", setup, "libvirtd-setup", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	d := &Daemon{URI: "qemu:///system?socket=" + filepath.Join(sockDir, "libvirt-sock"), Dir: dir}
	// Ready when virsh gets an answer: the QEMU driver probes the
	// emulator's capabilities first (seconds under load).
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := exec.Command("virsh", "-c", d.URI, "uri").CombinedOutput()
		if err == nil {
			break
		}
		select {
		case werr := <-done:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("libvirtd exited (%v):\n%s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("libvirtd did not answer in 90s: %s\n%s", strings.TrimSpace(string(out)), log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Setenv("LIBVIRT_DEFAULT_URI", d.URI)
	return d
}

// Virsh runs virsh against the daemon and fails the test on an error.
func (d *Daemon) Virsh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("virsh", append([]string{"-c", d.URI}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Define defines (never starts) a small QEMU domain whose one disk is the
// image file disk.
func (d *Daemon) Define(t testing.TB, name, disk, format string) {
	t.Helper()
	x := fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='%s'/>
      <source file='%s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`, name, format, disk)
	p := filepath.Join(t.TempDir(), name+".xml")
	if err := os.WriteFile(p, []byte(x), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Virsh(t, "define", p)
}
