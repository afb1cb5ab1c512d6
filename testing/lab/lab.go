package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/borgkit/borgkit/testing/link"
	"github.com/borgkit/borgkit/testing/pingsink"
	"github.com/borgkit/borgkit/testing/smtpsink"
)

// The two lab hosts and their addresses on the veth pair. The /30 exists
// only inside the lab's namespaces, so two labs can run at once.
const (
	Server      = "john-ai"
	Offsite     = "pi"
	ServerAddr  = "10.231.0.1"
	OffsiteAddr = "10.231.0.2"
	prefixLen   = 30

	// SMTPPort is where the mail listener takes msmtp's mail, on every
	// address of john-ai's namespace.
	SMTPPort = 2525
	// PingPort is where the Healthchecks-style check takes the jobs'
	// pings, on the same addresses.
	PingPort = 8025

	// LANPrefix is the /24 of Options.Extra's hosts; john-ai is
	// LANServerAddr on it, the extra hosts .10 onwards.
	LANPrefix     = "10.231.1"
	LANServerAddr = LANPrefix + ".1"
	lanPrefixLen  = 24
	firstExtra    = 10
	maxExtra      = 200
	// lanBridge is the LAN's bridge in john-ai's namespace.
	lanBridge = "lan0"

	// NSPrefix starts every namespace the lab creates:
	// borgkit-<8 hex>-<host>.
	NSPrefix = "borgkit-"
	// dirPrefix starts the lab's temporary directory: borgkit-lab-<8 hex>.
	dirPrefix = "borgkit-lab-"
	// registryDir records each running lab (owner pid, directory) so
	// Cleanup can tell a crashed run's leftovers from a live lab's.
	registryDir = "/run/borgkit-lab"
)

// Options adjust a lab.
type Options struct {
	// TempDir holds the lab's directory (default os.TempDir()).
	TempDir string
	// DiskSize is the size of each loop disk (default 2 GiB, sparse: only
	// what is written takes space). borg compact refuses to run with less
	// free space than one segment (500 MiB) plus its reserve, so a disk
	// much smaller than 1 GiB fails every nightly after the first prune.
	DiskSize int64
	// Log, when set, receives every command the lab runs, with its status.
	Log io.Writer
	// Link, when set, joins the hosts through testing/link's delaying,
	// rate-limiting forwarder instead of a plain veth pair: the offsite
	// link as users have it (a VPN, tens of milliseconds, a home uplink).
	Link *link.Shape
	// HandBuilt puts the first seed's hand-built backup system on the
	// hosts once they run (see handbuilt.go): the system `borgkit adopt`
	// takes over. Such a lab is not for RunScenario, whose provisioning
	// starts from nothing.
	HandBuilt bool
	// Extra names hosts besides john-ai and pi: each is a namespace with
	// its own trees and sshd like theirs, without disks, on the lab's LAN
	// (LANPrefix.10 onwards, in order), a bridge in john-ai's namespace
	// where john-ai is LANServerAddr: a fleet of clients and borg servers
	// (see fleet.go). john-ai relays their mail to the lab's listener.
	Extra []string
}

// Host is one lab machine.
type Host struct {
	Name  string
	Addr  string
	NetNS string // name under /run/netns
	// Dir holds the host's own trees (etc, var, root, mnt, usr-local, run,
	// home), bound over the machine's inside the host's mount namespace.
	Dir string
	// HostPublicKey is its sshd's ed25519 key as an authorized_keys line
	// ("ssh-ed25519 AAAA... root@NAME"); HostKeyFingerprint is SHA256:...
	HostPublicKey      string
	HostKeyFingerprint string

	anchor     *exec.Cmd
	anchorDone chan struct{}
	anchorPID  int
	mntNS      nsID
	netNS      nsID

	mu       sync.Mutex
	sshd     *exec.Cmd
	sshdDone chan struct{}
	sshdLog  string
}

// Disk is a loop-device ext4 disk of a host.
type Disk struct {
	Name       string // usb-backup, nas, backup
	Host       string
	Image      string
	Device     string // /dev/loopN while attached, "" while unplugged
	UUID       string // filesystem UUID, random per lab
	Mountpoint string
}

// Lab is a running two-host lab. Once Start has returned, running
// programs, reading and writing files and reading mail are safe for
// concurrent use; plugging disks and stopping sshd are meant for one test
// goroutine at a time.
type Lab struct {
	ID  string // 8 hex digits in every name the lab creates
	Dir string // the lab's temporary directory

	opts  Options
	hosts []*Host
	disks []*Disk
	sink  *smtpsink.Sink
	pings *pingsink.Sink
	link  *link.Link

	mu     sync.Mutex
	closed bool
}

