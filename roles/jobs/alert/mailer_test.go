package alert

import (
	"bytes"
	"context"
	"errors"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/testing/smtpsink"
)

// zeros is a fixed "random" source: Message-ID and boundary become stable.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

var johnAI = Mailer{From: "me@example.com", To: "ops@example.com", SubjectPrefix: "[BACKUP]", Host: "john-ai"}

func TestComposeGolden(t *testing.T) {
	tests := []struct {
		name string
		m    Mailer
		msg  Message
	}{
		{"compose_plain.eml", johnAI, DiskSpaceWarning("/mnt/backup", 91, 3188000000000, 3500000000000)},
		{"compose_watchdog.eml",
			Mailer{From: "offsite-backup <me@example.com>", To: "ops@example.com, Backup Team <team@example.com>", SubjectPrefix: "[WATCHDOG]", Host: "pi"},
			HeartbeatStale("john-ai", 35*time.Hour, 30*time.Hour, "/mnt/backup/.heartbeat/john-ai-last-success")},
		{"compose_qp.eml", johnAI, Message{Subject: "RESTORE TEST FAILED",
			Text: "File: /srv/café/menü.txt\r\nlong: " + strings.Repeat("x", 1200) + "\ntrailing space \n"}},
		{"compose_html.eml", johnAI, Message{Subject: "Weekly Summary — All healthy",
			Text: "All backups healthy! No issues detected.", HTML: "<p>All backups healthy! No issues detected.</p>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.m.compose(tc.msg, failedAt, zeros{})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, got)
			if bytes.Contains(bytes.ReplaceAll(got, []byte("\r\n"), nil), []byte("\n")) {
				t.Error("a line ends in a bare LF: the composed form is CRLF throughout")
			}
			for l := range strings.SplitSeq(string(got), "\r\n") {
				if len(l) > maxLine {
					t.Errorf("line of %d bytes", len(l))
				}
			}
		})
	}
}

func TestComposeRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Mailer, *Message)
		want string
	}{
		{"CR in subject", func(_ *Mailer, m *Message) { m.Subject = "FAILED\rBcc: x@evil" }, "line break"},
		{"LF in subject", func(_ *Mailer, m *Message) { m.Subject = "FAILED\nBcc: x@evil" }, "line break"},
		{"LF in subject host", func(_ *Mailer, m *Message) { m.Host = "john\nBcc: x@evil" }, "line break"},
		{"LF in from", func(ml *Mailer, _ *Message) { ml.From = "me@example.com\nBcc: x@evil" }, "line break"},
		{"CRLF in to", func(ml *Mailer, _ *Message) { ml.To = "ops@example.com\r\nBcc: x@evil" }, "line break"},
		{"LF in prefix", func(ml *Mailer, _ *Message) { ml.SubjectPrefix = "[BACKUP]\n" }, "line break"},
		{"no from", func(ml *Mailer, _ *Message) { ml.From = "" }, "alerts.from"},
		{"no to", func(ml *Mailer, _ *Message) { ml.To = " " }, "alerts.to"},
		{"bad from", func(ml *Mailer, _ *Message) { ml.From = "not an address" }, "from"},
		{"bad to", func(ml *Mailer, _ *Message) { ml.To = "a@b, <broken" }, "to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, msg := johnAI, Message{Subject: "NIGHTLY BACKUP FAILED", Text: "x"}
			tc.edit(&m, &msg)
			_, err := m.Compose(msg, failedAt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compose = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestSubject(t *testing.T) {
	for _, tc := range []struct {
		m    Mailer
		msg  Message
		want string
	}{
		{johnAI, NightlyFailed(NightlyReport{}), "[BACKUP] john-ai NIGHTLY BACKUP FAILED"},
		{Mailer{SubjectPrefix: "[WATCHDOG]", Host: "pi"}, HeartbeatStale("john-ai", 0, 0, ""), "[WATCHDOG] john-ai heartbeat STALE"},
		{Mailer{Host: "john-ai"}, Message{Subject: "X"}, "john-ai X"},
	} {
		if got := tc.m.Subject(tc.msg); got != tc.want {
			t.Errorf("Subject = %q, want %q", got, tc.want)
		}
	}
}

func TestForHost(t *testing.T) {
	c := &config.Config{Alerts: config.Alerts{To: "ops@example.com", From: "me@example.com"}}
	h := &config.Host{Name: "pi", Alerts: &config.Alerts{From: "offsite-backup <me@example.com>", SubjectPrefix: "[WATCHDOG]"}}
	m := ForHost(c, h)
	if m.To != "ops@example.com" || m.From != "offsite-backup <me@example.com>" || m.SubjectPrefix != "[WATCHDOG]" ||
		m.Host != "pi" || strings.Join(m.Sendmail, " ") != "/usr/bin/msmtp --read-envelope-from -t" {
		t.Errorf("ForHost = %+v", m)
	}
}

const msmtpBin = "/usr/bin/msmtp"

func needMsmtp(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(msmtpBin); err != nil {
		if os.Getenv("BORGKIT_REQUIRE_MSMTP") != "" {
			t.Fatalf("msmtp required: %v", err)
		}
		t.Skipf("msmtp: %v", err)
	}
}

// TestSendThroughMsmtp delivers through the real msmtp, configured the way
// borgkit's default is (--read-envelope-from -t), to an SMTP sink.
func TestSendThroughMsmtp(t *testing.T) {
	needMsmtp(t)
	sink := smtpsink.Start(t)
	argv := []string{msmtpBin, "-C", sink.MsmtpConfig(t), "--read-envelope-from", "-t"}
	ctx := context.Background()

	t.Run("plain", func(t *testing.T) {
		sink.Reset()
		m := johnAI
		m.Sendmail = argv
		msg := NightlyFailed(NightlyReport{ExitCode: 2, Finished: failedAt, Sections: []Section{
			{Name: "System backup", Status: StatusFailed, ExitCode: 2, Output: "a line\n.\n..dots survive\n"},
		}})
		if err := m.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		got := waitOne(t, sink)
		if got.Subject != "[BACKUP] john-ai NIGHTLY BACKUP FAILED" {
			t.Errorf("subject = %q", got.Subject)
		}
		if got.Header.Get("From") != "john-ai <me@example.com>" || got.From != "me@example.com" {
			t.Errorf("From header %q, envelope %q", got.Header.Get("From"), got.From)
		}
		if strings.Join(got.To, ",") != "ops@example.com" {
			t.Errorf("envelope to = %q", got.To)
		}
		if got.Header.Get("Message-ID") == "" || got.Header.Get("Auto-Submitted") != "auto-generated" {
			t.Errorf("headers = %v", got.Header)
		}
		if want := strings.ReplaceAll(msg.Text, "\n", "\r\n"); got.Body != want {
			t.Errorf("body:\n%q\nwant\n%q", got.Body, want)
		}
	})

	t.Run("multipart watchdog", func(t *testing.T) {
		sink.Reset()
		m := Mailer{Sendmail: argv, From: "offsite-backup <me@example.com>", To: "ops@example.com", SubjectPrefix: "[WATCHDOG]", Host: "pi"}
		msg := HeartbeatStale("john-ai", 35*time.Hour, 30*time.Hour, "/mnt/backup/.heartbeat/john-ai-last-success")
		msg.Text += "Non-ASCII survives: café — ok\n"
		msg.HTML = "<p>john-ai — <b>stale</b></p>"
		if err := m.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		got := waitOne(t, sink)
		if got.ParseErr != nil {
			t.Fatal(got.ParseErr)
		}
		if got.Subject != "[WATCHDOG] john-ai heartbeat STALE" || got.Header.Get("From") != "offsite-backup <me@example.com>" {
			t.Errorf("subject %q from %q", got.Subject, got.Header.Get("From"))
		}
		text, ok := got.Part("text/plain")
		if !ok || text.Body != strings.ReplaceAll(msg.Text, "\n", "\r\n") || text.Charset != "utf-8" {
			t.Errorf("text part (%v) = %q", ok, text.Body)
		}
		html, ok := got.Part("text/html")
		if !ok || strings.TrimRight(html.Body, "\r\n") != msg.HTML {
			t.Errorf("html part (%v) = %q", ok, html.Body)
		}
	})
}

func waitOne(t *testing.T, sink *smtpsink.Sink) smtpsink.Message {
	t.Helper()
	msgs, err := sink.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-sendmail")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSendFailure(t *testing.T) {
	fake := writeScript(t, "cat >/dev/null\necho 'msmtp: cannot connect to 127.0.0.1, port 1: Connection refused' >&2\necho 'msmtp: could not send mail' >&2\nexit 69\n")
	m := johnAI
	m.Sendmail = []string{fake, "--read-envelope-from", "-t"}
	err := m.Send(context.Background(), DiskSpaceWarning("/mnt/backup", 91, 1, 2))
	if err == nil {
		t.Fatal("Send succeeded with a sendmail that exits 69")
	}
	for _, want := range []string{fake + " --read-envelope-from -t", "exit status 69", "could not send mail", "Connection refused", "DISK SPACE WARNING"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	m.Sendmail = []string{filepath.Join(t.TempDir(), "no-such-sendmail")}
	if err := m.Send(context.Background(), DiskSpaceWarning("/mnt/backup", 91, 1, 2)); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing sendmail: %v", err)
	}
}

// TestSendStdin checks what the program gets: LF line ends (the sendmail
// convention), the environment, and argv untouched by any shell.
func TestSendStdin(t *testing.T) {
	dir := t.TempDir()
	fake := writeScript(t, `cat >"$1"; printf '%s' "$BORGKIT_TEST" >"$2"`)
	m := johnAI
	m.Sendmail = []string{fake, filepath.Join(dir, "msg"), filepath.Join(dir, "env")}
	m.Env = []string{"BORGKIT_TEST=from-env"}
	if err := m.Send(context.Background(), Message{Subject: "X $(touch /tmp/pwned)", Text: "one\ntwo\n"}); err != nil {
		t.Fatal(err)
	}
	msg, _ := os.ReadFile(filepath.Join(dir, "msg"))
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if bytes.Contains(msg, []byte("\r")) {
		t.Error("stdin carries CR")
	}
	if !bytes.Contains(msg, []byte("Subject: [BACKUP] john-ai X $(touch /tmp/pwned)\n")) || !bytes.HasSuffix(msg, []byte("\n\none\ntwo\n")) {
		t.Errorf("stdin:\n%s", msg)
	}
	if string(env) != "from-env" {
		t.Errorf("env = %q", env)
	}
}

func TestSendCancelled(t *testing.T) {
	fake := writeScript(t, "sleep 30\n")
	m := johnAI
	m.Sendmail = []string{fake}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := m.Send(ctx, Message{Subject: "X", Text: "x"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Send took %s after its context ended", d)
	}
}

func TestFormatAddress(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"me@example.com", "me@example.com"},
		{"john-ai <me@example.com>", "john-ai <me@example.com>"},
		{"Backup Team <team@example.com>", "Backup Team <team@example.com>"},
		{`"Smith, John" <js@example.com>`, `"Smith, John" <js@example.com>`},
		{`"john.ai" <me@example.com>`, `"john.ai" <me@example.com>`},
		{"José <j@example.com>", "=?utf-8?q?Jos=C3=A9?= <j@example.com>"},
	} {
		a, err := mail.ParseAddress(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := formatAddress(a); got != tc.want {
			t.Errorf("formatAddress(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
