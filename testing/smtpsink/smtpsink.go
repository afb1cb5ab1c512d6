package smtpsink

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Limits keep a misbehaving client from holding a test hostage or filling
// memory: a test that trips one of them sees an SMTP error, not a hang.
const (
	// MaxMessageSize bounds one message's data (after dot-unstuffing); it is
	// advertised as SIZE, and a larger message gets 552.
	MaxMessageSize = 10 << 20
	// MaxRecipients bounds RCPT TO per message.
	MaxRecipients = 100
	// IdleTimeout is how long the sink waits for the client's next line.
	IdleTimeout = 10 * time.Second
	// SessionTimeout bounds a whole connection.
	SessionTimeout = 2 * time.Minute

	maxCommandLine = 4096 // RFC 5321 says 512; msmtp stays well below
	maxDataLine    = 64 << 10
)

// Sink is a running SMTP server. Its methods are safe for concurrent use.
type Sink struct {
	ln   net.Listener
	port int

	mu      sync.Mutex
	msgs    []Message
	changed chan struct{} // closed and replaced on every new message
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// Start listens on 127.0.0.1 on a free port and serves until the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtpsink: listen: %v", err)
	}
	s := Serve(ln)
	t.Cleanup(s.Close)
	return s
}

// Serve serves on ln until Close: for listeners a test cannot make with
// Start, such as one inside a lab host's network namespace.
func Serve(ln net.Listener) *Sink {
	s := &Sink{
		ln:      ln,
		changed: make(chan struct{}),
		conns:   map[net.Conn]struct{}{},
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		s.port = a.Port
	}
	s.wg.Add(1)
	go s.serve()
	return s
}

// Addr is the listening address, 127.0.0.1:PORT.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Port is the listening port.
func (s *Sink) Port() int { return s.port }

// Messages returns the messages received so far, oldest first.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitFor waits until at least n messages have arrived and returns them all;
// after timeout it returns what it has and an error.
func (s *Sink) WaitFor(n int, timeout time.Duration) ([]Message, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, ch := append([]Message(nil), s.msgs...), s.changed
		s.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return got, fmt.Errorf("smtpsink: %d of %d messages after %s", len(got), n, timeout)
		}
	}
}

// Reset forgets the messages received so far.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.msgs = nil
	s.mu.Unlock()
}

// MsmtpConfig writes an msmtprc (mode 0600, as msmtp expects of a config
// file) whose default account delivers to the sink, for `msmtp -C PATH`.
func (s *Sink) MsmtpConfig(t testing.TB) string {
	t.Helper()
	cfg := fmt.Sprintf(`# written by smtpsink for %s
defaults
auth off
tls off
timeout 10

account default
host 127.0.0.1
port %d
from test@localhost
`, t.Name(), s.port)
	path := filepath.Join(t.TempDir(), "msmtprc")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatalf("smtpsink: write msmtprc: %v", err)
	}
	return path
}

// Close stops listening, ends every session and waits for them.
func (s *Sink) Close() {
	s.mu.Lock()
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			// Out of file descriptors or the like: try again rather than
			// leave the test waiting on a sink that stopped listening.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			newSession(c).run(s.deliver)
		}()
	}
}

func (s *Sink) deliver(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// errLineTooLong ends a session whose client sends an endless line.
var errLineTooLong = errors.New("line too long")

// session is one SMTP conversation.
type session struct {
	c     net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	start time.Time

	helo bool
	from *string // nil until MAIL FROM
	rcpt []string
}

func newSession(c net.Conn) *session {
	return &session{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c), start: time.Now()}
}

func (s *session) reply(code int, text string) error {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(s.w, "%d%s%s\r\n", code, sep, l)
	}
	return s.w.Flush()
}

// readLine reads one line without its line ending, under both deadlines.
func (s *session) readLine(limit int) (string, error) {
	deadline := time.Now().Add(IdleTimeout)
	if end := s.start.Add(SessionTimeout); end.Before(deadline) {
		deadline = end
	}
	if err := s.c.SetDeadline(deadline); err != nil {
		return "", err
	}
	var line []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return "", errLineTooLong
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return string(line), nil
}

func (s *session) resetTxn() {
	s.from = nil
	s.rcpt = nil
}