// Unavailable says why the lab cannot run on this machine, or "".
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "the lab needs root (network namespaces, loop devices, mounts, sshd)"
	}
	for _, p := range []string{ipProg, nsenterProg, unshareProg, losetupProg, mkfsProg, sshdProg, sleepProg} {
		if _, err := os.Stat(p); err != nil {
			return p + " is missing (apt-get install iproute2 util-linux e2fsprogs openssh-server)"
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return "no /dev/loop-control: loop devices are not available in this kernel or container"
	}
	// Root in a container may still lack the capability to make
	// namespaces; a throwaway unshare finds out before anything is built.
	c := exec.Command(unshareProg, "--net", "--mount", "--uts", "--", "/bin/true")
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot create namespaces here (%s: %v: %s)", quote(c.Args), err, strings.TrimSpace(string(out)))
	}
	return ""
}

// Start builds the lab: namespaces, veth pair, per-host trees and mounts,
// disks, sshd on both hosts, the mail listener. On any failure what was
// built is torn down again and the error says which step failed.
func Start(ctx context.Context, opts Options) (_ *Lab, err error) {
	if why := Unavailable(); why != "" {
		return nil, fmt.Errorf("lab: %s", why)
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.DiskSize == 0 {
		opts.DiskSize = 2 << 30
	}
	// Leftovers of crashed runs would hold loop devices and names; labs
	// whose owner is alive are left alone.
	if cerr := Cleanup(NSPrefix); cerr != nil && opts.Log != nil {
		fmt.Fprintf(opts.Log, "lab: cleanup of earlier runs: %v\n", cerr)
	}
	var idb [4]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, fmt.Errorf("lab: random id: %w", err)
	}
	l := &Lab{ID: hex.EncodeToString(idb[:]), opts: opts}
	l.Dir = filepath.Join(opts.TempDir, dirPrefix+l.ID)
	if err := os.Mkdir(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer func() {
		if err != nil {
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("lab teardown after the failure: %w", cerr))
			}
		}
	}()
	if err := l.register(); err != nil {
		return nil, err
	}
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"hosts", l.startHosts},
		{"systemctl stand-in", func(context.Context) error { return l.installStandIns() }},
		{"network", l.startNetwork},
		{"mail and ping listeners", l.startListeners},
		{"disks", l.startDisks},
		{"sshd", l.startSSHDs},
	}
	if opts.HandBuilt {
		steps = append(steps, struct {
			what string
			fn   func(context.Context) error
		}{"hand-built setup", l.buildHandBuilt})
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("lab %s: %s: %w", l.ID, s.what, err)
		}
	}
	return l, nil
}

// register writes the registry entry Cleanup reads: this process owns the
// lab, and its directory is Dir.
func (l *Lab) register() error {
	if err := os.MkdirAll(registryDir, 0o700); err != nil {
		return fmt.Errorf("lab registry: %w", err)
	}
	entry := fmt.Sprintf("%d\n%s\n%s\n", os.Getpid(), l.Dir, procStart(os.Getpid()))
	if err := os.WriteFile(filepath.Join(registryDir, l.ID), []byte(entry), 0o600); err != nil {
		return fmt.Errorf("lab registry: %w", err)
	}
	return nil
}

func (l *Lab) newHost(name, addr string) *Host {
	h := &Host{Name: name, Addr: addr, NetNS: NSPrefix + l.ID + "-" + name, Dir: filepath.Join(l.Dir, "hosts", name)}
	h.sshdLog = filepath.Join(l.Dir, "sshd-"+name+".log")
	l.hosts = append(l.hosts, h)
	return h
}

