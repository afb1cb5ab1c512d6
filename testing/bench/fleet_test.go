package bench

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestOwnCPU: GNU time's line is the last of stderr, after what borgkit
// printed there; anything else is an error, not a zero.
func TestOwnCPU(t *testing.T) {
	for _, tc := range []struct {
		stderr string
		want   float64
		ok     bool
	}{
		{"client1: checking 34 steps\nbench-cpu 0.04 0.06\n", 0.1, true},
		{"bench-cpu 1.5 0.25", 1.75, true},
		{"client1: checking 34 steps\n", 0, false},
		{"bench-cpu x 0.06\n", 0, false},
		{"", 0, false},
	} {
		got, err := ownCPU([]byte(tc.stderr))
		if (err == nil) != tc.ok || tc.ok && (got < tc.want-1e-9 || got > tc.want+1e-9) {
			t.Errorf("ownCPU(%q) = %v, %v; want %v (ok %v)", tc.stderr, got, err, tc.want, tc.ok)
		}
	}
}

// TestBusySeconds: 0.3 s of CPU burnt here shows in the machine's count,
// and nothing near ten times that does in the same wall time.
func TestBusySeconds(t *testing.T) {
	b0, err := busySeconds()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var u atomic.Uint64
	user := func() time.Duration {
		var r syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r); err != nil {
			t.Fatal(err)
		}
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	start := user()
	for user()-start < 300*time.Millisecond {
		u.Add(1)
	}
	b1, err := busySeconds()
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(t0).Seconds()
	if got := b1 - b0; got < 0.25 || got > wall*float64(runtime.NumCPU())+0.05 {
		t.Errorf("the machine's CPU went up %.2f s in %.2f s of wall time on %d cores while this test burnt 0.3 s", got, wall, runtime.NumCPU())
	}
}
