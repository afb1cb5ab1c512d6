package jobs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/testing/pingsink"
)

// withMonitoring points the lab's jobs at a ping check and a textfile
// directory, as alerts.ping_url and alerts.textfile_dir do.
func withMonitoring(t *testing.T, l *lab, check *pingsink.Sink) string {
	dir := filepath.Join(t.TempDir(), "node-exporter")
	l.env.Cfg.Alerts.PingURL = check.URL + "/KEY/{host}-{job}?create=1"
	l.env.Cfg.Alerts.TextfileDir = dir
	l.env.Pinger = nil
	l.env.Defaults()
	l.env.Pinger.Backoff = time.Millisecond
	return dir
}

// TestJobsPingAndWriteTextfile runs real nightlies, a good one and one
// with a broken repo, and reads what the check and node_exporter get.
func TestJobsPingAndWriteTextfile(t *testing.T) {
	l := newLab(t, labOptions{extraRepo: true})
	check := pingsink.Start(t, 0)
	dir := withMonitoring(t, l, check)

	if err := jobs.Nightly(ctx(), l.env); err == nil {
		t.Fatal("nightly succeeded with a broken repo")
	}
	l.mails(1)
	p := check.Pings()
	if len(p) != 2 || p[0].String() != "POST /KEY/john-ai-nightly/start?create=1 " ||
		p[1].URI != "/KEY/john-ai-nightly/1?create=1" || !strings.Contains(p[1].Body, "NIGHTLY BACKUP FAILED") {
		t.Fatalf("pings of a failed nightly: %q", p)
	}
	prom, err := os.ReadFile(filepath.Join(dir, layout.TextfileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`borgkit_last_exit_code{job="nightly"} 1`, `borgkit_running{job="nightly"} 0`, `borgkit_last_success_timestamp_seconds{job="nightly"} 0`} {
		if !strings.Contains(string(prom), want+"\n") {
			t.Errorf("textfile lacks %q:\n%s", want, prom)
		}
	}

	l.env.Cfg.Hosts[0].Repos = l.env.Cfg.Hosts[0].Repos[:1] // the broken repo gone
	if err := jobs.Stale(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, p := range check.Pings()[2:] {
		uris = append(uris, p.URI)
	}
	want := "/KEY/john-ai-stale/start?create=1 /KEY/john-ai-stale/0?create=1 /KEY/john-ai-nightly/start?create=1 /KEY/john-ai-nightly/0?create=1"
	if strings.Join(uris, " ") != want {
		t.Fatalf("pings:\n%s\nwant:\n%s", strings.Join(uris, " "), want)
	}
	// A job that is off has no period for a check to expect: it runs
	// (by hand) without pinging, and still shows in the textfile.
	l.env.Host.Schedules.Check = "off"
	if err := jobs.Check(ctx(), l.env, false); err != nil {
		t.Fatal(err)
	}
	if n := len(check.Pings()); n != 6 {
		t.Fatalf("an unscheduled check pinged: %q", check.Pings()[6:])
	}
	prom, _ = os.ReadFile(filepath.Join(dir, layout.TextfileName))
	for _, want := range []string{`borgkit_last_exit_code{job="nightly"} 0`, `borgkit_last_exit_code{job="stale"} 0`, `borgkit_last_exit_code{job="check"} 0`} {
		if !strings.Contains(string(prom), want+"\n") {
			t.Errorf("textfile lacks %q:\n%s", want, prom)
		}
	}
	if strings.Contains(string(prom), `borgkit_last_success_timestamp_seconds{job="nightly"} 0`+"\n") {
		t.Errorf("textfile still shows no success:\n%s", prom)
	}
}

// TestPingFailureDoesNotFailTheJob: the check being down is logged, with
// no trace of its URL, and the backup stands.
func TestPingFailureDoesNotFailTheJob(t *testing.T) {
	l := newLab(t, labOptions{})
	check := pingsink.Start(t, 0)
	withMonitoring(t, l, check)
	check.Close()
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatalf("nightly failed because its ping did: %v", err)
	}
	l.mails(0)
	log := l.log.String()
	if !strings.Contains(log, "ping nightly start: 3 attempts failed") || !strings.Contains(log, "ping nightly 0: 3 attempts failed") {
		t.Fatalf("the failed pings are not in the log:\n%s", log)
	}
	if strings.Contains(log, "/KEY/") {
		t.Fatalf("the log carries the ping URL:\n%s", log)
	}
	if n := l.archives("system"); n != 1 {
		t.Fatalf("%d archives", n)
	}
}