func (l *Lab) startHosts(ctx context.Context) error {
	l.newHost(Server, ServerAddr)
	l.newHost(Offsite, OffsiteAddr)
	for i, name := range l.opts.Extra {
		if l.Host(name) != nil || !hostNameRE.MatchString(name) {
			return fmt.Errorf("extra host %q: a new host name (lower-case letters, digits, -) is wanted", name)
		}
		if i >= maxExtra {
			return fmt.Errorf("%d extra hosts: the LAN takes at most %d", len(l.opts.Extra), maxExtra)
		}
		l.newHost(name, fmt.Sprintf("%s.%d", LANPrefix, firstExtra+i))
	}
	for _, h := range l.hosts {
		if err := l.buildTree(ctx, h); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if _, err := l.local(ctx, ipProg, "netns", "add", h.NetNS); err != nil {
			return err
		}
		if _, err := l.local(ctx, ipProg, "-n", h.NetNS, "link", "set", "lo", "up"); err != nil {
			return err
		}
		if err := l.startAnchor(ctx, h); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if err := l.mountTree(ctx, h); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	return nil
}

// startAnchor starts the process that holds the host's mount and UTS
// namespaces (its network namespace has a name and holds itself).
func (l *Lab) startAnchor(ctx context.Context, h *Host) error {
	netns := filepath.Join(netnsDir, h.NetNS)
	// Not tied to ctx: the anchor lives until Close, not until Start returns.
	c := command(context.Background(), hostEnv, nsenterProg, "--net="+netns, "--",
		unshareProg, "--mount", "--uts", "--propagation", "private", "--", sleepProg, "infinity")
	if err := c.Start(); err != nil {
		return fmt.Errorf("start namespace anchor: %w", err)
	}
	h.anchor, h.anchorPID, h.anchorDone = c, c.Process.Pid, make(chan struct{})
	go func() { c.Wait(); close(h.anchorDone) }()

	// Nothing may be mounted through the anchor before it has its own
	// mount namespace: nsenter into a process still in the machine's
	// namespace would bind the lab's /etc over the machine's own.
	self, err := statNS("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	selfNet, err := statNS("/proc/self/ns/net")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", h.anchorPID))
		mnt, merr := statNS(fmt.Sprintf("/proc/%d/ns/mnt", h.anchorPID))
		net, nerr := statNS(fmt.Sprintf("/proc/%d/ns/net", h.anchorPID))
		if exe == sleepProg && merr == nil && nerr == nil && mnt != self && net != selfNet {
			h.mntNS, h.netNS = mnt, net
			return nil
		}
		select {
		case <-h.anchorDone:
			return fmt.Errorf("namespace anchor exited: %v", c.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace anchor pid %d did not reach its namespaces within 10s (exe %q)", h.anchorPID, exe)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nsenter is the argv prefix that runs a program in all of h's namespaces.
func (h *Host) nsenter() []string {
	return []string{nsenterProg, "--target", strconv.Itoa(h.anchorPID), "--mount", "--uts", "--net", "--"}
}

// Host returns the named host, or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Hosts are the lab's hosts, server first, then pi and Options.Extra.
func (l *Lab) Hosts() []*Host { return slices.Clone(l.hosts) }

func (l *Lab) names() []string {
	var n []string
	for _, h := range l.hosts {
		n = append(n, h.Name)
	}
	return n
}

// host returns the named host whose anchor still holds its namespaces.
// The check is one stat, and it matters: were the anchor gone and its pid
// reused, nsenter and /proc/PID/root would reach the machine itself, and
// a test's `umount /mnt/backup` would unmount the machine's.
func (l *Lab) host(name string) (*Host, error) {
	h := l.Host(name)
	if h == nil {
		return nil, fmt.Errorf("lab: no host %q (the lab has %s)", name, strings.Join(l.names(), ", "))
	}
	if h.anchorPID == 0 {
		return nil, fmt.Errorf("lab: host %s is not started", name)
	}
	if id, err := statNS(fmt.Sprintf("/proc/%d/ns/mnt", h.anchorPID)); err != nil || id != h.mntNS {
		return nil, fmt.Errorf("lab: host %s is gone (its namespace anchor, pid %d, has exited)", name, h.anchorPID)
	}
	return h, nil
}

// Addr is the host's address on the lab network.
func (l *Lab) Addr(host string) string {
	if h := l.Host(host); h != nil {
		return h.Addr
	}
	return ""
}

// Run runs a program on a host, in its namespaces, with a root login's
// environment and / as working directory.
func (l *Lab) Run(host string, argv ...string) (stdout, stderr []byte, err error) {
	return l.RunContext(context.Background(), host, argv...)
}

// RunContext is Run with a context that kills the program when done.
func (l *Lab) RunContext(ctx context.Context, host string, argv ...string) (stdout, stderr []byte, err error) {
	return l.RunInput(ctx, host, nil, argv...)
}

// RunInput is RunContext with stdin (nil: none).
func (l *Lab) RunInput(ctx context.Context, host string, stdin io.Reader, argv ...string) (stdout, stderr []byte, err error) {
	h, err := l.host(host)
	if err != nil {
		return nil, nil, err
	}
	if len(argv) == 0 {
		return nil, nil, fmt.Errorf("lab: run on %s: empty argv", host)
	}
	return run(ctx, host, l.opts.Log, hostEnv, stdin, argv, append(h.nsenter(), argv...)...)
}

// Path is where the real machine reaches path as host sees it: through
// /proc/ANCHOR/root, which walks the host's mount namespace. An absolute
// symlink met on the way resolves in the machine's namespace, so use it
// for real directories (/mnt/backup, /etc, /root), not through symlinks.
func (l *Lab) Path(host, path string) (string, error) {
	h, err := l.host(host)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("lab: %s: path %q is not absolute", host, path)
	}
	return fmt.Sprintf("/proc/%d/root%s", h.anchorPID, filepath.Clean(path)), nil
}

// WriteFile writes a file on a host with exactly mode, owned by root,
// creating missing parent directories 0755.
func (l *Lab) WriteFile(host, path string, data []byte, mode os.FileMode) error {
	p, err := l.Path(host, path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("lab: %s: %w", host, err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return fmt.Errorf("lab: %s: write %s: %w", host, path, err)
	}
	// WriteFile keeps an existing file's mode and masks a new one's.
	if err := os.Chmod(p, mode); err != nil {
		return fmt.Errorf("lab: %s: %w", host, err)
	}
	if err := os.Lchown(p, 0, 0); err != nil {
		return fmt.Errorf("lab: %s: %w", host, err)
	}
	return nil
}

// ReadFile reads a file on a host.
func (l *Lab) ReadFile(host, path string) ([]byte, error) {
	p, err := l.Path(host, path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %w", host, err)
	}
	return b, nil
}

// Mail is one message the lab's SMTP listener received.
type Mail = smtpsink.Message

// Mails returns the messages received so far, oldest first.
func (l *Lab) Mails() []Mail {
	if l.sink == nil {
		return nil
	}
	return l.sink.Messages()
}

// WaitMails waits until at least n messages have arrived and returns them;
// after timeout it returns what it has and an error.
func (l *Lab) WaitMails(n int, timeout time.Duration) ([]Mail, error) {
	if l.sink == nil {
		return nil, fmt.Errorf("lab: no mail listener")
	}
	return l.sink.WaitFor(n, timeout)
}

// ResetMails forgets the messages received so far.
func (l *Lab) ResetMails() {
	if l.sink != nil {
		l.sink.Reset()
	}
}

// startListeners starts the SMTP listener and the ping check inside
// john-ai's network namespace on every address, so john-ai reaches them on
// 127.0.0.1 or its own address and the Pi over the veth pair.
func (l *Lab) startListeners(context.Context) error {
	h := l.Host(Server)
	var mail, ping net.Listener
	err := inNetNS(h.NetNS, func() error {
		var err error
		if mail, err = net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(SMTPPort))); err != nil {
			return err
		}
		if ping, err = net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(PingPort))); err != nil {
			mail.Close()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("listen in %s: %w", h.NetNS, err)
	}
	l.sink = smtpsink.Serve(mail)
	l.pings = pingsink.Serve(ping, 0)
	return nil
}

// Pings returns the pings the lab's check received so far, oldest first.
func (l *Lab) Pings() []pingsink.Ping {
	if l.pings == nil {
		return nil
	}
	return l.pings.Pings()
}

// startNetwork joins the hosts with a veth pair, eth0 on both sides, or
// with the emulated link of Options.Link.
func (l *Lab) startNetwork(ctx context.Context) error {
	a, b := l.Host(Server), l.Host(Offsite)
	if s := l.opts.Link; s != nil {
		end := func(h *Host) link.End {
			return link.End{NetNS: h.NetNS, Dev: "eth0", Addr: h.Addr + "/" + strconv.Itoa(prefixLen)}
		}
		var err error
		if l.link, err = link.Join(end(a), end(b), *s); err != nil {
			return err
		}
		return l.startLAN(ctx)
	}
	// Both ends are created inside the namespaces, so no interface of the
	// lab ever appears in the machine's own namespace.
	if _, err := l.local(ctx, ipProg, "-n", a.NetNS, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b.NetNS); err != nil {
		return err
	}
	for _, h := range []*Host{a, b} {
		if _, err := l.local(ctx, ipProg, "-n", h.NetNS, "addr", "add", h.Addr+"/"+strconv.Itoa(prefixLen), "dev", "eth0"); err != nil {
			return err
		}
		if _, err := l.local(ctx, ipProg, "-n", h.NetNS, "link", "set", "eth0", "up"); err != nil {
			return err
		}
	}
	return l.startLAN(ctx)
}

// hostNameRE is what an extra host may be called: a host name borgkit's
// config takes, short, as it goes into the namespace's name.
var hostNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)

