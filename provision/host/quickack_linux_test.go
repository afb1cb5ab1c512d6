package host

import (
	"io"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestQuickAck: in a ping-pong of small messages (an SSH conversation)
// Linux puts a socket in delayed-ack mode; read through quickAck, the
// socket is back in quick-ack mode after every read, and what is read is
// untouched.
func TestQuickAck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wrap  bool
		quick bool // every read leaves the socket in quick-ack mode
	}{
		{"plain socket", false, false},
		{"through quickAck", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				b := make([]byte, 4)
				for range 20 {
					if _, err := c.Write([]byte("ping")); err != nil {
						return
					}
					if _, err := io.ReadFull(c, b); err != nil {
						return
					}
				}
			}()
			tcp, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer tcp.Close()
			c := tcp
			if tc.wrap {
				c = quickAck(tcp)
			}
			raw, err := tcp.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			quickEach := true
			b := make([]byte, 4)
			for range 20 {
				if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
					t.Fatalf("read %q, %v", b, err)
				}
				var v int
				raw.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK) })
				if err != nil {
					t.Fatal(err)
				}
				quickEach = quickEach && v == 1
				if _, err := c.Write([]byte("pong")); err != nil {
					t.Fatal(err)
				}
			}
			if quickEach != tc.quick {
				t.Errorf("quick-ack mode after every read: %v, want %v", quickEach, tc.quick)
			}
		})
	}
}
