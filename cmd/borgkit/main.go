// Command borgkit provisions and runs a BorgBackup 3-2-1 appliance.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/borgkit/borgkit/provision/config"
)

// Exit codes, in one place; every command's help lists them.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2 // bad usage or bad config: nothing was changed
	exitPending = 3 // --detailed-exitcode: the plan had changes
)

const exitStatusHelp = `
EXIT STATUS
  0  success
  1  failure (a step failed, a conflict stopped the plan, a host was unreachable)
  2  bad usage or a bad config file; nothing was changed
  3  with --detailed-exitcode: the plan had changes (pending with --dry-run, applied otherwise)
`

// usageError marks errors in how borgkit was called.
type usageError struct{ error }

// errPending asks for exit status 3 without printing anything more.
var errPending = errors.New("changes pending")

func exitCode(err error) int {
	var ue usageError
	var p *config.Problem
	var ps config.Problems
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errPending):
		return exitPending
	case errors.As(err, new(keyNotOpened)):
		return exitFailed
	case errors.As(err, &ue), errors.As(err, &p), errors.As(err, &ps):
		return exitUsage
	default:
		return exitFailed
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	code := exitCode(err)
	if err != nil && code != exitPending && !errors.Is(err, errReported) {
		fmt.Fprintf(os.Stderr, "borgkit: %v\n", err)
	}
	os.Exit(code)
}

// errReported wraps an error the command already printed in full (a plan
// with its conflicts), so main does not print it twice.
var errReported = errors.New("reported")

type reported struct{ err error }

func (r reported) Error() string   { return r.err.Error() }
func (r reported) Unwrap() []error { return []error{r.err, errReported} }
