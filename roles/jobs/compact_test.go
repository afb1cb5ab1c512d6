package jobs_test

import (
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
)

// repoDataBytes is what the repo's segment files hold on disk: what a
// mirror has to carry.
func repoDataBytes(t *testing.T, repo string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(filepath.Join(repo, "data"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNightlyCompactsOnlyOnPolicyDays: prune frees a big file's chunks
// every night, but the segments holding them are rewritten (and so
// re-sent to every mirror) only on a compaction weekday, with the
// configured threshold.
func TestNightlyCompactsOnlyOnPolicyDays(t *testing.T) {
	// borg wants a segment's worth (500 MiB) free before it deletes.
	l := newLab(t, labOptions{diskSize: 1 << 30})
	l.cfg.Hosts[0].Compaction = &config.Compaction{Weekdays: []string{"sun"}, Threshold: 40}
	// One archive a day: the night before is pruned whole (borg keeps the
	// oldest archive too while fewer days than keep-daily have one).
	l.cfg.Retention = config.Retention{Daily: 1}
	monday := time.Date(2026, 11, 23, 0, 0, 0, 0, time.Local)
	sunday := time.Date(2026, 11, 29, 0, 0, 0, 0, time.Local)
	repo := filepath.Join(l.mnt, "system")
	big := make([]byte, 8<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(l.home, "big.bin"), big, 0o644)

	night := func(at time.Time) {
		t.Helper()
		l.log.Reset()
		l.env.Now = func() time.Time { return at }
		if err := jobs.Nightly(ctx(), l.env); err != nil {
			t.Fatal(err)
		}
		// Archive names have one-second resolution.
		time.Sleep(1100 * time.Millisecond)
	}
	night(monday)
	os.Remove(filepath.Join(l.home, "big.bin"))
	// The archive holding big.bin is pruned, but its segment stays until
	// a compaction day.
	night(monday)
	if strings.Contains(l.log.String(), "borg compact") || !strings.Contains(l.log.String(), "no compaction tonight (compaction weekdays: sun)") {
		t.Fatalf("compacted on a Monday:\n%s", l.log.String())
	}
	if n := repoDataBytes(t, repo); n < 8<<20 {
		t.Fatalf("repo holds %d bytes: the pruned file's segment is gone without compaction", n)
	}
	if n := l.archives("system"); n != 1 {
		t.Fatalf("%d archives after prune", n)
	}
	night(sunday)
	if !strings.Contains(l.log.String(), "borg compact --threshold 40 "+repo) {
		t.Fatalf("no compaction with the host's threshold on Sunday:\n%s", l.log.String())
	}
	if n := repoDataBytes(t, repo); n >= 8<<20 {
		t.Fatalf("repo still holds %d bytes after the compaction night", n)
	}
}

func TestCompactionDefaults(t *testing.T) {
	c := &config.Config{}
	p := c.HostCompaction(&config.Host{})
	if p.Threshold != config.DefaultCompactThreshold || strings.Join(p.Weekdays, ",") != "sun" {
		t.Fatalf("defaults %+v", p)
	}
	if !p.Due(time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC)) || p.Due(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)) {
		t.Fatal("Due does not follow the weekday")
	}
}
