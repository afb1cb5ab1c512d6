package alert

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var (
	midnight = time.Date(2026, 6, 12, 0, 0, 1, 0, time.UTC)
	failedAt = time.Date(2026, 6, 12, 0, 23, 15, 0, time.UTC)
)

func TestMessagesGolden(t *testing.T) {
	longOutput := strings.Repeat("rsync: [sender] send_files failed\n", 45)
	tests := []struct {
		name    string
		msg     Message
		subject string
		host    string
	}{
		{"nightly_failed", NightlyFailed(NightlyReport{
			ExitCode: 1, Started: midnight, Finished: failedAt,
			Sections: []Section{
				{Name: "System backup", Status: StatusOK, Duration: 10*time.Minute + 32*time.Second},
				{Name: "VM backup: 100 homeassistant", Status: StatusOK, Duration: 2*time.Minute + 18*time.Second},
				{Name: "VM backup: 102 openclaw", Status: StatusFailed, ExitCode: 1,
					Output: "borg create: Error: /storage/libvirt/images/102-openclaw: file changed\nwhile we backed it up\n"},
				{Name: "Retention + compact", Status: StatusOK},
			},
			LogPath: "/var/log/backup-nightly.log",
		}), "NIGHTLY BACKUP FAILED", ""},
		{"nightly_aborted", NightlyAborted("/home is not mounted: refusing to back up an empty mountpoint\n/storage is not mounted: refusing to back up an empty mountpoint",
			midnight, "/var/log/backup-nightly.log"), "NIGHTLY BACKUP ABORTED", ""},
		{"terminated_signal", TerminatedAbnormally("nightly", 4242, midnight, "killed by SIGTERM"), "TERMINATED ABNORMALLY", ""},
		{"terminated_gone", TerminatedAbnormally("sync", 777, midnight.Add(2*time.Hour),
			"process 777 is gone but never finished its record (SIGKILL, OOM kill, power loss or crash)"), "TERMINATED ABNORMALLY", ""},
		{"sync_failed", SyncFailed(SyncReport{
			Started: midnight.Add(2 * time.Hour),
			Failures: []SyncFailure{
				{Repo: "john-ai-vms", Target: "offsite-backup:john-ai-vms/", ExitCode: 23,
					Output: "rsync: write failed on \"john-ai-vms/data/1/1234\": No space left on device (28)\nrsync error: error in file IO (code 11)"},
				{Repo: "john-ai", Target: "/mnt/nas/backups/", ExitCode: 12, Output: longOutput},
			},
			LogPath: "/var/log/borgkit/sync.log",
		}), "OFFSITE SYNC FAILED", ""},
		{"integrity_failed", IntegrityFailed(IntegrityReport{
			Check: "borg check --repository-only", Started: time.Date(2026, 6, 13, 9, 0, 0, 0, time.UTC),
			Repos: []RepoResult{
				{Repo: "john-ai", Path: "/mnt/backup/john-ai", Status: StatusOK, Duration: 3*time.Minute + 12*time.Second},
				{Repo: "john-ai-vms", Path: "/mnt/backup/john-ai-vms", Status: StatusFailed, ExitCode: 1,
					Output: "Index object count mismatch.\nCompleted repository check, errors found."},
			},
			LogPath: "/var/log/borgkit/check.log",
		}), "INTEGRITY CHECK FAILED", ""},
		{"restore_test_failed", RestoreTestFailed(RestoreTestReport{
			Repo: "/mnt/backup/john-ai", Archive: "nightly-2026-06-01T00:00", File: "etc/borgkit/canary",
			Started: time.Date(2026, 6, 1, 10, 0, 4, 0, time.UTC), Problem: "the extracted file differs from the live file",
			LogPath: "/var/log/borgkit/restore-test.log",
		}), "RESTORE TEST FAILED", ""},
		{"disk_space", DiskSpaceWarning("/mnt/backup", 91, 3188000000000, 3500000000000), "DISK SPACE WARNING", ""},
		{"offsite_disk", OffsiteDiskWarning("/mnt/backup", 96, 4329327034368, 4500000000000, "john-ai"), "OFFSITE DISK SPACE WARNING", ""},
		{"staleness", Staleness([]AgeCheck{
			{Name: "Nightly backup", Age: 34*time.Hour + 20*time.Minute, Threshold: 30 * time.Hour, Log: "/var/log/backup-nightly.log"},
			{Name: "Offsite sync", Age: 8*time.Hour + 5*time.Minute, Threshold: 30 * time.Hour, Log: "/var/log/backup-offsite-sync.log"},
		}), "STALENESS ALERT", ""},
		{"staleness_never", Staleness([]AgeCheck{
			{Name: "Nightly backup", Age: 2 * time.Hour, Threshold: 30 * time.Hour},
			{Name: "Offsite sync", Never: true, Threshold: 90 * time.Minute},
		}), "STALENESS ALERT", ""},
		{"staleness_proxmox", Staleness([]AgeCheck{
			{Name: "Nightly backup", Age: 6 * time.Hour, Threshold: 30 * time.Hour},
			{Name: "Proxmox guest 105 dump", Noun: "backup of Proxmox guest 105", Age: 80 * time.Hour, Threshold: 30 * time.Hour,
				Hint: "Check the backup job on the Proxmox server and the dumps in /mnt/nas/proxmox/dump."},
		}), "STALENESS ALERT", ""},
		{"staleness_unreadable", Staleness([]AgeCheck{
			{Name: "Nightly backup", Age: 6 * time.Hour, Threshold: 30 * time.Hour},
			{Name: "Proxmox dumps", Noun: "Proxmox dumps", Err: "open /mnt/nas/proxmox/dump: no such file or directory", Threshold: 30 * time.Hour,
				Hint: "Check that the share holding /mnt/nas/proxmox/dump is mounted."},
		}), "STALENESS ALERT", ""},
		{"heartbeat_stale", HeartbeatStale("john-ai", 35*time.Hour+40*time.Minute, 30*time.Hour, "/mnt/backup/.heartbeat/john-ai-last-success"),
			"heartbeat STALE", "john-ai"},
		{"heartbeat_missing", HeartbeatStale("john-ai", -1, 30*time.Hour, "/mnt/backup/.heartbeat/john-ai-last-success"),
			"heartbeat STALE", "john-ai"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.msg.Subject != tc.subject || tc.msg.Host != tc.host {
				t.Errorf("subject, host = %q, %q, want %q, %q", tc.msg.Subject, tc.msg.Host, tc.subject, tc.host)
			}
			if tc.msg.HTML != "" {
				t.Errorf("alert mails are plain text, got HTML")
			}
			golden(t, tc.name+".txt", []byte(tc.msg.Text))
		})
	}
}

