package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// The server watches its offsite hosts too: each watchdog run sends a
// small report through a key whose forced command on the server is
// `borgkit job watchdog-report HOST`, and the server's stale check alerts
// when an offsite host has been silent too long (a dead Pi, its network
// gone) or says it cannot mail.

// MaxWatchdogReport bounds what the server reads of a report: one small
// JSON object. Anything longer is refused unread.
const MaxWatchdogReport = 4 << 10

// watchdogReportVersion is the report format this borgkit sends and reads.
const watchdogReportVersion = 1

// Bounds on the report's free text.
const (
	maxReportMessage = 1000
	maxReportCount   = 1 << 20
)

// ParseWatchdogReport reads a report offsite host sent, refusing anything
// but one JSON object of the known fields, with plain text and values in
// range: it is input from another machine.
func ParseWatchdogReport(b []byte, hostName string) (state.WatchdogReport, error) {
	var r state.WatchdogReport
	if len(b) > MaxWatchdogReport {
		return r, fmt.Errorf("report of %d bytes or more (at most %d)", len(b), MaxWatchdogReport)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("report: %w", err)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 || dec.More() {
		return r, errors.New("report: data after the report")
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if r.Version != watchdogReportVersion {
		bad("version %d (this borgkit reads %d)", r.Version, watchdogReportVersion)
	}
	if r.Host != hostName {
		bad("host %q, but the key is %s's", r.Host, hostName)
	}
	if !r.Received.IsZero() || r.From != "" {
		bad("received and from are the server's to set")
	}
	if r.Sent.IsZero() {
		bad("no sent time")
	}
	switch r.Status {
	case state.OK, state.Warning, state.Failed:
	default:
		bad("status %q (ok, warning or failed)", r.Status)
	}
	if err := plainText(r.Message, maxReportMessage); err != nil {
		bad("message: %v", err)
	}
	if err := plainText(r.MailError, maxReportMessage); err != nil {
		bad("mail_error: %v", err)
	}
	if r.DiskPercent < 0 || r.DiskPercent > 100 {
		bad("disk_percent %d (0 to 100)", r.DiskPercent)
	}
	if r.Snapshots < 0 || r.Snapshots > maxReportCount {
		bad("snapshots %d", r.Snapshots)
	}
	if _, ok := layout.SnapshotTime(r.LatestSnapshot); r.LatestSnapshot != "" && !ok {
		bad("latest_snapshot %q is not a snapshot name", r.LatestSnapshot)
	}
	if len(problems) > 0 {
		return r, fmt.Errorf("report refused: %s", strings.Join(problems, "; "))
	}
	return r, nil
}

// plainText accepts at most max bytes of UTF-8 text without control
// characters: it ends up in mails and on the dashboard.
func plainText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes (at most %d)", len(s), max)
	}
	if !utf8.ValidString(s) {
		return errors.New("not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

// ReceiveWatchdogReport is the forced command of offsite host name's report
// key on the server: name comes from authorized_keys, never from the
// client. It reads one bounded report from in, checks it and keeps it
// with this server's time of receipt. from is the client's address.
func ReceiveWatchdogReport(cfg *config.Config, self, name, revokedDir string, in io.Reader, from string, store *state.Store, now time.Time) error {
	h, ok := cfg.Host(name)
	if srv := cfg.OffsiteServer(h); !ok || srv == nil || srv.Name != self {
		return fmt.Errorf("watchdog-report %s: not an offsite host of %s", name, self)
	}
	if _, err := os.Stat(filepath.Join(revokedDir, name)); err == nil {
		return fmt.Errorf("watchdog-report %s: revoked (%s)", name, filepath.Join(revokedDir, name))
	}
	b, err := io.ReadAll(io.LimitReader(in, MaxWatchdogReport+1))
	if err != nil {
		return fmt.Errorf("watchdog-report %s: %w", name, err)
	}
	r, err := ParseWatchdogReport(b, name)
	if err != nil {
		return fmt.Errorf("watchdog-report %s: %w", name, err)
	}
	r.Received = now.UTC()
	r.From, _, _ = strings.Cut(from, " ")
	if err := plainText(r.From, 64); err != nil {
		r.From = ""
	}
	return store.SaveWatchdogReport(r)
}

// sendReport sends this run's report to the server; the answer is for the
// record and the log only: a report that cannot go out is what the
// server's stale check notices.
func (e *OffsiteEnv) sendReport(ctx context.Context, r state.WatchdogReport) string {
	server := e.Cfg.OffsiteServer(e.Host)
	if server == nil {
		return "not sent: no server in " + e.Cfg.File + " unlocks or mirrors to " + e.Host.Name
	}
	argv, err := serverSSHArgv(e.Host.Name, server, "report identity", e.ReportIdentity, e.KnownHosts)
	if err != nil {
		return "not sent: " + err.Error()
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "not sent: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, e.FetchTimeout)
	defer cancel()
	c := host.Cmd{Argv: argv, Stdin: bytes.NewReader(b)}
	res, err := e.Exec.Run(ctx, c)
	if err != nil {
		msg := tailText(res.Stderr, 2)
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Sprintf("not sent to %s: %s", server.Name, strings.TrimSpace(msg))
	}
	return "sent to " + server.Name
}
