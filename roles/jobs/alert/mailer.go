package alert

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
)

// SendTimeout bounds one Send even when the caller's context has no
// deadline: msmtp waits forever on a silent server by default, and a job
// stuck on its alert is a job that never finishes its record.
const SendTimeout = 2 * time.Minute

// Message is one mail before it gets its headers.
type Message struct {
	// Subject is the TEXT of "PREFIX HOST TEXT" ("NIGHTLY BACKUP FAILED").
	Subject string
	// Text is the plain-text body; HTML, when set, makes the mail
	// multipart/alternative with Text as the fallback.
	Text string
	HTML string
	// Host is the host the subject names when it is not the sender: the
	// offsite watchdog names the server whose heartbeat it watches.
	Host string
	// Severity sets the push channels' priority; empty is a failure.
	Severity Severity
}

// Severity is how bad an alert is: ntfy's priority and the webhook's
// "severity" follow it.
type Severity string

const (
	SeverityFailure Severity = "failure" // something did not get backed up, checked or mirrored
	SeverityWarning Severity = "warning" // done, but something needs attention soon (disk space)
	SeverityInfo    Severity = "info"    // a report (the weekly summary) or a test
)

// Level is msg's severity, a failure when unset: an alert nobody graded
// must not arrive quietly.
func (msg Message) Level() Severity {
	if msg.Severity == "" {
		return SeverityFailure
	}
	return msg.Severity
}

// Mailer sends Messages through a sendmail-compatible program.
type Mailer struct {
	// Sendmail is the argv of a program that reads an RFC 5322 message on
	// stdin and takes the recipients from its headers (default
	// config.DefaultSendmail: msmtp --read-envelope-from -t).
	Sendmail []string
	// From and To are addresses as in a header ("ops@example.com",
	// "John <a@example.com>, b@example.com"). A From without a display name
	// gets Host as its name, as the seed's mails do ("john-ai <me@...>").
	From, To string
	// SubjectPrefix starts every subject ("[BACKUP]", "[WATCHDOG]").
	SubjectPrefix string
	// Host is the sending host, named in subjects and the From name.
	Host string
	// Env is added to the program's environment (KEY=VALUE). Never put a
	// secret here: the environment is readable through /proc.
	Env []string
}

// ForHost is the Mailer of host h as the site config sets it up.
func ForHost(c *config.Config, h *config.Host) *Mailer {
	a := c.HostAlerts(h)
	return &Mailer{Sendmail: a.Sendmail, From: a.From, To: a.To, SubjectPrefix: a.SubjectPrefix, Host: h.Name}
}

// Subject is the full subject line msg is sent with: PREFIX HOST TEXT.
func (m *Mailer) Subject(msg Message) string {
	h := msg.Host
	if h == "" {
		h = m.Host
	}
	var parts []string
	for _, p := range []string{m.SubjectPrefix, h, msg.Subject} {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

// Send composes msg and pipes it to the sendmail program. A failure names
// the argv, the exit code and the tail of the program's stderr.
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	subject := m.Subject(msg)
	data, err := m.Compose(msg, time.Now())
	if err != nil {
		return fmt.Errorf("alert %q: %w", subject, err)
	}
	argv := m.Sendmail
	if len(argv) == 0 {
		argv = config.DefaultSendmail()
	}
	ctx, cancel := context.WithTimeout(ctx, SendTimeout)
	defer cancel()
	// The sendmail interface takes the message in the local text
	// convention, LF line ends; the program turns them into CRLF on the wire.
	stdin := bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	_, err = host.NewLocal(m.Host).Run(ctx, host.Cmd{Argv: argv, Stdin: bytes.NewReader(stdin), Env: m.Env})
	if err != nil {
		return fmt.Errorf("send alert %q: %w", subject, err)
	}
	return nil
}

// Compose renders msg as an RFC 5322 message with CRLF line ends, dated now.
func (m *Mailer) Compose(msg Message, now time.Time) ([]byte, error) {
	return m.compose(msg, now, rand.Reader)
}

// errHeaderBreak refuses a header value that could start a new header line
// (header injection: a crafted repo name adding a Bcc).
var errHeaderBreak = errors.New("line break in a header value")

func checkHeader(name, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("%s %q: %w", name, v, errHeaderBreak)
	}
	return nil
}

