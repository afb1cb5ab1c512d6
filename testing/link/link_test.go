package link

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// echo serves ln: every connection gets back what it sends.
func echo(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

// pingPong sends one byte and waits for it n times; it returns the
// fastest round trip, which a loaded machine inflates least.
func pingPong(t *testing.T, c net.Conn, n int) time.Duration {
	t.Helper()
	best := time.Hour
	b := []byte{1}
	for range n {
		t0 := time.Now()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(t0))
	}
	return best
}

// bulk sends size bytes and reads them back, concurrently; it returns
// how long until the last byte came back.
func bulk(t *testing.T, c net.Conn, size int) time.Duration {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	t0 := time.Now()
	go c.Write(data)
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	d := time.Since(t0)
	if !bytes.Equal(got, data) {
		t.Fatal("the link changed the bytes")
	}
	return d
}

// checkShape checks what a link does to a ping and a bulk copy: never
// faster than the shape allows (the lower bounds hold on any machine),
// and not wildly slower (the upper bounds are loose, for a loaded one).
func checkShape(t *testing.T, c net.Conn, s Shape, turns func() int64) {
	rtt := pingPong(t, c, 10)
	t.Logf("%v: ping-pong round trip %v", s, rtt)
	if rtt < s.RTT() {
		t.Errorf("round trip %v, shorter than the shape's %v", rtt, s.RTT())
	}
	if rtt > 2*s.RTT()+50*time.Millisecond {
		t.Errorf("round trip %v, far beyond the shape's %v", rtt, s.RTT())
	}
	// 10 requests and 10 answers: 20 turns, whatever else TCP sent.
	if n := turns(); n != 20 {
		t.Errorf("%d turns for 10 ping-pongs, want 20", n)
	}
	const size = 512 << 10
	d := bulk(t, c, size)
	// Both directions carry size bytes at once, each at s.Rate.
	min := s.airtime(size) + s.RTT()
	t.Logf("%v: %d KiB there and back in %v (%.1f Mbit/s each way; the shape's least is %v)", s, size>>10, d, float64(size*8)/d.Seconds()/1e6, min)
	if d < min-10*time.Millisecond {
		t.Errorf("bulk copy took %v, faster than the shape allows (%v)", d, min)
	}
	if d > 3*min+time.Second {
		t.Errorf("bulk copy took %v, far slower than the shape's %v", d, min)
	}
}

func TestProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, ln)
	s := Shape{Delay: 15 * time.Millisecond, Rate: 8e6}
	p, err := NewProxy(ln.Addr().String(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkShape(t, c, s, p.Turns)

	// A half close reaches the other side after the data.
	c2, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("last words"))
	c2.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c2)
	if err != nil || string(got) != "last words" {
		t.Errorf("after a half close: %q, %v", got, err)
	}
}

func TestLineDropsWhenFull(t *testing.T) {
	var n int
	l := newLine(Shape{Delay: time.Hour, Queue: 3000}, func([]byte) error { n++; return nil })
	defer l.close()
	for range 5 {
		l.put(make([]byte, 1000), false)
	}
	if s := l.Stats(); s.Frames != 3 || s.Dropped != 2 {
		t.Errorf("queue of 3000 bytes took %d frames of 1000 and dropped %d; want 3 and 2", s.Frames, s.Dropped)
	}
}

func TestTCPPayload(t *testing.T) {
	// Ethernet + IPv4 (20 bytes) + TCP (32 bytes, options) + 7 bytes.
	f := make([]byte, 14+20+32+7)
	f[12], f[13] = 0x08, 0x00
	ipHdr := f[14:]
	ipHdr[0] = 0x45
	ipHdr[2], ipHdr[3] = 0, 20+32+7
	ipHdr[9] = 6
	ipHdr[20+12] = 8 << 4
	if n := tcpPayload(f); n != 7 {
		t.Errorf("payload %d, want 7", n)
	}
	ipHdr[9] = 17 // UDP
	if n := tcpPayload(f); n != 0 {
		t.Errorf("UDP counted as TCP payload %d", n)
	}
}

// netns makes a network namespace for the test; it is deleted after.
func netns(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
}

// RequireEnv turns "Join cannot run here" into a failure (CI).
const RequireEnv = "BORGKIT_REQUIRE_LAB"

func TestJoin(t *testing.T) {
	why := ""
	if os.Geteuid() != 0 {
		why = "Join needs root (network namespaces, /dev/net/tun)"
	} else if _, err := os.Stat("/dev/net/tun"); err != nil {
		why = "no /dev/net/tun"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "no iproute2"
	}
	if why != "" {
		if os.Getenv(RequireEnv) != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	var id [4]byte
	rand.Read(id[:])
	a, b := "borgkit-link-"+hex.EncodeToString(id[:])+"-a", "borgkit-link-"+hex.EncodeToString(id[:])+"-b"
	netns(t, a)
	netns(t, b)
	s := Shape{Delay: 15 * time.Millisecond, Rate: 8e6}
	l, err := Join(End{NetNS: a, Dev: "eth0", Addr: "10.232.0.1/30"}, End{NetNS: b, Dev: "eth0", Addr: "10.232.0.2/30"}, s)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	var ln net.Listener
	if err := InNetNS(b, func() (err error) { ln, err = net.Listen("tcp", "10.232.0.2:7"); return err }); err != nil {
		t.Fatal(err)
	}
	echo(t, ln)
	var c net.Conn
	t0 := time.Now()
	if err := InNetNS(a, func() (err error) { c, err = net.DialTimeout("tcp", "10.232.0.2:7", 10*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// ARP, then SYN, SYN-ACK: the handshake crosses the link too.
	if d := time.Since(t0); d < s.RTT() {
		t.Errorf("connected in %v, faster than one round trip (%v)", d, s.RTT())
	}
	l.ResetTurns()
	checkShape(t, c, s, l.Turns)
	st := l.Stats()
	t.Logf("frames a→b %d (%d bytes, %d dropped), b→a %d (%d bytes, %d dropped)",
		st[0].Frames, st[0].Bytes, st[0].Dropped, st[1].Frames, st[1].Bytes, st[1].Dropped)
}
