package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRandomDelay: timers get each job's default delay or the host's
// jitter: entry; cron hosts and boot units get none.
func TestRandomDelay(t *testing.T) {
	src := strings.Replace(string(Example()), "    scheduler: systemd                # jobs become systemd timers\n",
		"    scheduler: systemd                # jobs become systemd timers\n    jitter: {nightly: 45m, scrub: \"0\"}\n", 1)
	cfg, err := Parse("borgkit.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	archive, _ := cfg.Host("archive")
	server, _ := cfg.Host("john-ai")
	pi, _ := cfg.Host("pi")
	for _, tc := range []struct {
		h    *Host
		job  string
		want time.Duration
	}{
		{archive, "nightly", 45 * time.Minute},
		{archive, "scrub", 0},
		{archive, "pull", 15 * time.Minute},
		{archive, "smart-long", 30 * time.Minute},
		{archive, "zfs_load_key", 0},
		{server, "nightly", 0}, // cron
		{pi, "watchdog", 0},    // cron
		{pi, "unlock", 0},
	} {
		if got := tc.h.RandomDelay(tc.job); got != tc.want {
			t.Errorf("%s %s: %v, want %v", tc.h.Name, tc.job, got, tc.want)
		}
	}
	pi.Scheduler = SchedulerSystemd
	if got := pi.RandomDelay("watchdog"); got != 5*time.Minute {
		t.Errorf("pi's watchdog on a timer: %v", got)
	}
}

// TestJitterValidation: every mistake is placed at its key.
func TestJitterValidation(t *testing.T) {
	archive := "    scheduler: systemd                # jobs become systemd timers\n"
	server := "    scheduler: cron                   # jobs become lines in /etc/cron.d (the default)\n"
	for _, tc := range []struct {
		name, at, jitter, path, want string
	}{
		{"cron host", server, "    jitter: {nightly: 5m}\n", "hosts[0].jitter", "jitter needs scheduler: systemd"},
		{"unknown job", archive, "    jitter: {nigthly: 5m}\n", "hosts[2].jitter.nigthly", `did you mean "nightly"?`},
		{"boot unit", archive, "    jitter: {zfs_load_key: 5m}\n", "hosts[2].jitter.zfs_load_key", "not a scheduled job of a archive host"},
		{"not a duration", archive, "    jitter: {nightly: soon}\n", "hosts[2].jitter.nightly", "not a duration"},
		{"negative", archive, "    jitter: {nightly: -5m}\n", "hosts[2].jitter.nightly", "not a duration"},
		{"fraction of a second", archive, "    jitter: {nightly: 1500ms}\n", "hosts[2].jitter.nightly", "whole seconds"},
		{"more than half the period", archive, "    jitter: {stale: 4h}\n", "hosts[2].jitter.stale", "more than half the 6h0m0s between two runs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(string(Example()), tc.at, tc.at+tc.jitter, 1)
			_, err := Parse("borgkit.yaml", []byte(src))
			var ps Problems
			if !errors.As(err, &ps) || len(ps) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			if ps[0].Path != "$."+tc.path || !strings.Contains(ps[0].Msg, tc.want) || ps[0].Line == 0 {
				t.Fatalf("got %s at %s line %d, want %q at %s", ps[0].Msg, ps[0].Path, ps[0].Line, tc.want, tc.path)
			}
		})
	}
}