// TestSeedNightly pins the one mail the seed shows in full, byte for byte:
// a golden file rewritten by -update could drift from it unnoticed.
func TestSeedNightly(t *testing.T) {
	const seed = `=== NIGHTLY BACKUP FAILED ===
Exit code: 1
Timestamp: 2026-06-12 00:23:15

--- System backup ---
  Status: OK (10m 32s)

--- VM backup: 100 homeassistant ---
  Status: OK (2m 18s)

--- VM backup: 102 openclaw ---
  Status: FAILED (exit code 1)
  Output:
    borg create: Error: /storage/libvirt/images/102-openclaw: file changed
    while we backed it up

--- Retention + compact ---
  Status: OK

Full log: /var/log/backup-nightly.log
`
	got, err := os.ReadFile("testdata/nightly_failed.txt")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != seed {
		t.Errorf("nightly mail differs from the seed:\n%s", got)
	}
	for name, want := range map[string]string{
		"disk_space.txt": "=== DISK SPACE WARNING ===\n/mnt/backup is 91% full (2.9T of 3.2T used)\n" +
			"Backup completed successfully, but disk space is running low.\nConsider pruning older archives or replacing the disk.\n",
		"staleness.txt": "=== BACKUP STALENESS ALERT ===\nNightly backup age: 34h (threshold: 30h)\nOffsite sync age: 8h (OK)\n\n" +
			"The nightly backup has not completed in over 30 hours.\nCheck cron jobs and /var/log/backup-nightly.log.\n",
		"heartbeat_stale.txt": "=== john-ai HEARTBEAT STALE ===\nLast heartbeat: 35h ago (threshold: 30h)\n" +
			"Heartbeat file: /mnt/backup/.heartbeat/john-ai-last-success\n\n" +
			"john-ai has not reported a successful backup in over 30 hours.\n" +
			"This could mean: powered off, cron dead, network down, or email broken.\n",
	} {
		got, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s differs from the seed:\n%s", name, got)
		}
	}
}

