package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/borgkit/borgkit/provision/host"
)

// Disk is an extra virtio disk of a guest, besides its root overlay.
type Disk struct {
	// Path is the image file on the host; Format is raw (default) or qcow2.
	Path   string
	Format string
	// Serial is the virtio serial number: the guest's udev names the disk
	// /dev/disk/by-id/virtio-<Serial>, a stable name like a USB disk's.
	Serial string
	// ReadOnly attaches the disk write-protected: the guest's kernel sees a
	// read-only device, so nothing in it can write, whatever it tries.
	ReadOnly bool
}

// ByID is the disk's stable name inside the guest.
func (d Disk) ByID() string { return "/dev/disk/by-id/virtio-" + d.Serial }

// Config describes one guest.
type Config struct {
	// Name is the guest's hostname, and its name in messages and files.
	Name  string
	Image *Image
	// Dir holds the guest's overlay, keys, serial log and qemu's own log.
	Dir string
	// Index makes the guest's MAC addresses distinct from its peer's (1–255).
	Index int
	// Link and End put the guest on a lab link; LabAddress is its address
	// there in CIDR form (10.232.0.1/24).
	Link       *Link
	End        int
	LabAddress string
	// Hosts are extra /etc/hosts lines ("10.232.0.2\tpi").
	Hosts []string
	// Disks are attached after the root disk, in order.
	Disks []Disk
	// LoginKey is authorized for root over the management port.
	LoginKey *Key
	// HostKey is the guest's ssh host key; nil makes a new one. A guest
	// restored from a snapshot must keep the key it was saved with.
	HostKey *Key
	// LoadVM names an internal snapshot of the overlay to resume from
	// (qemu -loadvm) on the first Start instead of booting; later Starts
	// boot, since the disk has moved on from the snapshot.
	LoadVM string
	// MemoryMB defaults to 1024, CPUs to 1, Accel to tcg.
	MemoryMB int
	CPUs     int
	Accel    string
	// Log receives the harness's progress lines (boots, reboots, stops).
	Log io.Writer
}

// Guest is one qemu virtual machine, reached over SSH as root.
type Guest struct {
	cfg     Config
	HostKey *Key
	// Overlay is the guest's root disk: a qcow2 overlay over the image.
	Overlay string
	// Serial is the file the guest's console (kernel, systemd, and the
	// journal forwarded to the console) is appended to, boot after boot.
	Serial string

	mu       sync.Mutex
	proc     *os.Process
	done     chan struct{} // closed when qemu exits
	exitErr  error
	sshPort  int
	conn     host.Host
	bootMark int64 // serial log size when the current boot began
	bootID   string
	restored bool // resumed from a snapshot; WaitSSH sets the clock
}

