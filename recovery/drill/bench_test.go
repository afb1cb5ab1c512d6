package drill_test

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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
func BenchmarkDrillVsBorgExtract(b *testing.B) {
	s := bundletest.Shared(b)
	dir := filepath.Join(b.TempDir(), "bundle")
	b.Cleanup(func() { bundletest.MakeWritable(b, dir) })
	if _, err := bundle.Write(context.Background(), s.Cfg, s.Server, s.Src, dir, bundle.Options{}); err != nil {
		b.Fatal(err)
	}
	const name = "john-ai"
	repo := filepath.Join(s.Mirror, name)
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
	latest := strings.TrimSpace(string(borg("", "list", "--bypass-lock", "--last", "1", "--short", repo)))
	var drillBytes, borgBytes int64
	var drillTime, borgTime time.Duration
	for b.Loop() {
		res, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Mirror: s.Mirror, Repos: []string{name},
			Samples: 1 << 20, ReportDir: b.TempDir(), WorkDir: b.TempDir()})
		if err != nil || res.Throughput <= 0 {
			b.Fatalf("drill: %v", err)
		}
		drillBytes += res.Bytes
		drillTime += time.Duration(float64(res.Bytes) / res.Throughput * float64(time.Second))

		out := b.TempDir()
		t0 := time.Now()
		borg(out, "extract", "--bypass-lock", repo+"::"+latest)
		borgTime += time.Since(t0)
		filepath.WalkDir(out, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					borgBytes += fi.Size()
				}
			}
			return nil
		})
	}
	drillRate := float64(drillBytes) / drillTime.Seconds()
	borgRate := float64(borgBytes) / borgTime.Seconds()
	b.ReportMetric(drillRate/1e6, "drill-MB/s")
	b.ReportMetric(borgRate/1e6, "borg-extract-MB/s")
	b.ReportMetric(drillRate/borgRate, "ratio")
}
