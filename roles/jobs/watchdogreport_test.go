package jobs

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/testing/sshd"
)

const goodReport = `{"version":1,"host":"pi","sent":"2026-06-12T06:00:00Z","status":"warning","message":"john-ai heartbeat stale (35h)",` +
	`"mail_error":"","disk_mounted":true,"disk_percent":41,"snapshots":9,"latest_snapshot":"2026-06-12T023000Z"}`

func TestParseWatchdogReport(t *testing.T) {
	edit := func(old, new string) string { return strings.Replace(goodReport, old, new, 1) }
	tests := []struct {
		name, in, host, err string
	}{
		{"good", goodReport, "pi", ""},
		{"with a newline after it", goodReport + "\n", "pi", ""},
		{"another host's", goodReport, "pi2", `host "pi", but the key is pi2's`},
		{"too long", strings.Repeat(" ", MaxWatchdogReport-len(goodReport)+1) + goodReport, "pi", "at most 4096"},
		{"unknown field", edit(`"version":1`, `"version":1,"shell":"rm -rf /"`), "pi", `unknown field "shell"`},
		{"two reports", goodReport + goodReport, "pi", "data after the report"},
		{"trailing junk", goodReport + " x", "pi", "data after the report"},
		{"not JSON", "status: ok", "pi", "report:"},
		{"other version", edit(`"version":1`, `"version":2`), "pi", "version 2"},
		{"status", edit(`"warning"`, `"running"`), "pi", `status "running"`},
		{"control character", edit(`stale (35h)`, `stale\u001b[2J`), "pi", "control character U+001B"},
		{"received set by the Pi", edit(`"version":1`, `"version":1,"received":"2030-01-01T00:00:00Z"`), "pi", "the server's to set"},
		{"from set by the Pi", edit(`"version":1`, `"version":1,"from":"10.0.0.1"`), "pi", "the server's to set"},
		{"disk percent", edit(`"disk_percent":41`, `"disk_percent":400`), "pi", "disk_percent 400"},
		{"snapshot name", edit(`"2026-06-12T023000Z"`, `"../../etc"`), "pi", "not a snapshot name"},
		{"no time", edit(`"sent":"2026-06-12T06:00:00Z",`, ``), "pi", "no sent time"},
		{"long message", edit(`john-ai heartbeat stale (35h)`, strings.Repeat("x", 1001)), "pi", "message: 1001 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseWatchdogReport([]byte(tt.in), tt.host)
			if tt.err == "" {
				if err != nil || r.Host != "pi" || r.Status != state.Warning || r.Snapshots != 9 {
					t.Fatalf("%+v %v", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
		})
	}
}

func TestReceiveWatchdogReport(t *testing.T) {
	cfg, _ := piConfig(t)
	store := &state.Store{Dir: t.TempDir()}
	revoked := t.TempDir()
	now := time.Date(2026, 6, 12, 6, 1, 0, 0, time.UTC)
	receive := func(self, name, in string) error {
		return ReceiveWatchdogReport(cfg, self, name, revoked, strings.NewReader(in), "100.64.0.2 50022 100.64.0.1 22", store, now)
	}
	for _, tt := range []struct{ self, name, err string }{
		{"john-ai", "archive", "not an offsite host of john-ai"},
		{"john-ai", "nope", "not an offsite host of john-ai"},
		{"archive", "pi", "not an offsite host of archive"},
	} {
		if err := receive(tt.self, tt.name, goodReport); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s from %s: %v", tt.name, tt.self, err)
		}
	}
	if _, err := store.LoadWatchdogReport("pi"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused report was kept: %v", err)
	}
	if err := receive("john-ai", "pi", goodReport); err != nil {
		t.Fatal(err)
	}
	r, err := store.LoadWatchdogReport("pi")
	if err != nil || !r.Received.Equal(now) || r.From != "100.64.0.2" || r.DiskPercent != 41 {
		t.Fatalf("kept %+v %v", r, err)
	}
	// A stolen Pi reports nothing once revoked.
	os.WriteFile(filepath.Join(revoked, "pi"), []byte("x"), 0o644)
	if err := receive("john-ai", "pi", goodReport); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked: %v", err)
	}
	// An endless stream is cut at the bound, not read to its end.
	if err := ReceiveWatchdogReport(cfg, "john-ai", "pi", t.TempDir(), endless{}, "", store, now); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("endless: %v", err)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// TestWatchdogReportsToItsServer: the watchdog's report goes to the server
// over a real sshd, as the key's forced command takes it (a stand-in that
// keeps stdin: the real watchdog-report is tested against sshd with the
// server role), and says when the Pi's own mail failed.
func TestWatchdogReportsToItsServer(t *testing.T) {
	l := newPiWatchLab(t)
	dir := t.TempDir()
	got := filepath.Join(dir, "report.json")
	identity := filepath.Join(dir, "report_ed25519")
	pub := piNewKey(t, identity)
	srv := sshd.Start(t, sshd.Options{AuthorizedKeys: []string{
		`restrict,from="127.0.0.1",command="cat > ` + got + `" ` + pub + " borgkit-report@pi"}})
	server, _ := l.env.Cfg.Host("john-ai")
	server.Address, server.SSH.Port = "127.0.0.1", srv.Port
	l.env.ReportIdentity, l.env.KnownHosts = identity, srv.KnownHostsPath
	// A stale heartbeat, and a mail path that fails.
	l.heartbeat(t, piNow.Add(-40*time.Hour).UTC().Format(time.RFC3339)+"\n", piNow)
	l.env.Mailer.Sendmail = []string{"/bin/false"}
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	_, st := l.record(t)
	if st.Report != "sent to john-ai" {
		t.Fatalf("report: %s\nlog:\n%s", st.Report, l.log)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseWatchdogReport(bytes.TrimSpace(b), "pi")
	if err != nil {
		t.Fatalf("the server would refuse the report: %v\n%s", err, b)
	}
	if r.Status != state.Warning || !r.Sent.Equal(piNow) || !strings.Contains(r.MailError, "heartbeat STALE") || !r.DiskMounted {
		t.Fatalf("report %+v", r)
	}

	// The server unreachable: the run is not failed for it, the record
	// says why (the server's stale check notices the silence).
	srvPort := server.SSH.Port
	server.SSH.Port = 1
	l.env.Mailer.Sendmail = []string{"/bin/true"}
	if err := Watchdog(context.Background(), l.env); err != nil {
		t.Fatal(err)
	}
	if rec, st := l.record(t); rec.Status != state.Warning || !strings.HasPrefix(st.Report, "not sent to john-ai: ") {
		t.Fatalf("record %s, report %q", rec.Status, st.Report)
	}
	server.SSH.Port = srvPort
}