// NewGuest prepares a guest: its directory, host key and overlay. Nothing
// runs until Start.
func NewGuest(cfg Config) (*Guest, error) {
	if cfg.Image == nil || cfg.LoginKey == nil || cfg.Name == "" || cfg.Dir == "" {
		return nil, errors.New("vm: guest needs Name, Dir, Image and LoginKey")
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 1024
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.Accel == "" {
		cfg.Accel = "tcg"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Index < 1 || cfg.Index > 255 {
		return nil, fmt.Errorf("vm: guest %s: Index %d is not in 1..255", cfg.Name, cfg.Index)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	hk := cfg.HostKey
	if hk == nil {
		var err error
		if hk, err = NewKey("root@" + cfg.Name); err != nil {
			return nil, err
		}
	}
	g := &Guest{cfg: cfg, HostKey: hk, Overlay: filepath.Join(cfg.Dir, "root.qcow2"), Serial: filepath.Join(cfg.Dir, "serial.log")}
	files := map[string][]byte{
		"host_key":        hk.Private,
		"host_key.pub":    hk.AuthorizedKey,
		"authorized_keys": cfg.LoginKey.AuthorizedKey,
		"hosts":           []byte(strings.Join(cfg.Hosts, "\n") + "\n"),
		"login_key":       cfg.LoginKey.Private,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(cfg.Dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	// The overlay is what makes the cached image safe to share: every write
	// of the guest lands here. A snapshot's overlay was put in place by the
	// caller.
	if _, err := os.Stat(g.Overlay); err == nil && cfg.LoadVM != "" {
		return g, nil
	}
	if err := run(context.Background(), io.Discard, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", cfg.Image.Root, g.Overlay); err != nil {
		return nil, err
	}
	return g, nil
}

// Name is the guest's hostname.
func (g *Guest) Name() string { return g.cfg.Name }

// Dir is the guest's run directory.
func (g *Guest) Dir() string { return g.cfg.Dir }

// SSHPort is the port on 127.0.0.1 forwarded to the guest's sshd.
func (g *Guest) SSHPort() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sshPort
}

// SetDisks replaces the extra disks the next Start attaches: unplugging a
// USB disk before a boot is a Stop, SetDisks without it, and a Start.
func (g *Guest) SetDisks(d []Disk) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg.Disks = append([]Disk(nil), d...)
}

func (g *Guest) logf(format string, args ...any) {
	fmt.Fprintf(g.cfg.Log, "%s vm %s: %s\n", time.Now().Format("15:04:05"), g.cfg.Name, fmt.Sprintf(format, args...))
}

// argv is qemu's command line for the guest as configured now.
func (g *Guest) argv(sshPort int) ([]string, error) {
	c := g.cfg
	for _, p := range []string{g.Overlay, g.Serial, c.Image.Kernel, c.Image.Initrd, c.Dir} {
		// qemu's option syntax has no quoting; a comma would split the value.
		if strings.Contains(p, ",") {
			return nil, fmt.Errorf("vm: path %q contains a comma, which qemu options cannot carry", p)
		}
	}
	if c.LabAddress == "" {
		// The image's borgkit-vm-setup reads every entry, and qemu refuses an
		// empty fw_cfg string: a guest with no lab link still needs one (its
		// network file then matches no NIC).
		return nil, fmt.Errorf("vm: guest %s has no LabAddress", c.Name)
	}
	mac := func(kind int) string { return fmt.Sprintf("52:54:00:%02x:00:%02x", kind, c.Index) }
	m, err := MachineFor(c.Image.Recipe.Arch)
	if err != nil {
		return nil, err
	}
	accel := c.Accel
	cpu := m.CPU
	if accel == "kvm" {
		cpu = "host"
	}
	a := []string{
		"-name", c.Name,
		"-machine", m.Type + ",accel=" + accel,
		"-cpu", cpu,
		"-smp", strconv.Itoa(c.CPUs),
		"-m", strconv.Itoa(c.MemoryMB),
		"-nodefaults", "-no-user-config", "-display", "none",
		// A guest's reboot ends qemu and Reboot starts a fresh one. Under
		// TCG a reset in the same process keeps the old boot's translated
		// code, and every write to those pages pays for invalidating it:
		// measured here, boots after a reset took 2 to 4 times as long as
		// a fresh qemu's, growing with what the previous boot had run.
		"-no-reboot",
		"-kernel", c.Image.Kernel, "-initrd", c.Image.Initrd,
		// The journal goes to the console too, so the serial log holds what
		// every unit said during boot even when ssh never comes up.
		"-append", m.KernelCmdline(),
		"-chardev", "file,id=console,path=" + g.Serial + ",append=on",
		"-serial", "chardev:console",
		"-pidfile", filepath.Join(c.Dir, "qemu.pid"),
		"-rtc", "base=utc",
		// Fixed PCI slots keep the root disk /dev/vda and the NICs in place.
		"-netdev", "user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:" + strconv.Itoa(sshPort) + "-:22",
		"-device", "virtio-net-pci,netdev=mgmt,mac=" + mac(0xa0) + ",addr=0x3",
		"-drive", "file=" + g.Overlay + ",if=none,id=root,format=qcow2,cache=unsafe",
		"-device", "virtio-blk-pci,drive=root,addr=0x5",
		"-device", "virtio-rng-pci,addr=0x6",
		"-qmp", "unix:" + g.qmpPath() + ",server=on,wait=off",
	}
	if m.VMGenID {
		// A new VM generation id at every qemu start: a guest resumed from a
		// snapshot reseeds its random generator instead of repeating the
		// numbers of the run before (keys made right after a restore).
		a = append(a, "-device", "vmgenid,guid=auto")
	}
	if c.LoadVM != "" {
		if !m.VMGenID {
			return nil, fmt.Errorf("vm %s: a %s guest cannot resume a snapshot safely (no vmgenid to reseed its random generator)", c.Name, m.Arch)
		}
		a = append(a, "-loadvm", c.LoadVM)
	}
	if c.Link != nil {
		a = append(a, "-netdev", c.Link.netdev("lab", c.End), "-device", "virtio-net-pci,netdev=lab,mac="+mac(0xb0)+",addr=0x4")
	}
	for i, d := range c.Disks {
		if strings.ContainsAny(d.Path+d.Serial, ", ") {
			return nil, fmt.Errorf("vm: disk %q / serial %q: qemu options cannot carry a comma or space", d.Path, d.Serial)
		}
		// virtio-blk keeps the first 20 bytes of a serial, so a longer one
		// gives a by-id name ByID never finds.
		if len(d.Serial) > 20 {
			return nil, fmt.Errorf("vm: disk %q: serial %q is over virtio-blk's 20 bytes", d.Path, d.Serial)
		}
		format := d.Format
		if format == "" {
			format = "raw"
		}
		id := "disk" + strconv.Itoa(i)
		ro := ""
		if d.ReadOnly {
			ro = ",readonly=on"
		}
		a = append(a, "-drive", "file="+d.Path+",if=none,id="+id+",format="+format+",cache=unsafe"+ro,
			"-device", fmt.Sprintf("virtio-blk-pci,drive=%s,serial=%s,addr=0x%x", id, d.Serial, 0x8+i))
	}
	fw := map[string]string{
		"hostname":    "string=" + c.Name,
		"mgmt_mac":    "string=" + mac(0xa0),
		"lab_mac":     "string=" + mac(0xb0),
		"lab_address": "string=" + c.LabAddress,
	}
	for _, f := range []string{"host_key", "host_key.pub", "authorized_keys", "hosts"} {
		fw[strings.ReplaceAll(f, ".", "_")] = "file=" + filepath.Join(c.Dir, f)
	}
	for _, k := range []string{"hostname", "mgmt_mac", "lab_mac", "lab_address", "host_key", "host_key_pub", "authorized_keys", "hosts"} {
		a = append(a, "-fw_cfg", "name=opt/borgkit/"+k+","+fw[k])
	}
	return a, nil
}

// Start boots the guest; WaitSSH waits for it to answer.
func (g *Guest) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.proc != nil {
		return fmt.Errorf("vm %s: already running (pid %d)", g.cfg.Name, g.proc.Pid)
	}
	port, err := freePort("tcp")
	if err != nil {
		return err
	}
	argv, err := g.argv(port)
	if err != nil {
		return err
	}
	qlog, err := os.OpenFile(filepath.Join(g.cfg.Dir, "qemu.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	m, err := MachineFor(g.cfg.Image.Recipe.Arch)
	if err != nil {
		qlog.Close()
		return err
	}
	fmt.Fprintf(qlog, "=== %s %s %s\n", time.Now().Format(time.RFC3339), m.QEMU, host.QuoteArgv(argv))
	if fi, err := os.Stat(g.Serial); err == nil {
		g.bootMark = fi.Size()
	} else {
		g.bootMark = 0
	}
	cmd := exec.Command(m.QEMU, argv...)
	cmd.Stdout, cmd.Stderr = qlog, qlog
	// qemu dies with the test process, even when the test binary is killed
	// by its -timeout and no cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		qlog.Close()
		return fmt.Errorf("vm %s: start qemu: %w", g.cfg.Name, err)
	}
	done := make(chan struct{})
	g.proc, g.done, g.sshPort, g.exitErr, g.bootID = cmd.Process, done, port, nil, ""
	g.restored = g.cfg.LoadVM != ""
	g.cfg.LoadVM = ""
	go func() {
		err := cmd.Wait()
		qlog.Close()
		g.mu.Lock()
		g.exitErr = err
		g.mu.Unlock()
		close(done)
	}()
	how := "boot"
	if g.restored {
		how = "resume snapshot"
	}
	g.logf("qemu pid %d (%s), ssh on 127.0.0.1:%d, accel %s", cmd.Process.Pid, how, port, g.cfg.Accel)
	return nil
}

func (g *Guest) qmpPath() string { return filepath.Join(g.cfg.Dir, "qmp.sock") }

// SaveVM saves the running machine — memory, devices and every disk — as
// an internal snapshot of its qcow2 images, for LoadVM. The guest should
// be idle; the harness's ssh connection is closed first so no half-open
// session is frozen into the snapshot.
func (g *Guest) SaveVM(ctx context.Context, name string) error {
	g.closeConn()
	q, err := dialQMP(ctx, g.qmpPath())
	if err != nil {
		return err
	}
	defer q.Close()
	start := time.Now()
	if err := q.hmp(ctx, "savevm "+name); err != nil {
		return fmt.Errorf("vm %s: %w", g.cfg.Name, err)
	}
	g.logf("saved snapshot %q in %s", name, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// Quit ends qemu through its monitor, at once, without a guest shutdown:
// after SaveVM, whose state is what counts.
func (g *Guest) Quit(ctx context.Context) error {
	done, _ := g.running()
	if done == nil {
		return nil
	}
	g.closeConn()
	q, err := dialQMP(ctx, g.qmpPath())
	if err == nil {
		_, err = q.execute(ctx, "quit", nil)
		q.Close()
	}
	if err != nil {
		g.Kill()
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		g.Kill()
		return ctx.Err()
	}
	g.mu.Lock()
	g.proc, g.done = nil, nil
	g.mu.Unlock()
	return nil
}

// running is qemu's exit channel, nil when no qemu was started.
func (g *Guest) running() (chan struct{}, *os.Process) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done, g.proc
}

// WaitSSH waits up to timeout for sshd to answer with the guest's own host
// key and run a command. It fails early when qemu exits, with the end of
// the console log.
func (g *Guest) WaitSSH(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		done, _ := g.running()
		if done == nil {
			return fmt.Errorf("vm %s: not started", g.cfg.Name)
		}
		select {
		case <-done:
			g.mu.Lock()
			err := g.exitErr
			g.mu.Unlock()
			return fmt.Errorf("vm %s: qemu exited (%v; see %s) before ssh answered; console:%s", g.cfg.Name, err,
				filepath.Join(g.cfg.Dir, "qemu.log"), g.ConsoleTail(30))
		default:
		}
		h, err := g.dial(ctx)
		if err == nil {
			// Bounded: right after `systemctl reboot` the old sshd may still
			// accept, then die mid-session, and nothing would ever tell the
			// client (qemu's user network does not reset the host side).
			pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
			res, rerr := h.Run(pctx, host.Cmd{Argv: []string{"cat", "/proc/sys/kernel/random/boot_id"}})
			if rerr == nil && g.isRestored() {
				// A resumed guest's clock stands where the snapshot left it.
				now := time.Now().UTC()
				_, rerr = h.Run(pctx, host.Cmd{Argv: []string{"date", "-u", "-s", fmt.Sprintf("@%d.%09d", now.Unix(), now.Nanosecond())}})
			}
			pcancel()
			if rerr == nil {
				g.mu.Lock()
				if g.conn != nil {
					g.conn.Close()
				}
				g.conn, g.bootID, g.restored = h, strings.TrimSpace(string(res.Stdout)), false
				g.mu.Unlock()
				g.logf("ssh answers after %s (boot %s)", time.Since(start).Round(100*time.Millisecond), g.bootID[:8])
				return nil
			}
			h.Close()
			err = rerr
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("vm %s: no ssh within %s: %v; console:%s", g.cfg.Name, timeout, last, g.ConsoleTail(30))
		case <-done:
		case <-time.After(time.Second):
		}
	}
}

func (g *Guest) isRestored() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.restored
}

func (g *Guest) dial(ctx context.Context) (host.Host, error) {
	port := g.SSHPort()
	return host.DialSSH(ctx, host.SSHConfig{
		Name: g.cfg.Name, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), User: "root",
		IdentityFiles: []string{filepath.Join(g.cfg.Dir, "login_key")},
		// Pinned: the harness made the key, so there is nothing to trust on
		// first use, and a stale known_hosts entry for a reused port cannot
		// get in the way.
		AcceptHostKey: g.HostKey.Fingerprint(),
		Timeout:       10 * time.Second,
	})
}

// Host is the SSH connection to the guest, opened by WaitSSH: a borgkit
// host.Host for running plans against the guest from the test.
func (g *Guest) Host(ctx context.Context) (host.Host, error) {
	g.mu.Lock()
	h := g.conn
	g.mu.Unlock()
	if h != nil {
		return h, nil
	}
	h, err := g.dial(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn != nil {
		h.Close()
		return g.conn, nil
	}
	g.conn = h
	return h, nil
}

// dropConn forgets a connection that failed, so the next call dials again.
func (g *Guest) dropConn(h host.Host) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn == h {
		g.conn = nil
	}
	h.Close()
}

// Run runs argv on the guest as root.
func (g *Guest) Run(ctx context.Context, argv ...string) (host.Result, error) {
	return g.RunCmd(ctx, host.Cmd{Argv: argv})
}

// RunCmd runs c on the guest as root (Stdin for secrets, never Argv).
func (g *Guest) RunCmd(ctx context.Context, c host.Cmd) (host.Result, error) {
	h, err := g.Host(ctx)
	if err != nil {
		return host.Result{}, err
	}
	res, err := h.Run(ctx, c)
	var ee *host.ExitError
	if err != nil && !errors.As(err, &ee) && ctx.Err() == nil {
		g.dropConn(h)
	}
	return res, err
}

// Output runs argv and returns its stdout, trimmed; a failure is an error
// with the stderr tail.
func (g *Guest) Output(ctx context.Context, argv ...string) (string, error) {
	res, err := g.Run(ctx, argv...)
	return strings.TrimSpace(string(res.Stdout)), err
}

// WriteFile writes a file on the guest over SFTP.
func (g *Guest) WriteFile(ctx context.Context, path string, data []byte, mode os.FileMode) error {
	h, err := g.Host(ctx)
	if err != nil {
		return err
	}
	return h.WriteFile(ctx, path, data, mode, host.Root)
}

// ReadFile reads a file of the guest over SFTP.
func (g *Guest) ReadFile(ctx context.Context, path string) ([]byte, error) {
	h, err := g.Host(ctx)
	if err != nil {
		return nil, err
	}
	return h.ReadFile(ctx, path)
}

// BootID is the kernel's boot id as last seen by WaitSSH: it changes with
// every boot, so a test can tell the guest really rebooted.
func (g *Guest) BootID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bootID
}

