package jobs_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/status"
)

// rawNightly is what borgkit's nightly does for the lab's repo, as a person
// would type it: the same create, prune and compact.
func rawNightly(b *testing.B, l *lab) {
	repo := filepath.Join(l.mnt, "system")
	for _, args := range [][]string{
		{"create", "--stats", "--json", "--compression", "zstd", "--exclude-caches", repo + "::raw-{now:%Y-%m-%dT%H:%M:%S.%f}", l.home},
		{"prune", "--list", "--glob-archives", "raw-*", "--keep-daily", "3", "--keep-weekly", "2", "--keep-monthly", "6", repo},
		{"compact", "--threshold", "25", repo},
	} {
		c := exec.Command("borg", args...)
		c.Env = append(os.Environ(), l.borgEnv()...)
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("borg %v: %v\n%s", args, err, out)
		}
	}
}

// BenchmarkNightlyVsRawBorg times borgkit's nightly job and the same raw
// borg sequence alternately on the same repo and data, and reports the
// ratio (goal: overhead under 3%, ratio <= 1.03).
func BenchmarkNightlyVsRawBorg(b *testing.B) {
	// borg compact wants a segment's worth (500 MiB) of free space.
	l := newLab(b, labOptions{diskSize: 1 << 30})
	// Compact every night, as the raw sequence does, at the same threshold.
	l.env.Cfg.Compaction = &config.Compaction{Weekdays: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, Threshold: 25}
	l.env.Host.Compaction = nil
	// A next night: one changed file, as most nights are.
	var kit, raw time.Duration
	for i := 0; b.Loop(); i++ {
		os.WriteFile(filepath.Join(l.home, "changed.txt"), []byte(time.Now().String()), 0o644)
		t0 := time.Now()
		if err := jobs.Nightly(ctx(), l.env); err != nil {
			b.Fatal(err)
		}
		kit += time.Since(t0)
		// Archive names have one-second resolution.
		time.Sleep(1100 * time.Millisecond)
		t0 = time.Now()
		rawNightly(b, l)
		raw += time.Since(t0)
	}
	b.ReportMetric(kit.Seconds()/float64(b.N), "borgkit-s/op")
	b.ReportMetric(raw.Seconds()/float64(b.N), "raw-borg-s/op")
	b.ReportMetric(float64(kit)/float64(raw), "ratio")
}

// BenchmarkStatusVsBorgInfo compares the dashboard, read from the jobs'
// records, with asking borg itself about the one repo (goal: >= 50x).
func BenchmarkStatusVsBorgInfo(b *testing.B) {
	l := newLab(b, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		b.Fatal(err)
	}
	var st, info time.Duration
	for b.Loop() {
		t0 := time.Now()
		d, err := status.Live(l.env)
		if err != nil {
			b.Fatal(err)
		}
		d.Text(io.Discard, false)
		st += time.Since(t0)
		t0 = time.Now()
		c := exec.Command("borg", "info", "--json", filepath.Join(l.mnt, "system"))
		c.Env = append(os.Environ(), l.borgEnv()...)
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("borg info: %v\n%s", err, out)
		}
		info += time.Since(t0)
	}
	b.ReportMetric(float64(st.Microseconds())/float64(b.N), "status-us/op")
	b.ReportMetric(float64(info.Microseconds())/float64(b.N), "borg-info-us/op")
	b.ReportMetric(float64(info)/float64(st), "speedup")
}
