package lab

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"
)

// Mail is one message the lab's SMTP listener received.
type Mail struct {
	From     string   // envelope MAIL FROM
	To       []string // envelope RCPT TO
	Subject  string   // RFC 2047 words decoded
	Header   mail.Header
	Body     string // raw body, CRLF line ends as sent
	Text     string // the body decoded: the text/plain part, LF line ends
	Data     []byte // the whole message after dot-unstuffing
	Received time.Time
}

// mailSink is a small SMTP server for msmtp (no TLS, no AUTH). It is the
// lab's own rather than testing/smtpsink because that one listens on the
// machine's 127.0.0.1 and needs a testing.TB, while this one must listen
// inside john-ai's network namespace, also for the demo's main.
type mailSink struct {
	ln net.Listener

	mu      sync.Mutex
	mails   []Mail
	changed chan struct{} // closed and replaced on every new message
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// Limits keep a misbehaving client from hanging the lab.
const (
	mailMaxSize    = 10 << 20
	mailIdle       = 30 * time.Second
	mailMaxLine    = 64 << 10
	mailMaxSession = 2 * time.Minute
)

func newMailSink(ln net.Listener) *mailSink {
	s := &mailSink{ln: ln, changed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s
}

func (s *mailSink) serve() {
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
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: try again
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
			s.session(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *mailSink) close() {
	s.mu.Lock()
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *mailSink) messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

func (s *mailSink) reset() {
	s.mu.Lock()
	s.mails = nil
	s.mu.Unlock()
}

// waitFor waits until n messages are in, or returns what is there with an
// error after timeout.
func (s *mailSink) waitFor(n int, timeout time.Duration) ([]Mail, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, ch := append([]Mail(nil), s.mails...), s.changed
		s.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return got, fmt.Errorf("lab mail: %d of %d messages after %s", len(got), n, timeout)
		}
	}
}

func (s *mailSink) deliver(m Mail) {
	s.mu.Lock()
	s.mails = append(s.mails, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

var errLongLine = errors.New("line too long")

// session speaks the part of RFC 5321 msmtp uses.
func (s *mailSink) session(c net.Conn) {
	end := time.Now().Add(mailMaxSession)
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriter(c)
	reply := func(code int, text string) bool {
		c.SetWriteDeadline(time.Now().Add(mailIdle))
		fmt.Fprintf(w, "%d %s\r\n", code, text)
		return w.Flush() == nil
	}
	readLine := func() (string, error) {
		dl := time.Now().Add(mailIdle)
		if dl.After(end) {
			dl = end
		}
		c.SetReadDeadline(dl)
		var line []byte
		for {
			part, more, err := r.ReadLine()
			if err != nil {
				return "", err
			}
			line = append(line, part...)
			if len(line) > mailMaxLine {
				return "", errLongLine
			}
			if !more {
				return string(line), nil
			}
		}
	}
	if !reply(220, "borgkit-lab ESMTP") {
		return
	}
	var from *string
	var rcpt []string
	for {
		line, err := readLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			c.SetWriteDeadline(time.Now().Add(mailIdle))
			fmt.Fprintf(w, "250-borgkit-lab\r\n250-SIZE %d\r\n250 8BITMIME\r\n", mailMaxSize)
			if w.Flush() != nil {
				return
			}
		case "HELO":
			reply(250, "borgkit-lab")
		case "MAIL":
			addr, ok := pathArg(arg, "FROM:")
			if !ok {
				reply(501, "syntax: MAIL FROM:<address>")
				continue
			}
			from, rcpt = &addr, nil
			reply(250, "ok")
		case "RCPT":
			addr, ok := pathArg(arg, "TO:")
			switch {
			case from == nil:
				reply(503, "MAIL first")
			case !ok || addr == "":
				reply(501, "syntax: RCPT TO:<address>")
			default:
				rcpt = append(rcpt, addr)
				reply(250, "ok")
			}
		case "DATA":
			if from == nil || len(rcpt) == 0 {
				reply(503, "MAIL and RCPT first")
				continue
			}
			if !reply(354, "end with <CRLF>.<CRLF>") {
				return
			}
			var data bytes.Buffer
			for {
				l, err := readLine()
				if err != nil {
					return
				}
				if l == "." {
					break
				}
				l = strings.TrimPrefix(l, ".") // dot-unstuffing
				if data.Len()+len(l) > mailMaxSize {
					reply(552, "message too big")
					return
				}
				data.WriteString(l + "\r\n")
			}
			s.deliver(parseMail(*from, rcpt, data.Bytes()))
			from, rcpt = nil, nil
			reply(250, "queued")
		case "RSET":
			from, rcpt = nil, nil
			reply(250, "ok")
		case "NOOP":
			reply(250, "ok")
		case "QUIT":
			reply(221, "bye")
			return
		default:
			reply(502, "not implemented")
		}
	}
}

// pathArg reads "FROM:<addr> PARAMS" and returns addr.
func pathArg(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	addr, _, ok := strings.Cut(rest[1:], ">")
	return addr, ok
}

func parseMail(from string, to []string, data []byte) Mail {
	m := Mail{From: from, To: to, Data: data, Received: time.Now()}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		m.Subject = "(unparsable message: " + err.Error() + ")"
		return m
	}
	m.Header = msg.Header
	m.Subject = msg.Header.Get("Subject")
	if dec, err := new(mime.WordDecoder).DecodeHeader(m.Subject); err == nil {
		m.Subject = dec
	}
	body, _ := io.ReadAll(io.LimitReader(msg.Body, mailMaxSize))
	m.Body = string(body)
	m.Text = bodyText(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), body, 0)
	return m
}

// bodyText is the readable text of a body: transfer encoding undone, and
// for a multipart message its text/plain part (else its first part).
func bodyText(contentType, cte string, body []byte, depth int) string {
	mediaType, params, _ := mime.ParseMediaType(contentType)
	if strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "" && depth < 4 {
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		first := ""
		for i := 0; ; i++ {
			p, err := mr.NextRawPart()
			if err != nil {
				return first
			}
			b, _ := io.ReadAll(io.LimitReader(p, mailMaxSize))
			ct := p.Header.Get("Content-Type")
			t := bodyText(ct, p.Header.Get("Content-Transfer-Encoding"), b, depth+1)
			if pt, _, _ := mime.ParseMediaType(ct); pt == "text/plain" || ct == "" {
				return t
			}
			if i == 0 {
				first = t
			}
		}
	}
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		if b, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err == nil {
			body = b
		}
	case "base64":
		clean := strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, string(body))
		if b, err := base64.StdEncoding.DecodeString(clean); err == nil {
			body = b
		}
	}
	return strings.ReplaceAll(string(body), "\r\n", "\n")
}
