package lab

import (
	"context"
	"os"
	"testing"
)

// RequireEnv, when set, turns "the lab cannot run here" from a skip into a
// failure: CI that must not quietly lose the lab tests sets it.
const RequireEnv = "BORGKIT_REQUIRE_LAB"

// DebugEnv, when set, makes StartT log every command the lab runs.
const DebugEnv = "BORGKIT_LAB_DEBUG"

// StartT starts a lab for a test (with opts[0], if given) and closes it
// when the test ends. Where the lab cannot run it skips the test with the
// reason, or fails it when BORGKIT_REQUIRE_LAB is set.
func StartT(t testing.TB, opts ...Options) *Lab {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if why := Unavailable(); why != "" {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("lab required (%s is set) but %s", RequireEnv, why)
		}
		t.Skipf("lab: %s", why)
	}
	if o.Log == nil && os.Getenv(DebugEnv) != "" {
		o.Log = os.Stderr
	}
	l, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range l.Hosts() {
				t.Logf("sshd log of %s:\n%s", h.Name, l.SSHDLog(h.Name))
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return l
}
