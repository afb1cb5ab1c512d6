package vm

import (
	"os"
	"testing"

	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
)

// TestMain removes the shared site tree (bundletest.Shared) once, after
// every test: the stick and offline-runbook tests run in parallel on the
// one tree, and a test that removed it when it ended pulled it from under
// the other (the offline test hashes its source files last).
func TestMain(m *testing.M) {
	code := m.Run()
	bundletest.Cleanup()
	os.Exit(code)
}