// startLAN joins Options.Extra's hosts to john-ai: a bridge in john-ai's
// namespace (LANServerAddr) and a veth from each host's eth0 to it. Like
// the pair, nothing of it appears in the machine's own namespace.
func (l *Lab) startLAN(ctx context.Context) error {
	if len(l.opts.Extra) == 0 {
		return nil
	}
	srv := l.Host(Server)
	cmds := [][]string{
		{ipProg, "-n", srv.NetNS, "link", "add", lanBridge, "type", "bridge"},
		{ipProg, "-n", srv.NetNS, "addr", "add", LANServerAddr + "/" + strconv.Itoa(lanPrefixLen), "dev", lanBridge},
		{ipProg, "-n", srv.NetNS, "link", "set", lanBridge, "up"},
	}
	for i, name := range l.opts.Extra {
		h := l.Host(name)
		port := fmt.Sprintf("lanport%d", i)
		cmds = append(cmds,
			[]string{ipProg, "-n", h.NetNS, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", srv.NetNS},
			[]string{ipProg, "-n", h.NetNS, "addr", "add", h.Addr + "/" + strconv.Itoa(lanPrefixLen), "dev", "eth0"},
			[]string{ipProg, "-n", h.NetNS, "link", "set", "eth0", "up"},
			[]string{ipProg, "-n", srv.NetNS, "link", "set", port, "master", lanBridge, "up"},
		)
	}
	for _, c := range cmds {
		if _, err := l.local(ctx, c...); err != nil {
			return err
		}
	}
	return nil
}

// Close tears the lab down, also after a failed Start: the mail listener,
// every process in the hosts' namespaces (killed by pid), the disks'
// mounts (lazily) and loop devices, the namespaces, the directory. It
// goes on past failures and returns them all.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()

	var errs []error
	if l.sink != nil {
		l.sink.Close()
	}
	if l.link != nil {
		errs = append(errs, l.link.Close())
	}
	if l.pings != nil {
		l.pings.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, h := range l.hosts {
		if _, err := l.host(h.Name); err == nil {
			// Unmount first so the loop devices are free the moment the
			// namespace's last process is gone.
			for _, d := range l.disks {
				if d.Host == h.Name && d.Device != "" && d.Mountpoint != "" {
					_, _, _ = run(ctx, h.Name, l.opts.Log, hostEnv, nil, nil, append(h.nsenter(), "umount", "-l", d.Mountpoint)...)
				}
			}
		}
		errs = append(errs, l.killHost(h))
	}
	for _, d := range l.disks {
		if d.Device != "" {
			if err := detach(ctx, l, d.Device); err != nil {
				errs = append(errs, err)
			} else {
				d.Device = ""
			}
		}
	}
	for _, h := range l.hosts {
		if _, err := os.Stat(filepath.Join(netnsDir, h.NetNS)); err == nil {
			if _, err := l.local(ctx, ipProg, "netns", "delete", h.NetNS); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, removeLabDir(l.Dir))
	if err := os.Remove(filepath.Join(registryDir, l.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s close: %w", l.ID, err)
	}
	return nil
}

// killHost kills every process of the host: those in its network
// namespace (all lab processes enter it) and in its mount namespace.
func (l *Lab) killHost(h *Host) error {
	var left []int
	if h.netNS != (nsID{}) {
		left = append(left, killNS("net", h.netNS, 10*time.Second)...)
	}
	if h.mntNS != (nsID{}) {
		left = append(left, killNS("mnt", h.mntNS, 10*time.Second)...)
	}
	for _, done := range []chan struct{}{h.anchorDone, h.sshdDone} {
		if done == nil {
			continue
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			left = append(left, -1)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("%s: processes %v survived SIGKILL", h.Name, left)
	}
	return nil
}

// procStart is a process's start time in clock ticks since boot (field 22
// of /proc/PID/stat), "" if it is gone or a zombie. With the pid it names
// one process for good: a pid alone may have been reused since.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return ""
	}
	return f[19]
}

// removeLabDir removes a lab directory after making sure nothing is
// mounted below it in this mount namespace (the lab mounts only inside
// its own namespaces; this guards against a bug removing a disk's files).
func removeLabDir(dir string) error {
	if dir == "" {
		return nil
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			return fmt.Errorf("not removing %s: %s is mounted in the machine's namespace", dir, f[4])
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// Link is the emulated link between the hosts (Options.Link), or nil.
func (l *Lab) Link() *link.Link { return l.link }

// AnchorPID is the pid holding the host's namespaces, for
// `nsenter --target PID --mount --uts --net` by hand.
func (l *Lab) AnchorPID(host string) int {
	if h := l.Host(host); h != nil {
		return h.anchorPID
	}
	return 0
}
