package link

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Proxy forwards each TCP connection made to Addr on to a target, every
// byte through a Line in each direction. A reader that gets ahead of the
// line waits (TCP's own flow control then holds the sender back), so the
// queue never drops. The TCP handshake with the proxy itself is not
// delayed: a login over a Proxy costs one round trip less than over Join.
type Proxy struct {
	// Addr is where to connect instead of the target (127.0.0.1:PORT).
	Addr string

	shape  Shape
	target string
	ln     net.Listener
	turns  turns

	mu     sync.Mutex
	conns  []net.Conn
	lines  []*Line
	closed bool
	wg     sync.WaitGroup
}

// NewProxy listens on a free port of 127.0.0.1 and forwards to target.
func NewProxy(target string, s Shape) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("link proxy: %w", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), shape: s, target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Turns is how often the payload changed direction, over every
// connection since the start or the last ResetTurns.
func (p *Proxy) Turns() int64 { return p.turns.get() }

// ResetTurns starts counting turns afresh.
func (p *Proxy) ResetTurns() { p.turns.reset() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, s) {
			return
		}
		up := newLine(p.shape, writeTo(s))
		down := newLine(p.shape, writeTo(c))
		p.mu.Lock()
		p.lines = append(p.lines, up, down)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(c, up, 1)
		go p.pump(s, down, 2)
	}
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

// writeTo delivers a line's bytes to c; the empty frame is the sender's
// end of stream, passed on as a half close.
func writeTo(c net.Conn) func([]byte) error {
	return func(b []byte) error {
		if len(b) == 0 {
			if tc, ok := c.(*net.TCPConn); ok {
				return tc.CloseWrite()
			}
			return c.Close()
		}
		_, err := c.Write(b)
		return err
	}
}

// pump reads what one side sends and queues it on the line to the other.
func (p *Proxy) pump(from net.Conn, l *Line, dir int) {
	defer p.wg.Done()
	buf := make([]byte, 16<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.turns.payload(dir)
			if !l.put(append([]byte(nil), buf[:n]...), true) {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				l.put([]byte{}, true)
			}
			return
		}
	}
}

// Close stops listening and cuts every forwarded connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	conns, lines := p.conns, p.lines
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	for _, l := range lines {
		l.close()
	}
	p.wg.Wait()
	return err
}
