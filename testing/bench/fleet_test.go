package bench

import "testing"

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
