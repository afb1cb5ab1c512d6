package host

import (
	"net"

	"golang.org/x/sys/unix"
)

// quickAck returns c acknowledging at once whatever it reads. sshd turns
// Nagle's algorithm off only for interactive sessions, so a program's
// session holds a small write back while an earlier one is unacknowledged;
// Linux, on its side, delays an acknowledgement up to 40 ms hoping to send
// it with data. Together they stall a conversation of small messages (a
// channel's confirmation behind the login's last answer) by that much
// plus a trip over the link. TCP_QUICKACK is not sticky (the kernel drops
// back to delayed acks), so it is set again before every read.
func quickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{TCPConn: tc, raw: raw}
}

type quickAckConn struct {
	*net.TCPConn
	raw interface {
		Control(func(fd uintptr)) error
	}
}

func (c *quickAckConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	// After the read: the next segment that arrives is acknowledged at
	// once (an error only costs the delay this avoids).
	c.raw.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1) })
	return n, err
}
