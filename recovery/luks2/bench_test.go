package luks2

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchFixture is the bench harness's item 5 header: argon2id with
// cryptsetup's real-disk memory cost (256 MiB) and a fixed time cost of 4,
// so the run time does not depend on cryptsetup's own CPU benchmark;
// parallelism is left at cryptsetup's default (min(4, online CPUs)).
func benchFixture(b *testing.B) fixture {
	b.Helper()
	return sharedFixture(b, "bench-argon2id", func(dir string) fixture {
		return newFixture(b, dir, []byte("borgkit offsite bench key\n"),
			"--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "262144", "--pbkdf-force-iterations", "4")
	})
}

// oneShotEnv makes the test binary run a single CheckKey and exit (see
// TestMain), giving a fresh process comparable to one cryptsetup run.
const (
	oneShotEnv    = "LUKS2_BENCH_ONESHOT_HEADER"
	oneShotKeyEnv = "LUKS2_BENCH_ONESHOT_KEY"
)

func runOneShotCheck() {
	if _, err := CheckKey(os.Getenv(oneShotEnv), os.Getenv(oneShotKeyEnv)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// run is one measured process: wall time, CPU time and peak RSS.
type run struct {
	wall, cpu time.Duration
	rssMiB    float64
}

// measure runs argv under GNU time for the peak RSS. Reading ru_maxrss of
// our own child is useless here: Go starts children with a vfork-style
// clone, so the child's high-water mark includes this test process.
func measure(b *testing.B, env []string, argv ...string) run {
	b.Helper()
	gnuTime, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		b.Skipf("GNU time is needed for peak RSS: %v", err)
	}
	out := filepath.Join(b.TempDir(), "maxrss")
	cmd := exec.Command(gnuTime, append([]string{"-f", "%M", "-o", out}, argv...)...)
	cmd.Env = env
	start := time.Now()
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, msg)
	}
	r := run{wall: time.Since(start), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	kib, err := strconv.ParseFloat(strings.TrimSpace(string(readFile(b, out))), 64)
	if err != nil {
		b.Fatalf("GNU time output: %v", err)
	}
	r.rssMiB = kib / 1024
	return r
}

// BenchmarkCheckKeyVsCryptsetup is the bench row as a Go benchmark: per
// iteration one CheckKey process and one `cryptsetup open
// --test-passphrase` on the same header backup and keyfile, alternating
// which goes first; it reports the medians of the per-pair ratios
// (below 1: the Go check is faster or smaller). Run with
// -bench CheckKeyVsCryptsetup -benchtime 10x.
func BenchmarkCheckKeyVsCryptsetup(b *testing.B) {
	cs := cryptsetupPath(b)
	fx := benchFixture(b)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	kitEnv := append(os.Environ(), oneShotEnv+"="+fx.hdr, oneShotKeyEnv+"="+fx.key)
	kit := func() run { return measure(b, kitEnv, self, "-test.run=^$") }
	peer := func() run {
		return measure(b, os.Environ(), cs, "open", "--test-passphrase", "--key-file", fx.key, "--header", fx.hdr, fx.hdr)
	}
	kit() // warm-up: page cache, binaries
	peer()
	var wall, cpu, rss, kitWall, peerWall []float64
	i := 0
	for b.Loop() {
		var k, p run
		if i%2 == 0 {
			k, p = kit(), peer()
		} else {
			p, k = peer(), kit()
		}
		i++
		wall = append(wall, k.wall.Seconds()/p.wall.Seconds())
		cpu = append(cpu, k.cpu.Seconds()/p.cpu.Seconds())
		rss = append(rss, k.rssMiB/p.rssMiB)
		kitWall, peerWall = append(kitWall, k.wall.Seconds()), append(peerWall, p.wall.Seconds())
	}
	b.ReportMetric(median(kitWall)*1000, "go-ms")
	b.ReportMetric(median(peerWall)*1000, "cryptsetup-ms")
	b.ReportMetric(median(wall), "time-ratio")
	b.ReportMetric(median(cpu), "cpu-ratio")
	b.ReportMetric(median(rss), "rss-ratio")
	b.Logf("n=%d; time ratio min %.2f max %.2f; cpu ratio min %.2f max %.2f", len(wall),
		slices.Min(wall), slices.Max(wall), slices.Min(cpu), slices.Max(cpu))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// The two Argon2 implementations on the bench header's parameters
// (argon2id, 256 MiB, 4 passes, 2 lanes), in this process.
// CPU time is reported next to wall time because the benchmark host may
// be shared: contention inflates ns/op far more than CPU seconds.
func BenchmarkArgon2Ours(b *testing.B) {
	cpu0 := selfCPU()
	for b.Loop() {
		if _, err := argon2Key(b.Context(), "argon2id", []byte("p"), make([]byte, 32), 4, 256<<10, 2, 64); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((selfCPU()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
