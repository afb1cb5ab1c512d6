package luks2

import (
	"fmt"
	"os"
)

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
