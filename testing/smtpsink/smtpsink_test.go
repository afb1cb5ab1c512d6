package smtpsink_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/testing/smtpsink"
)

const msmtp = "/usr/bin/msmtp"

func needMsmtp(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(msmtp); err != nil {
		if os.Getenv("BORGKIT_REQUIRE_MSMTP") != "" {
			t.Fatalf("msmtp required: %v", err)
		}
		t.Skipf("msmtp: %v", err)
	}
}

// sendmail pipes msg to msmtp -t, as the alert mailer does.
func sendmail(t *testing.T, cfg string, msg string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append([]string{"-C", cfg}, extra...)
	argv = append(argv, "-t")
	cmd := exec.CommandContext(ctx, msmtp, argv...)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("msmtp %v: %v\n%s", argv, err, out)
	}
}

func TestMsmtpPlainMessage(t *testing.T) {
	needMsmtp(t)
	s := smtpsink.Start(t)
	cfg := s.MsmtpConfig(t)
	fi, err := os.Stat(cfg)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("msmtprc mode: %v %v", fi, err)
	}

	msg := "From: john-ai <me@example.com>\n" +
		"To: ops@example.com\n" +
		"Cc: second@example.com\n" +
		"Bcc: hidden@example.com\n" +
		"Subject: =?utf-8?q?[BACKUP]_john-ai_caf=C3=A9?=\n" +
		"\n" +
		"first line\n" +
		".a line that starts with a dot\n" +
		"..two dots\n" +
		"last line\n"
	sendmail(t, cfg, msg, "--read-envelope-from")

	got, err := s.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := got[0]
	if m.ParseErr != nil {
		t.Fatalf("parse: %v", m.ParseErr)
	}
	if m.From != "me@example.com" {
		t.Errorf("envelope from = %q, want me@example.com (--read-envelope-from)", m.From)
	}
	wantRcpt := []string{"hidden@example.com", "ops@example.com", "second@example.com"}
	rcpt := slices.Clone(m.To)
	slices.Sort(rcpt)
	if !slices.Equal(rcpt, wantRcpt) {
		t.Errorf("envelope rcpt = %q, want %q", rcpt, wantRcpt)
	}
	if h := m.Header.Get("Bcc"); h != "" {
		t.Errorf("Bcc header survived: %q", h)
	}
	if m.Subject != "[BACKUP] john-ai café" {
		t.Errorf("subject = %q", m.Subject)
	}
	if m.Header.Get("From") != "john-ai <me@example.com>" {
		t.Errorf("From = %q", m.Header.Get("From"))
	}
	wantBody := "first line\r\n.a line that starts with a dot\r\n..two dots\r\nlast line\r\n"
	if m.Body != wantBody {
		t.Errorf("body = %q, want %q (dot-unstuffing)", m.Body, wantBody)
	}
}

func TestMsmtpMultipart(t *testing.T) {
	needMsmtp(t)
	s := smtpsink.Start(t)
	msg := strings.Join([]string{
		"From: me@example.com",
		"To: ops@example.com",
		"Subject: summary",
		"MIME-Version: 1.0",
		`Content-Type: multipart/alternative; boundary="b1"`,
		"",
		"--b1",
		"Content-Type: text/plain; charset=utf-8",
		"Content-Transfer-Encoding: quoted-printable",
		"",
		"All healthy =E2=80=94 no issues.",
		"--b1",
		"Content-Type: text/html; charset=utf-8",
		"Content-Transfer-Encoding: base64",
		"",
		"PHA+QWxsIGhlYWx0aHk8L3A+",
		"--b1--",
		"",
	}, "\n")
	sendmail(t, s.MsmtpConfig(t), msg)
	got, err := s.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := got[0]
	if m.ParseErr != nil {
		t.Fatalf("parse: %v", m.ParseErr)
	}
	if m.From != "test@localhost" {
		t.Errorf("envelope from = %q, want the msmtprc's from", m.From)
	}
	if len(m.Parts) != 2 {
		t.Fatalf("parts = %d, want 2", len(m.Parts))
	}
	text, _ := m.Part("text/plain")
	if text.Body != "All healthy — no issues." || text.Charset != "utf-8" {
		t.Errorf("text part = %q charset %q", text.Body, text.Charset)
	}
	html, ok := m.Part("text/html")
	if !ok || html.Body != "<p>All healthy</p>" {
		t.Errorf("html part = %q (found %v)", html.Body, ok)
	}
}