// Reboot reboots the guest from inside (systemctl reboot: the path a real
// machine takes, with every unit stopped) and waits for ssh to answer from
// the new boot. The guest's reset ends qemu (-no-reboot) and the same
// machine — overlay, disks, link — boots in a fresh qemu.
func (g *Guest) Reboot(ctx context.Context, timeout time.Duration) error {
	old := g.BootID()
	g.logf("reboot")
	done, _ := g.running()
	if done == nil {
		return fmt.Errorf("vm %s: not started", g.cfg.Name)
	}
	deadline := time.Now().Add(timeout)
	// The connection dies with sshd; the command's own result is moot, and
	// waiting for it is bounded for the same reason as WaitSSH's probe.
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	_, _ = g.Run(rctx, "systemctl", "reboot")
	rcancel()
	g.closeConn()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("vm %s: boot %s did not shut down within %s; console:%s", g.cfg.Name, old, timeout, g.ConsoleTail(30))
	}
	g.mu.Lock()
	err := g.exitErr
	g.proc, g.done = nil, nil
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("vm %s: qemu ended with %v on the reboot (see %s)", g.cfg.Name, err, filepath.Join(g.cfg.Dir, "qemu.log"))
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	if err := g.WaitSSH(ctx, time.Until(deadline)); err != nil {
		return err
	}
	if id := g.BootID(); id == old {
		return fmt.Errorf("vm %s: still on boot %s after the reboot", g.cfg.Name, old)
	}
	return nil
}