func TestElapsed(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{-time.Second, "0s"},
		{1400 * time.Millisecond, "1s"},
		{45 * time.Second, "45s"},
		{2*time.Minute + 18*time.Second, "2m 18s"},
		{10*time.Minute + 32*time.Second, "10m 32s"},
		{time.Hour + 5*time.Minute + 59*time.Second, "1h 5m"},
	} {
		if got := Elapsed(tc.d); got != tc.want {
			t.Errorf("Elapsed(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestAgeAndLimit(t *testing.T) {
	for _, tc := range []struct {
		d          time.Duration
		age, limit string
	}{
		{0, "0m", "0h"},
		{45 * time.Minute, "45m", "45m"},
		{6 * time.Hour, "6h", "6h"},
		{34*time.Hour + 59*time.Minute, "34h", "34h 59m"},
		{90 * time.Minute, "1h", "1h 30m"},
		{30 * time.Hour, "30h", "30h"},
	} {
		if got := Age(tc.d); got != tc.age {
			t.Errorf("Age(%s) = %q, want %q", tc.d, got, tc.age)
		}
		if got := Limit(tc.d); got != tc.limit {
			t.Errorf("Limit(%s) = %q, want %q", tc.d, got, tc.limit)
		}
	}
	if got := limitWords(time.Hour); got != "1 hour" {
		t.Errorf("limitWords(1h) = %q", got)
	}
}

func TestSize(t *testing.T) {
	const (
		K = 1 << 10
		G = 1 << 30
		T = 1 << 40
	)
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0"},
		{1000, "1000"},
		{K, "1.0K"},
		{K + 1, "1.1K"},
		{290 * G, "290G"},
		{289*G + 1, "290G"},   // df rounds up
		{1000 * G, "1000G"},   // below 1024G df stays in G
		{1024*G - 1, "1.0T"},  // rounds up into the next unit
		{29 * T / 10, "2.9T"}, // 2.9T exactly
		{29*T/10 + 1, "3.0T"}, // a byte over rounds up
		{36 * T / 10, "3.6T"}, // the seed's USB disk
		{3 << 59, "1.5E"},
	} {
		if got := Size(tc.n); got != tc.want {
			t.Errorf("Size(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestStale(t *testing.T) {
	for _, tc := range []struct {
		c    AgeCheck
		want bool
	}{
		{AgeCheck{Age: 29 * time.Hour, Threshold: 30 * time.Hour}, false},
		{AgeCheck{Age: 30 * time.Hour, Threshold: 30 * time.Hour}, false},
		{AgeCheck{Age: 30*time.Hour + time.Second, Threshold: 30 * time.Hour}, true},
		{AgeCheck{Never: true, Threshold: 30 * time.Hour}, true},
	} {
		if got := tc.c.Stale(); got != tc.want {
			t.Errorf("%+v.Stale() = %v, want %v", tc.c, got, tc.want)
		}
	}
}