// conv talks raw SMTP to the sink.
type conv struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, s *smtpsink.Sink) *conv {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cv := &conv{t: t, c: c, r: bufio.NewReader(c)}
	cv.expect(220)
	return cv
}

// expect reads one (possibly multi-line) reply and checks its code.
func (cv *conv) expect(code int) string {
	cv.t.Helper()
	var all []string
	for {
		line, err := cv.r.ReadString('\n')
		if err != nil {
			cv.t.Fatalf("read reply: %v (so far %q)", err, all)
		}
		all = append(all, strings.TrimRight(line, "\r\n"))
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	last := all[len(all)-1]
	if !strings.HasPrefix(last, fmt.Sprint(code)) {
		cv.t.Fatalf("reply %q, want %d", all, code)
	}
	return strings.Join(all, "\n")
}

func (cv *conv) send(line string, code int) string {
	cv.t.Helper()
	if _, err := fmt.Fprintf(cv.c, "%s\r\n", line); err != nil {
		cv.t.Fatal(err)
	}
	return cv.expect(code)
}

func TestProtocol(t *testing.T) {
	type step struct {
		line string
		code int
	}
	tests := []struct {
		name  string
		steps []step
		msgs  int
	}{
		{"mail before helo", []step{{"MAIL FROM:<a@x>", 503}}, 0},
		{"rcpt before mail", []step{{"HELO c", 250}, {"RCPT TO:<b@x>", 503}}, 0},
		{"data before rcpt", []step{{"EHLO c", 250}, {"MAIL FROM:<a@x>", 250}, {"DATA", 503}}, 0},
		{"bad syntax", []step{{"EHLO c", 250}, {"MAIL FROM:a@x", 501}}, 0},
		{"too big announced", []step{{"EHLO c", 250}, {fmt.Sprintf("MAIL FROM:<a@x> SIZE=%d", smtpsink.MaxMessageSize+1), 552}}, 0},
		{"no tls", []step{{"EHLO c", 250}, {"STARTTLS", 502}}, 0},
		{"unknown", []step{{"FROB", 500}}, 0},
		{"rset clears", []step{{"EHLO c", 250}, {"MAIL FROM:<a@x>", 250}, {"RCPT TO:<b@x>", 250}, {"RSET", 250}, {"DATA", 503}}, 0},
		{"noop and null sender", []step{{"NOOP", 250}, {"EHLO c", 250}, {"MAIL FROM:<>", 250}, {"RCPT TO:<b@x>", 250},
			{"DATA", 354}, {"Subject: bounce", 0}, {"", 0}, {"..", 0}, {".", 250}}, 1},
		{"two messages", []step{{"HELO c", 250},
			{"MAIL FROM:<a@x>", 250}, {"RCPT TO:<b@x>", 250}, {"DATA", 354}, {"Subject: 1", 0}, {".", 250},
			{"MAIL FROM:<a@x>", 250}, {"RCPT TO:<c@x>", 250}, {"DATA", 354}, {"Subject: 2", 0}, {".", 250}}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := smtpsink.Start(t)
			cv := dial(t, s)
			for _, st := range tc.steps {
				if st.code == 0 { // a data line: no reply
					fmt.Fprintf(cv.c, "%s\r\n", st.line)
					continue
				}
				cv.send(st.line, st.code)
			}
			cv.send("QUIT", 221)
			if got := len(s.Messages()); got != tc.msgs {
				t.Errorf("messages = %d, want %d", got, tc.msgs)
			}
		})
	}
}