func (s *session) run(deliver func(Message)) {
	if s.reply(220, "127.0.0.1 smtpsink ESMTP ready") != nil {
		return
	}
	for {
		line, err := s.readLine(maxCommandLine)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.reply(500, "5.5.2 line too long")
			}
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		var code int
		var text string
		switch strings.ToUpper(verb) {
		case "EHLO":
			s.helo = true
			s.resetTxn()
			code, text = 250, fmt.Sprintf("127.0.0.1 greets %s\nSIZE %d\n8BITMIME", arg, MaxMessageSize)
		case "HELO":
			s.helo = true
			s.resetTxn()
			code, text = 250, "127.0.0.1 greets "+arg
		case "MAIL":
			code, text = s.mail(arg)
		case "RCPT":
			code, text = s.rcptTo(arg)
		case "DATA":
			code, text = s.data(deliver)
			if code == 0 {
				return // the connection broke inside DATA
			}
		case "RSET":
			s.resetTxn()
			code, text = 250, "2.0.0 OK"
		case "NOOP":
			code, text = 250, "2.0.0 OK"
		case "VRFY":
			code, text = 252, "2.1.5 cannot VRFY, send some mail"
		case "QUIT":
			s.reply(221, "2.0.0 bye")
			return
		case "STARTTLS", "AUTH":
			code, text = 502, "5.5.1 not offered: the sink speaks plain SMTP only"
		default:
			code, text = 500, "5.5.2 unknown command"
		}
		if s.reply(code, text) != nil {
			return
		}
	}
}

// parsePath parses "FROM:<addr> PARAMS" or "TO:<addr> PARAMS".
func parsePath(arg, prefix string) (addr string, params []string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", nil, false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", nil, false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, false
	}
	return rest[1:end], strings.Fields(rest[end+1:]), true
}

func (s *session) mail(arg string) (int, string) {
	if !s.helo {
		return 503, "5.5.1 EHLO or HELO first"
	}
	if s.from != nil {
		return 503, "5.5.1 MAIL already given"
	}
	addr, params, ok := parsePath(arg, "FROM:")
	if !ok {
		return 501, "5.5.4 syntax: MAIL FROM:<address>"
	}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(k, "SIZE") {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > MaxMessageSize {
				return 552, "5.3.4 message size exceeds fixed limit"
			}
		}
	}
	s.from = &addr
	return 250, "2.1.0 OK"
}

func (s *session) rcptTo(arg string) (int, string) {
	if s.from == nil {
		return 503, "5.5.1 MAIL first"
	}
	if len(s.rcpt) >= MaxRecipients {
		return 452, "4.5.3 too many recipients"
	}
	addr, _, ok := parsePath(arg, "TO:")
	if !ok || addr == "" {
		return 501, "5.5.4 syntax: RCPT TO:<address>"
	}
	s.rcpt = append(s.rcpt, addr)
	return 250, "2.1.5 OK"
}

// data reads the message up to the lone dot. A code of 0 means the
// connection failed and the session must end.
func (s *session) data(deliver func(Message)) (int, string) {
	if s.from == nil || len(s.rcpt) == 0 {
		return 503, "5.5.1 MAIL and RCPT first"
	}
	if s.reply(354, "end data with <CR><LF>.<CR><LF>") != nil {
		return 0, ""
	}
	var buf bytes.Buffer
	tooBig := false
	for {
		line, err := s.readLine(maxDataLine)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.reply(500, "5.5.2 line too long")
			}
			return 0, ""
		}
		if line == "." {
			break
		}
		// Dot-unstuffing (RFC 5321 4.5.2): the client doubled every leading dot.
		line = strings.TrimPrefix(line, ".")
		if tooBig || buf.Len()+len(line)+2 > MaxMessageSize {
			// Keep reading to the end so the reply lines up with the client.
			tooBig = true
			continue
		}
		buf.WriteString(line)
		buf.WriteString("\r\n")
	}
	from, rcpt := *s.from, s.rcpt
	s.resetTxn()
	if tooBig {
		return 552, "5.3.4 message size exceeds fixed limit"
	}
	deliver(parse(from, rcpt, buf.Bytes()))
	return 250, "2.0.0 OK queued"
}