func (g *Guest) closeConn() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn != nil {
		g.conn.Close()
		g.conn = nil
	}
}

// Stop shuts the guest down from inside and waits for qemu to exit; after
// timeout qemu is killed. The overlay and disks stay: Start boots the same
// machine again.
func (g *Guest) Stop(ctx context.Context, timeout time.Duration) error {
	done, proc := g.running()
	if done == nil {
		return nil
	}
	g.logf("poweroff")
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, _ = g.Run(ctx2, "systemctl", "poweroff")
	cancel()
	g.closeConn()
	var err error
	select {
	case <-done:
	case <-time.After(timeout):
		err = fmt.Errorf("vm %s: no poweroff within %s; killed qemu pid %d", g.cfg.Name, timeout, proc.Pid)
		_ = proc.Kill()
		<-done
	}
	g.mu.Lock()
	g.proc, g.done = nil, nil
	g.mu.Unlock()
	return err
}

// Kill ends qemu at once (the power cord), by the pid this Guest started.
func (g *Guest) Kill() {
	done, proc := g.running()
	if done == nil {
		return
	}
	g.closeConn()
	_ = proc.Kill()
	<-done
	g.mu.Lock()
	g.proc, g.done = nil, nil
	g.mu.Unlock()
}

// Close kills qemu if it still runs and removes the overlay; with keep the
// run directory stays whole for a post-mortem.
func (g *Guest) Close(keep bool) error {
	g.Kill()
	if keep {
		return nil
	}
	return os.Remove(g.Overlay)
}

// Console is the serial console since the current boot began.
func (g *Guest) Console() string {
	b, err := os.ReadFile(g.Serial)
	if err != nil {
		return ""
	}
	g.mu.Lock()
	mark := g.bootMark
	g.mu.Unlock()
	if mark > int64(len(b)) {
		mark = 0
	}
	return string(b[mark:])
}

// ConsoleTail is the last n lines of the current boot's console, indented
// for an error message.
func (g *Guest) ConsoleTail(n int) string {
	return lastLines(bytes.ReplaceAll([]byte(g.Console()), []byte("\r"), nil), n)
}
