package alert_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/testing/pingsink"
)

// pings renders what the check received, one "METHOD URI BODY" each.
func pings(s *pingsink.Sink) []string {
	var out []string
	for _, p := range s.Pings() {
		out = append(out, p.String())
	}
	return out
}

func TestPingerSignals(t *testing.T) {
	srv := pingsink.Start(t, 0)
	p := &alert.Pinger{URL: srv.URL + "/KEY/{host}-{job}?create=1", Host: "john-ai"}
	ctx := context.Background()
	if err := p.Start(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish(ctx, "nightly", 0, "2 repos ok"); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish(ctx, "sync", 23, "rsync: partial transfer"); err != nil {
		t.Fatal(err)
	}
	// An escaped slash in the configured path stays escaped.
	p.URL = srv.URL + "/a%2Fb/{job}/"
	if err := p.Finish(ctx, "check", 0, ""); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST /KEY/john-ai-nightly/start?create=1 ",
		"POST /KEY/john-ai-nightly/0?create=1 2 repos ok",
		"POST /KEY/john-ai-sync/23?create=1 rsync: partial transfer",
		"POST /a%2Fb/check/0 ",
	}
	if got := pings(srv); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("pings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPingerRetries(t *testing.T) {
	srv := pingsink.Start(t, 2)
	p := &alert.Pinger{URL: srv.URL + "/KEY/", Host: "pi", Backoff: time.Millisecond}
	if err := p.Finish(context.Background(), "watchdog", 0, ""); err != nil {
		t.Fatalf("third attempt should have gone through: %v", err)
	}
	if got := pings(srv); len(got) != 3 || got[2] != "POST /KEY/0 " {
		t.Fatalf("pings: %q", got)
	}
}

// TestPingerErrorHidesTheURL: the check's URL is its secret, and a ping's
// error goes to the job log and may go into a mail.
func TestPingerErrorHidesTheURL(t *testing.T) {
	for name, base := range map[string]string{
		"refused":   "", // a listener that is closed
		"http 503s": "503",
	} {
		t.Run(name, func(t *testing.T) {
			srv := pingsink.Start(t, 100)
			url := srv.URL
			if base == "" {
				srv.Close()
			}
			p := &alert.Pinger{URL: url + "/SECRET-KEY/{job}", Host: "john-ai", Attempts: 2, Backoff: time.Millisecond}
			err := p.Start(context.Background(), "check")
			if err == nil {
				t.Fatal("a ping nobody took succeeded")
			}
			if strings.Contains(err.Error(), "SECRET-KEY") {
				t.Fatalf("the error carries the ping URL: %v", err)
			}
			if !strings.Contains(err.Error(), "ping check start: 2 attempts failed") {
				t.Fatalf("error %q does not say what failed", err)
			}
		})
	}
}
