package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// boundDirs are the machine's directories each host gets its own copy of,
// with the name of that copy under Host.Dir. Everything else (/usr, /bin,
// /lib, /tmp, /proc, /dev, /sys) is the machine's, shared: programs are
// installed once, on the real machine.
var boundDirs = []struct{ target, dir string }{
	{"/etc", "etc"},
	{"/root", "root"},
	{"/mnt", "mnt"},
	{"/usr/local", "usr-local"},
	{"/run", "run"},
	// A borg server's repos live under /srv (borg_server.root).
	{"/srv", "srv"},
}

// machineLeftovers are files of borgkit's own that a copy of the machine's
// /etc must not carry into a lab host (a developer may have provisioned the
// machine itself), nor the machine's host keys and mail setup.
var machineLeftovers = []string{
	"borgkit", "cron.d/borgkit", "logrotate.d/borgkit", "msmtprc", "fstab.borgkit-old",
	"ssh/sshd_config.d", "ssh/ssh_known_hosts",
}

// buildTree makes the host's own /etc (a copy of the machine's, adjusted),
// /var, /root, /mnt, /usr/local, /run and /home under h.Dir.
func (l *Lab) buildTree(ctx context.Context, h *Host) error {
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return err
	}
	etc := filepath.Join(h.Dir, "etc")
	if _, err := l.local(ctx, "cp", "-a", "/etc", etc); err != nil {
		return err
	}
	for _, p := range machineLeftovers {
		if err := os.RemoveAll(filepath.Join(etc, p)); err != nil {
			return err
		}
	}
	keys, _ := filepath.Glob(filepath.Join(etc, "ssh", "ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(etc, "cron.d"), 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	hosts := "# lab hosts file\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		ServerAddr + "\t" + Server + "\n" + OffsiteAddr + "\t" + Offsite + "\n"
	// An extra host reaches john-ai, its mail relay, on the LAN.
	mailHost := ServerAddr
	if h.Name != Server && h.Name != Offsite {
		mailHost = LANServerAddr
	}
	for _, o := range l.hosts {
		if o.Name != Server && o.Name != Offsite {
			hosts += o.Addr + "\t" + o.Name + "\n"
		}
	}
	// The lab's fstab mounts nothing: borgkit's provisioning adds the
	// disks in its own block, and a line of ours for /mnt/backup outside
	// that block is exactly what it must refuse as a conflict.
	fstab := "# /etc/fstab of lab host " + h.Name + ": / and /usr are the lab machine's, mounted by it.\n"
	msmtprc := fmt.Sprintf(`# Lab mail: every message goes to the lab's SMTP listener in %s's namespace.
defaults
auth off
tls off
timeout 10
logfile /var/log/msmtp.log

account lab
host %s
port %d
from root@%s.lab

account default : lab
`, Server, mailHost, SMTPPort, h.Name)
	files := []struct {
		path string
		data string
		mode os.FileMode
	}{
		{"etc/hostname", h.Name + "\n", 0o644},
		{"etc/mailname", h.Name + ".lab\n", 0o644},
		{"etc/hosts", hosts, 0o644},
		{"etc/fstab", fstab, 0o644},
		{"etc/msmtprc", msmtprc, 0o600},
		{"etc/ssh/sshd_config", sshdConfig(h), 0o644},
	}
	for _, f := range files {
		if err := writeExact(filepath.Join(h.Dir, f.path), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	if err := h.writeHostKey(filepath.Join(etc, "ssh")); err != nil {
		return err
	}

	dirs := []dirSpec{
		{"root", 0o700}, {"root/.ssh", 0o700},
		{"var", 0o755}, {"var/lib", 0o755}, {"var/lib/dpkg", 0o755}, {"var/log", 0o755},
		{"var/cache", 0o755}, {"var/spool", 0o755}, {"var/spool/cron", 0o755}, {"var/backups", 0o755},
		{"var/tmp", os.ModeSticky | 0o777}, {"var/mail", os.ModeSetgid | 0o775},
		{"mnt", 0o755}, {"mnt/backup", 0o755},
		{"usr-local", 0o755}, {"usr-local/bin", 0o755}, {"usr-local/sbin", 0o755}, {"usr-local/lib", 0o755},
		{"usr-local/share", 0o755}, {"usr-local/etc", 0o755},
		{"run", 0o755}, {"run/sshd", 0o755}, {"run/lock", os.ModeSticky | 0o777},
		{"home", 0o755}, {"srv", 0o755},
	}
	if h.Name == Server {
		dirs = append(dirs, dirSpec{"mnt/nas", 0o755})
	}
	for _, d := range dirs {
		p := filepath.Join(h.Dir, d.path)
		if err := os.Mkdir(p, d.mode); err != nil && !os.IsExist(err) {
			return err
		}
		// Mkdir masks the mode with the umask; sshd's StrictModes and the
		// sticky /var/tmp need it exact.
		if err := os.Chmod(p, d.mode); err != nil {
			return err
		}
	}
	// Debian's /var/run and /var/lock point into /run.
	for name, target := range map[string]string{"var/run": "/run", "var/lock": "/run/lock"} {
		if err := os.Symlink(target, filepath.Join(h.Dir, name)); err != nil {
			return err
		}
	}
	return nil
}

type dirSpec struct {
	path string
	mode os.FileMode
}

func writeExact(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

// writeHostKey gives the host a fresh ed25519 host key, made in Go like
// testing/sshd does (no ssh-keygen run per lab).
func (h *Host) writeHostKey(dir string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "root@"+h.Name)
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	h.HostPublicKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " root@" + h.Name
	h.HostKeyFingerprint = ssh.FingerprintSHA256(signer.PublicKey())
	if err := writeExact(filepath.Join(dir, "ssh_host_ed25519_key"), pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	return writeExact(filepath.Join(dir, "ssh_host_ed25519_key.pub"), []byte(h.HostPublicKey+"\n"), 0o644)
}

// sshdConfig is the whole sshd_config of a lab host: root by key only, on
// port 22 of its lab address. UsePAM is off because the lab hosts share
// the machine's PAM stack, which may want services the namespaces lack.
func sshdConfig(h *Host) string {
	sftp := "internal-sftp"
	if _, err := os.Stat("/usr/lib/openssh/sftp-server"); err == nil {
		sftp = "/usr/lib/openssh/sftp-server" // what Debian's own config uses
	}
	return strings.Join([]string{
		"# sshd of lab host " + h.Name,
		"ListenAddress " + h.Addr + ":22",
		"HostKey /etc/ssh/ssh_host_ed25519_key",
		"PidFile /run/sshd.pid",
		"AuthorizedKeysFile .ssh/authorized_keys",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes yes",
		"X11Forwarding no",
		"PrintMotd no",
		"AcceptEnv LANG LC_*",
		"LogLevel VERBOSE",
		"Subsystem sftp " + sftp,
	}, "\n") + "\n"
}

// mountTree binds the host's trees over the machine's inside the host's
// mount namespace and sets its hostname.
func (l *Lab) mountTree(ctx context.Context, h *Host) error {
	if _, err := l.host(h.Name); err != nil {
		return err
	}
	var cmds [][]string
	// dpkg's database is the machine's, read-only: provisioning asks it
	// which packages are installed, and programs are the machine's. It is
	// bound into the host's /var before that /var is bound recursively.
	hostDpkg := filepath.Join(h.Dir, "var/lib/dpkg")
	cmds = append(cmds,
		[]string{"mount", "--bind", "/var/lib/dpkg", hostDpkg},
		[]string{"mount", "-o", "remount,bind,ro", hostDpkg},
		[]string{"mount", "--rbind", filepath.Join(h.Dir, "var"), "/var"},
	)
	for _, b := range boundDirs {
		cmds = append(cmds, []string{"mount", "--bind", filepath.Join(h.Dir, b.dir), b.target})
	}
	if h.Name == Server {
		// /home is a source that must be a mountpoint (must_be_mountpoints).
		cmds = append(cmds, []string{"mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", "/home"})
	} else {
		cmds = append(cmds, []string{"mount", "--bind", filepath.Join(h.Dir, "home"), "/home"})
	}
	cmds = append(cmds, []string{"hostname", h.Name})
	for _, c := range cmds {
		if _, _, err := run(ctx, h.Name, l.opts.Log, hostEnv, nil, c, append(h.nsenter(), c...)...); err != nil {
			return err
		}
	}
	return nil
}

// savedDirs are the trees of a host SaveTree copies: everything a
// provisioning writes outside the host's disks.
var savedDirs = []string{"etc", "root", "usr-local", "var", "run", "home"}

// SavedTree is a copy of a host's own trees, to put the host back as it
// was: a fresh host for every measured first provisioning. The host's
// disks are not in it.
type SavedTree struct {
	l    *Lab
	h    *Host
	copy string
}

// SaveTree copies the host's trees (/etc, /root, /usr/local, /var, /run,
// /home) aside, in the lab directory.
func (l *Lab) SaveTree(ctx context.Context, host string) (*SavedTree, error) {
	h, err := l.host(host)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(l.Dir, "saved-"+host+"-")
	if err != nil {
		return nil, fmt.Errorf("lab: save %s: %w", host, err)
	}
	for _, d := range savedDirs {
		// dpkg's database is the machine's, bound read-only inside the
		// host only: from here the directory is empty and stays so.
		if _, err := l.local(ctx, "cp", "-a", filepath.Join(h.Dir, d), filepath.Join(dir, d)); err != nil {
			return nil, err
		}
	}
	return &SavedTree{l: l, h: h, copy: dir}, nil
}

// Restore makes the host's trees what they were when saved: new files go,
// changed ones get their old content, mode and owner back (compared by
// content: a rewrite within the same second keeps size and mtime). Programs the
// host runs (sshd) keep running.
func (s *SavedTree) Restore(ctx context.Context) error {
	for _, d := range savedDirs {
		if _, err := s.l.local(ctx, "rsync", "-a", "--checksum", "--delete", filepath.Join(s.copy, d)+"/", filepath.Join(s.h.Dir, d)+"/"); err != nil {
			return err
		}
	}
	return nil
}
