package drill_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
	"github.com/borgkit/borgkit/recovery/drill"
)

// BenchmarkDrillVsBorgExtract compares the drill's extraction throughput
// (every file of the repo's latest archive, checked against borg's hashes)
// with a plain `borg extract` of the same archive, in the same run
// (goal: ratio >= 0.95).
//
// The shared site's archives hold a few MiB, which borg restores in less
// time than it takes to start: the ratio would compare process start-ups.
// So the benchmark adds a newest archive of about 40 MiB of mixed files
// (many small, some medium, two large; half compressible, half not) to a
// copy of the mirror, and both sides restore that archive from that copy.
// The two run alternately first in each round, so drift in the machine's
// load hits both alike.
//
// The drill's time is its extraction window (Result.Throughput: from the
// start of borg extract until the last file is checked against the
// archive's hash); borg's is the whole `borg extract` process.
func BenchmarkDrillVsBorgExtract(b *testing.B) {
	s := bundletest.Shared(b)
	dir := filepath.Join(b.TempDir(), "bundle")
	b.Cleanup(func() { bundletest.MakeWritable(b, dir) })
	if _, err := bundle.Write(context.Background(), s.Cfg, s.Server, s.Src, dir, bundle.Options{}); err != nil {
		b.Fatal(err)
	}
	const name = "john-ai"
	mirror := filepath.Join(b.TempDir(), "mirror")
	if out, err := exec.Command("cp", "-a", s.Mirror, mirror).CombinedOutput(); err != nil {
		b.Fatalf("cp: %v: %s", err, out)
	}
	repo := filepath.Join(mirror, name)
	env := append(os.Environ(), "BORG_BASE_DIR="+b.TempDir(),
		"BORG_PASSCOMMAND=cat "+filepath.Join(dir, "borg", name+".pass"))
	borg := func(cwd string, args ...string) []byte {
		c := exec.Command("borg", args...)
		c.Env, c.Dir = env, cwd
		out, err := c.Output()
		if err != nil {
			b.Fatalf("borg %v: %v", args, err)
		}
		return out
	}
	// The repo's canary must be in its newest archive.
	src := b.TempDir()
	want := benchData(b, filepath.Join(src, "bench"))
	canary := []byte("john-ai\n")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc", "hostname"), canary, 0o644); err != nil {
		b.Fatal(err)
	}
	want += int64(len(canary))
	borg(src, "create", "--compression", "lz4", repo+"::bench-"+time.Now().Format("2006-01-02T15:04:05"), "bench", "etc/hostname")
	latest := strings.TrimSpace(string(borg("", "list", "--bypass-lock", "--last", "1", "--short", repo)))
	if !strings.HasPrefix(latest, "bench-") {
		b.Fatalf("latest archive %q, want the benchmark's", latest)
	}

	var drillBytes, borgBytes int64
	var drillTime, borgTime time.Duration
	var ratios []float64 // per round
	var bestDrill, bestBorg float64
	runDrill := func() (int64, time.Duration) {
		res, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Mirror: mirror, Repos: []string{name},
			Samples: 1 << 20, ReportDir: b.TempDir(), WorkDir: b.TempDir()})
		if err != nil || res.Throughput <= 0 {
			b.Fatalf("drill: %v", err)
		}
		return res.Bytes, time.Duration(float64(res.Bytes) / res.Throughput * float64(time.Second))
	}
	runBorg := func() (int64, time.Duration) {
		out := b.TempDir()
		t0 := time.Now()
		borg(out, "extract", "--bypass-lock", repo+"::"+latest)
		took := time.Since(t0)
		var n int64
		filepath.WalkDir(out, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		return n, took
	}
	round := 0
	for b.Loop() {
		var db, bb int64
		var dt, bt time.Duration
		if round%2 == 0 {
			db, dt = runDrill()
			bb, bt = runBorg()
		} else {
			bb, bt = runBorg()
			db, dt = runDrill()
		}
		round++
		if db != want || bb != want {
			b.Fatalf("restored %d bytes (drill) and %d (borg extract), the archive holds %d", db, bb, want)
		}
		dr, br := float64(db)/dt.Seconds(), float64(bb)/bt.Seconds()
		ratios = append(ratios, dr/br)
		bestDrill, bestBorg = max(bestDrill, dr), max(bestBorg, br)
		drillBytes, drillTime = drillBytes+db, drillTime+dt
		borgBytes, borgTime = borgBytes+bb, borgTime+bt
	}
	drillRate := float64(drillBytes) / drillTime.Seconds()
	borgRate := float64(borgBytes) / borgTime.Seconds()
	b.ReportMetric(drillRate/1e6, "drill-MB/s")
	b.ReportMetric(borgRate/1e6, "borg-extract-MB/s")
	b.ReportMetric(drillRate/borgRate, "ratio")
	// The machine's load moves single rounds a lot: the median round
	// says more than the extremes, and the best round of each side (the
	// least disturbed) more than either.
	b.ReportMetric(bestDrill/bestBorg, "ratio-best")
	slices.Sort(ratios)
	b.ReportMetric((ratios[(len(ratios)-1)/2]+ratios[len(ratios)/2])/2, "ratio-median")
	b.ReportMetric(ratios[0], "ratio-min")
	b.ReportMetric(ratios[len(ratios)-1], "ratio-max")
}

// benchData writes the benchmark's archive content under dir, the same for
// every run: 400 small files (up to 16 KiB), 40 medium ones (64 KiB to
// 768 KiB) and two large ones (8 and 12 MiB), about 40 MiB in all; every
// other file is text-like and compresses, the rest is random. It returns
// the total size.
func benchData(tb testing.TB, dir string) int64 {
	tb.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	words := strings.Fields("backup restore archive segment chunk repository borg offsite mirror drill nightly prune " +
		"compact check verify passphrase keyfile header disk mount unlock throughput latency the a of and to in")
	fill := func(buf []byte, text bool) {
		if !text {
			for i := 0; i+8 <= len(buf); i += 8 {
				v := rng.Uint64()
				for j := range 8 {
					buf[i+j] = byte(v >> (8 * j))
				}
			}
			return
		}
		for i := 0; i < len(buf); {
			w := words[rng.IntN(len(words))]
			i += copy(buf[i:], w)
			if i < len(buf) {
				buf[i] = " \n"[rng.IntN(8)/7]
				i++
			}
		}
	}
	var sizes []int
	for range 400 {
		sizes = append(sizes, rng.IntN(16<<10))
	}
	for range 40 {
		sizes = append(sizes, 64<<10+rng.IntN(704<<10))
	}
	sizes = append(sizes, 8<<20, 12<<20)
	var total int64
	for i, n := range sizes {
		buf := make([]byte, n)
		fill(buf, i%2 == 0)
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%23), fmt.Sprintf("f%04d.dat", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			tb.Fatal(err)
		}
		total += int64(n)
	}
	return total
}
