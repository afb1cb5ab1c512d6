package luks2

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Both benchmarks check the same header backup with the same keyfile, so
// their ns/op and peak memory compare directly. The header uses argon2id
// with cryptsetup's real-disk memory cost (256 MiB) and a fixed time cost of
// 4 so the run time does not depend on cryptsetup's own CPU benchmark;
// parallelism is left at cryptsetup's default (min(4, online CPUs)).
func benchFixture(b *testing.B) fixture {
	b.Helper()
	return sharedFixture(b, "bench-argon2id", []byte("borgkit offsite bench key\n"),
		"--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "262144", "--pbkdf-force-iterations", "4")
}

// oneShotEnv makes the test binary run a single CheckKey and exit (see
// TestMain), giving a fresh process whose peak RSS is comparable to one
// cryptsetup invocation.
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

// peakRSSMiB runs cmd under GNU time. Reading ru_maxrss of our own child is
// useless here: Go starts children with a vfork-style clone, so the child's
// high-water mark already includes this (256+ MiB) test process.
func peakRSSMiB(b *testing.B, cmd *exec.Cmd) float64 {
	b.Helper()
	gnuTime, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		b.Logf("no /usr/bin/time, peak RSS not measured: %v", err)
		return -1
	}
	out := filepath.Join(b.TempDir(), "maxrss")
	cmd.Args = append([]string{gnuTime, "-f", "%M", "-o", out}, cmd.Args...)
	cmd.Path = gnuTime
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, msg)
	}
	kib, err := strconv.ParseFloat(strings.TrimSpace(string(readFile(b, out))), 64)
	if err != nil {
		b.Fatalf("parsing GNU time output: %v", err)
	}
	return kib / 1024
}

func BenchmarkCheckKeyArgon2id(b *testing.B) {
	fx := benchFixture(b)
	_, h := openHeader(b, fx.hdr)
	kdf := h.Keyslots[0].KDF
	b.ReportAllocs()
	cpu0 := selfCPU()
	for b.Loop() {
		res, err := CheckKey(fx.hdr, fx.key)
		if err != nil || res.Slot != 0 {
			b.Fatalf("CheckKey = %+v, %v", res, err)
		}
	}
	b.StopTimer()
	reportCPU(b, selfCPU()-cpu0)
	b.ReportMetric(float64(kdf.Memory)/1024, "argon2-MiB")
	b.ReportMetric(float64(kdf.CPUs), "threads")
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), oneShotEnv+"="+fx.hdr, oneShotKeyEnv+"="+fx.key)
	b.ReportMetric(peakRSSMiB(b, cmd), "peak-RSS-MiB")
}

func BenchmarkCryptsetupTestPassphrase(b *testing.B) {
	cs := cryptsetupPath(b)
	fx := benchFixture(b)
	args := []string{"open", "--test-passphrase", "--key-file", fx.key, "--header", fx.hdr, fx.hdr}
	var cpu time.Duration
	for b.Loop() {
		cmd := exec.Command(cs, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("cryptsetup open --test-passphrase: %v\n%s", err, out)
		}
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	b.StopTimer()
	reportCPU(b, cpu)
	b.ReportMetric(peakRSSMiB(b, exec.Command(cs, args...)), "peak-RSS-MiB")
}

// CPU time per op is reported next to wall time because the benchmark host
// may be shared: contention inflates ns/op but barely moves CPU seconds.
func reportCPU(b *testing.B, total time.Duration) {
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "cpu-ms/op")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