func TestEHLOAdvertisesSize(t *testing.T) {
	s := smtpsink.Start(t)
	cv := dial(t, s)
	if r := cv.send("EHLO c", 250); !strings.Contains(r, fmt.Sprintf("SIZE %d", smtpsink.MaxMessageSize)) {
		t.Errorf("EHLO reply lacks SIZE: %q", r)
	}
}

func TestOversizeData(t *testing.T) {
	s := smtpsink.Start(t)
	cv := dial(t, s)
	cv.send("EHLO c", 250)
	cv.send("MAIL FROM:<a@x>", 250)
	cv.send("RCPT TO:<b@x>", 250)
	cv.send("DATA", 354)
	line := strings.Repeat("x", 1000) + "\r\n"
	w := bufio.NewWriter(cv.c)
	for n := 0; n <= smtpsink.MaxMessageSize; n += len(line) {
		w.WriteString(line)
	}
	w.WriteString(".\r\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	cv.expect(552)
	// The session goes on: the sink read up to the dot.
	cv.send("NOOP", 250)
	if n := len(s.Messages()); n != 0 {
		t.Errorf("oversize message kept: %d", n)
	}
}

func TestLongLineEndsSession(t *testing.T) {
	s := smtpsink.Start(t)
	cv := dial(t, s)
	fmt.Fprintf(cv.c, "NOOP %s\r\n", bytes.Repeat([]byte("y"), 8192))
	cv.expect(500)
	if _, err := cv.r.ReadString('\n'); err == nil {
		t.Error("connection still open after an endless command line")
	}
}

func TestWaitForAndReset(t *testing.T) {
	s := smtpsink.Start(t)
	start := time.Now()
	got, err := s.WaitFor(1, 100*time.Millisecond)
	if err == nil || len(got) != 0 {
		t.Fatalf("WaitFor on an empty sink = %d, %v", len(got), err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Error("WaitFor returned before its timeout")
	}

	done := make(chan error, 1)
	go func() {
		_, err := s.WaitFor(1, 5*time.Second)
		done <- err
	}()
	cv := dial(t, s)
	for _, l := range []string{"HELO c", "MAIL FROM:<a@x>", "RCPT TO:<b@x>"} {
		cv.send(l, 250)
	}
	cv.send("DATA", 354)
	cv.send("Subject: hi\r\n\r\nbody\r\n.", 250)
	if err := <-done; err != nil {
		t.Fatalf("WaitFor woke with %v", err)
	}
	m := s.Messages()[0]
	if m.Subject != "hi" || m.Body != "body\r\n" || m.From != "a@x" {
		t.Errorf("message = %+v", m)
	}
	s.Reset()
	if n := len(s.Messages()); n != 0 {
		t.Errorf("after Reset: %d messages", n)
	}
}

// Serve works on any listener, and Text decodes a quoted-printable plain
// body with dot-stuffing undone, as net/smtp (no TLS, no AUTH, like msmtp
// here) sends it.
func TestServeAndText(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := smtpsink.Serve(ln)
	defer s.Close()
	msg := "From: john-ai@lab.example\r\nTo: ops@lab.example\r\n" +
		"Subject: =?UTF-8?Q?[BACKUP]_john-ai_NIGHTLY_BACKUP_ABORTED_=E2=80=94_disk?=\r\n" +
		"Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"=3D=3D=3D NIGHTLY BACKUP ABORTED =3D=3D=3D\r\n.dot line\r\n"
	if err := smtp.SendMail(ln.Addr().String(), nil, "john-ai@lab.example", []string{"ops@lab.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	got, err := s.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := got[0]
	if m.Subject != "[BACKUP] john-ai NIGHTLY BACKUP ABORTED — disk" {
		t.Errorf("subject %q", m.Subject)
	}
	if m.Text() != "=== NIGHTLY BACKUP ABORTED ===\n.dot line\n" {
		t.Errorf("text %q", m.Text())
	}
	if m.From != "john-ai@lab.example" || !slices.Equal(m.To, []string{"ops@lab.example"}) {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
}