// compose is Compose with the randomness (Message-ID, MIME boundary) taken
// from rnd, so tests can pin the bytes.
func (m *Mailer) compose(msg Message, now time.Time, rnd io.Reader) ([]byte, error) {
	subject := m.Subject(msg)
	for _, f := range [][2]string{
		{"subject prefix", m.SubjectPrefix}, {"subject", msg.Subject}, {"subject host", msg.Host},
		{"host", m.Host}, {"from", m.From}, {"to", m.To},
	} {
		if err := checkHeader(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(m.From) == "" {
		return nil, errors.New("no sender address (alerts.from)")
	}
	if strings.TrimSpace(m.To) == "" {
		return nil, errors.New("no recipient address (alerts.to)")
	}
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return nil, fmt.Errorf("from %q: %w", m.From, err)
	}
	if from.Name == "" {
		from.Name = m.Host
	}
	to, err := mail.ParseAddressList(m.To)
	if err != nil {
		return nil, fmt.Errorf("to %q: %w", m.To, err)
	}
	var toList []string
	for _, a := range to {
		toList = append(toList, formatAddress(a))
	}
	id, err := randomHex(rnd, 12)
	if err != nil {
		return nil, fmt.Errorf("message id: %w", err)
	}
	domain := "borgkit.invalid"
	if _, d, ok := strings.Cut(from.Address, "@"); ok && d != "" {
		domain = d
	}

	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", formatAddress(from))
	header("To", strings.Join(toList, ", "))
	header("Subject", encodeHeader(subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", fmt.Sprintf("<%d.%s@%s>", now.Unix(), id, domain))
	header("MIME-Version", "1.0")
	// RFC 3834: mail a program sent on its own; vacation responders and
	// list servers do not answer it.
	header("Auto-Submitted", "auto-generated")

	if msg.HTML == "" {
		cte, body := encodeBody(msg.Text)
		header("Content-Type", "text/plain; charset=utf-8")
		header("Content-Transfer-Encoding", cte)
		b.WriteString("\r\n")
		b.Write(body)
		return b.Bytes(), nil
	}

	boundary, err := randomHex(rnd, 16)
	if err != nil {
		return nil, fmt.Errorf("mime boundary: %w", err)
	}
	var parts bytes.Buffer
	mw := multipart.NewWriter(&parts)
	if err := mw.SetBoundary("borgkit-" + boundary); err != nil {
		return nil, fmt.Errorf("mime boundary: %w", err)
	}
	for _, p := range []struct{ typ, body string }{{"text/plain", msg.Text}, {"text/html", msg.HTML}} {
		cte, body := encodeBody(p.body)
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {cte},
		})
		if err != nil {
			return nil, fmt.Errorf("%s part: %w", p.typ, err)
		}
		w.Write(body) // writes to a bytes.Buffer do not fail
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("close multipart: %w", err)
	}
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\n")
	b.Write(parts.Bytes())
	return b.Bytes(), nil
}

// formatAddress writes "john-ai <me@example.com>" as the seed's mails show
// it; mail.Address.String would quote every name ("\"john-ai\" <...>").
// Names that are not plain words keep its quoting or RFC 2047 encoding.
func formatAddress(a *mail.Address) string {
	addr := strings.TrimSuffix(strings.TrimPrefix((&mail.Address{Address: a.Address}).String(), "<"), ">")
	switch {
	case a.Name == "":
		return addr
	case isPhrase(a.Name):
		return a.Name + " <" + addr + ">"
	}
	return a.String()
}

// isPhrase reports whether s is atoms separated by single spaces (RFC 5322
// 3.2.3), which a header may carry unquoted.
func isPhrase(s string) bool {
	for w := range strings.SplitSeq(s, " ") {
		if w == "" {
			return false
		}
		for _, c := range w {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", c)) {
				return false
			}
		}
	}
	return true
}

func randomHex(r io.Reader, n int) (string, error) {
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(buf), nil
}

// encodeHeader leaves printable ASCII alone and Q-encodes the rest (an
// em dash in "Weekly Summary — All healthy").
func encodeHeader(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// maxLine is RFC 5322's limit on a line, without its CRLF.
const maxLine = 998

// encodeBody gives text CRLF line ends and a final newline, sent as 7bit
// when it is plain ASCII in short lines, as quoted-printable otherwise.
// Quoted-printable and not 8bit: msmtp does not downgrade 8bit for a server
// without 8BITMIME, and borg output can carry any bytes a filename has.
func encodeBody(text string) (cte string, body []byte) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if isSevenBit(text) {
		return "7bit", []byte(strings.ReplaceAll(text, "\n", "\r\n"))
	}
	var b bytes.Buffer
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(text)) // writes to a bytes.Buffer do not fail
	qp.Close()
	return "quoted-printable", b.Bytes()
}

func isSevenBit(text string) bool {
	for line := range strings.SplitSeq(text, "\n") {
		if len(line) > maxLine {
			return false
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c == 0 || c >= 0x80 {
				return false
			}
		}
	}
	return true
}
