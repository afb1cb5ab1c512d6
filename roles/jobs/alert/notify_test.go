package alert

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/testing/notifysink"
)

func tokenFile(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNtfy publishes to an ntfy endpoint as its docs describe: the subject
// as the title, the priority by severity, the tags, a bearer token, a body
// under the message limit.
func TestNtfy(t *testing.T) {
	srv := notifysink.StartNtfy(t, "tk_secret")
	n := &Ntfy{URL: srv.URL + "/backups-x7Qp", TokenFile: tokenFile(t, "tk_secret"), Tags: []string{"floppy_disk"}}
	ctx := context.Background()
	for _, tc := range []struct {
		sev  Severity
		prio int
		tag  string
	}{{SeverityFailure, 4, "rotating_light"}, {"", 4, "rotating_light"}, {SeverityWarning, 3, "warning"}, {SeverityInfo, 2, "information_source"}} {
		err := n.Notify(ctx, Notification{Host: "john-ai", Job: "nightly", Subject: "[BACKUP] john-ai NIGHTLY BACKUP FAILED", Severity: tc.sev, Text: "repo john-ai: borg create exited 2"})
		if err != nil {
			t.Fatal(err)
		}
		msgs := srv.Messages()
		m := msgs[len(msgs)-1]
		if m.Topic != "backups-x7Qp" || m.Title != "[BACKUP] john-ai NIGHTLY BACKUP FAILED" || m.Priority != tc.prio ||
			!slices.Equal(m.Tags, []string{tc.tag, "john-ai", "nightly", "floppy_disk"}) || m.Message != "repo john-ai: borg create exited 2" {
			t.Errorf("severity %q: got %+v", tc.sev, m)
		}
	}
	// A title that is not ASCII arrives as written; a text over ntfy's
	// limit is cut, not turned into an attachment.
	long := strings.Repeat("é", 5000)
	if err := n.Notify(ctx, Notification{Host: "john-ai", Subject: "[BACKUP] john-ai Weekly Summary — All healthy", Severity: SeverityInfo, Text: long}); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	m := msgs[len(msgs)-1]
	if m.Title != "[BACKUP] john-ai Weekly Summary — All healthy" || len(m.Message) > 4096 || !strings.HasSuffix(m.Message, "have all of it)") {
		t.Errorf("title %q, message of %d bytes ending %q", m.Title, len(m.Message), m.Message[len(m.Message)-20:])
	}
}

// TestChannelErrorsKeepSecrets: a refused token and a dead server are
// errors that name the channel, never its URL or token, and a refusal is
// not retried.
func TestChannelErrorsKeepSecrets(t *testing.T) {
	srv := notifysink.StartNtfy(t, "tk_right")
	ctx := context.Background()
	n := &Ntfy{URL: srv.URL + "/secret-topic", TokenFile: tokenFile(t, "tk_wrong")}
	start := time.Now()
	err := n.Notify(ctx, Notification{Host: "h", Subject: "s", Text: "t"})
	if err == nil || !strings.Contains(err.Error(), "ntfy: the server answered 401") {
		t.Fatalf("wrong token: %v", err)
	}
	if time.Since(start) > channelBackoff {
		t.Errorf("a 401 was retried")
	}
	srv.Close()
	err = n.Notify(ctx, Notification{Host: "h", Subject: "s", Text: "t"})
	if err == nil {
		t.Fatal("a closed server took the message")
	}
	for _, e := range []error{err, (&Webhook{URL: "http://127.0.0.1:1/hook/secret-path"}).Notify(ctx, Notification{})} {
		if strings.Contains(e.Error(), "secret") || strings.Contains(e.Error(), "tk_") {
			t.Errorf("the error gives a secret away: %v", e)
		}
	}
	empty := tokenFile(t, "")
	if err := (&Webhook{URL: "http://127.0.0.1:1/x", TokenFile: empty}).Notify(ctx, Notification{}); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v", err)
	}
}

// TestWebhook POSTs the documented JSON body with a bearer token, and
// retries once after a 503.
func TestWebhook(t *testing.T) {
	hook := notifysink.StartHook(t, "hook-token", 1)
	w := &Webhook{URL: hook.URL, TokenFile: tokenFile(t, "hook-token")}
	at := time.Date(2026, 11, 3, 0, 12, 5, 0, time.UTC)
	err := w.Notify(context.Background(), Notification{Host: "pi", Job: "watchdog", Subject: "[WATCHDOG] john-ai heartbeat STALE",
		Severity: SeverityFailure, Text: "last heartbeat 31h ago", Time: at, Site: "home"})
	if err != nil {
		t.Fatal(err)
	}
	got := hook.Bodies()
	if len(got) != 1 {
		t.Fatalf("bodies: %v", got)
	}
	want := map[string]any{"host": "pi", "job": "watchdog", "subject": "[WATCHDOG] john-ai heartbeat STALE", "severity": "failure",
		"text": "last heartbeat 31h ago", "time": "2026-11-03T00:12:05Z", "site": "home"}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("%s = %v, want %v", k, got[0][k], v)
		}
	}
	if len(got[0]) != len(want) {
		t.Errorf("body has fields beyond the documented ones: %v", got[0])
	}
}
