package main

import (
	"os"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/testing/borghome"
)

// The tests run borg for real; its state stays out of the real home.
//
// Called with a borgkit command rather than test flags, the test binary is
// the CLI: provisioning under --root installs the running executable (this
// binary) and runs it as `borgkit version --json` to prove it executes.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		main()
		return
	}
	borghome.Main(m)
}
