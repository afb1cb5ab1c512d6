package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// End is one side of a joined link: a TAP device made in a named network
// namespace, with an address, up.
type End struct {
	NetNS string // name under /run/netns (ip netns add)
	Dev   string // interface name in that namespace, "eth0"
	Addr  string // address with prefix length, "10.231.0.1/30"
}

// Link is a running Join: a frame one namespace sends on its device is
// read by this process, waits on the Line of its direction and is written
// to the other namespace's device.
type Link struct {
	Shape Shape
	taps  [2]*os.File
	lines [2]*Line // lines[0] carries a's frames to b
	turns turns
	wg    sync.WaitGroup
	once  sync.Once
}

// Join makes a's and b's devices and forwards between them until Close.
// It needs root (CAP_NET_ADMIN in both namespaces) and /dev/net/tun.
func Join(a, b End, s Shape) (_ *Link, err error) {
	l := &Link{Shape: s}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for i, e := range []End{a, b} {
		f, err := openTAP(e.NetNS, e.Dev)
		if err != nil {
			return nil, fmt.Errorf("link %s: %w", e.NetNS, err)
		}
		l.taps[i] = f
		for _, args := range [][]string{{"addr", "add", e.Addr, "dev", e.Dev}, {"link", "set", e.Dev, "up"}} {
			if err := ip(e.NetNS, args...); err != nil {
				return nil, err
			}
		}
	}
	for i := range l.lines {
		to := l.taps[1-i]
		l.lines[i] = newLine(s, func(b []byte) error {
			_, err := to.Write(b)
			if errors.Is(err, unix.EIO) {
				return nil // the device is not up yet, or going down: a lost frame
			}
			return err
		})
	}
	for i := range l.taps {
		l.wg.Add(1)
		go l.pump(i)
	}
	return l, nil
}

// ipProgs are where iproute2's ip may be.
var ipProgs = []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}

func ip(netns string, args ...string) error {
	prog := "ip"
	for _, p := range ipProgs {
		if _, err := os.Stat(p); err == nil {
			prog = p
			break
		}
	}
	argv := append([]string{"-n", netns}, args...)
	if out, err := exec.Command(prog, argv...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %v: %w: %s", argv, err, out)
	}
	return nil
}

// openTAP makes a TAP device in the named namespace: the device belongs
// to the namespace of the thread that opens /dev/net/tun. Without
// IFF_VNET_HDR the kernel hands over whole, checksummed frames of at most
// the MTU, which is what a wire carries.
func openTAP(netns, dev string) (*os.File, error) {
	fd := -1
	err := InNetNS(netns, func() error {
		var err error
		if fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(dev)
		if err == nil {
			ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("tap %s: %w", dev, err)
	}
	// Non-blocking, so reads park in the runtime's poller and Close ends them.
	return os.NewFile(uintptr(fd), "tap-"+dev), nil
}

// InNetNS runs fn on an OS thread moved into the named network namespace
// (/run/netns/NAME). A socket or device made in fn stays in that namespace
// for its whole life, while every other goroutine stays in this process's.
func InNetNS(name string, fn func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", name))
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", name, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the other namespace. Leaving it locked
		// makes the runtime end it with this goroutine instead of reusing it.
		return errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// pump reads the frames tap i sends and queues them on its line.
func (l *Link) pump(i int) {
	defer l.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := l.taps[i].Read(buf)
		if err != nil {
			return
		}
		f := append([]byte(nil), buf[:n]...)
		if tcpPayload(f) > 0 {
			l.turns.payload(i + 1)
		}
		l.lines[i].put(f, false)
	}
}

// tcpPayload is the length of the TCP payload an Ethernet frame carries
// (IPv4 or IPv6 without extension headers); 0 for anything else.
func tcpPayload(f []byte) int {
	if len(f) < 14 {
		return 0
	}
	p := f[14:]
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x0800: // IPv4
		if len(p) < 20 || p[9] != 6 {
			return 0
		}
		ihl := int(p[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(p[2:4]))
		if len(p) < ihl+20 {
			return 0
		}
		return total - ihl - int(p[ihl+12]>>4)*4
	case 0x86dd: // IPv6
		if len(p) < 60 || p[6] != 6 {
			return 0
		}
		return int(binary.BigEndian.Uint16(p[4:6])) - int(p[40+12]>>4)*4
	}
	return 0
}

// Turns is how often the TCP payload changed direction since Join or the
// last ResetTurns.
func (l *Link) Turns() int64 { return l.turns.get() }

// ResetTurns starts counting turns afresh.
func (l *Link) ResetTurns() { l.turns.reset() }

// Stats are each direction's counters: [0] a to b, [1] b to a.
func (l *Link) Stats() [2]LineStats {
	var s [2]LineStats
	for i, ln := range l.lines {
		if ln != nil {
			s[i] = ln.Stats()
		}
	}
	return s
}

// Close removes both devices (they live only as long as their file) and
// stops forwarding.
func (l *Link) Close() error {
	var errs []error
	l.once.Do(func() {
		for _, t := range l.taps {
			if t != nil {
				errs = append(errs, t.Close())
			}
		}
		for _, ln := range l.lines {
			if ln != nil {
				ln.close()
			}
		}
		l.wg.Wait()
	})
	return errors.Join(errs...)
}
