// Command borgkit provisions and runs a BorgBackup 3-2-1 appliance.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
)

// The exit-status contract, in one place. Every command declares which of
// these it can return (withExits); its help lists exactly those, the root's
// help and the README list them all, and tests hold both to the binary.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2 // bad usage or bad config: nothing was changed
	exitPending = 3 // provision/plan --detailed-exitcode: the plan had changes
	// exitWarnings: a job did its work and mailed warnings.
	exitWarnings = jobs.ExitWarnings
	// exitSomeFailed: a run over several hosts (provision/plan/status
	// --all or a list) where some hosts failed and the others did not.
	exitSomeFailed = 5
)

// exitContract is what each code means across all commands: the root's
// EXIT STATUS and the README's.
var exitContract = []exitCase{
	{exitOK, "success (status: healthy, or warnings only)"},
	{exitFailed, "failure: a job, step, check or channel failed, a conflict stopped the plan, a host was unreachable, status shows a failure"},
	{exitUsage, "bad usage (unknown command, job or flag, a missing argument or flag) or a bad config file; nothing was changed"},
	{exitPending, "only with --detailed-exitcode (provision, plan): the plan had changes"},
	{exitWarnings, "job nightly: every repo was backed up, with warnings it mailed (a file borg could not read, a suspicious archive)"},
	{exitSomeFailed, "provision, plan or status over several hosts (--all or a list): some hosts failed, the others succeeded; the summary names the failed ones (every host failed: 1)"},
}

// exitCase is one line of a command's EXIT STATUS: a code and when this
// command returns it.
type exitCase struct {
	code int
	when string
}

// usageCase is exit status 2 as every command words it: each one parses
// flags and arguments, and most read the config.
func usageCase(extra string) exitCase {
	when := "bad usage: unknown flag or argument, or a missing one"
	if extra != "" {
		when += "; " + extra
	}
	return exitCase{exitUsage, when}
}

// exitCodesKey is the annotation holding a command's declared codes
// ("0,1,2"), which the help test compares with the EXIT STATUS it prints.
const exitCodesKey = "borgkit/exit-codes"

// withExits appends the EXIT STATUS block to cmd's help and records its
// codes. Codes are listed in order; 2 is always there (every command parses
// its flags and arguments).
func withExits(cmd *cobra.Command, cases ...exitCase) *cobra.Command {
	sort.Slice(cases, func(i, j int) bool { return cases[i].code < cases[j].code })
	var codes []string
	long := cmd.Long
	if long == "" {
		long = cmd.Short + "."
	}
	long = strings.TrimRight(long, "\n") + "\n\nEXIT STATUS\n"
	for _, c := range cases {
		codes = append(codes, strconv.Itoa(c.code))
		long += fmt.Sprintf("  %d  %s\n", c.code, c.when)
	}
	cmd.Long = long
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[exitCodesKey] = strings.Join(codes, ",")
	return cmd
}

// usageError marks errors in how borgkit was called.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// usagef is a usageError from a format.
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// errPending asks for exit status 3 without printing anything more.
var errPending = errors.New("changes pending")

// errUnhealthy is status showing a failure: exit 1, the dashboard says why.
var errUnhealthy = errors.New("the dashboard shows a failure")

// exitCode maps an error to the contract. Usage errors and config problems
// are 2; everything else that went wrong is 1.
func exitCode(err error) int {
	var ue usageError
	var p *config.Problem
	var ps config.Problems
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errPending):
		return exitPending
	case errors.Is(err, errSomeFailed):
		return exitSomeFailed
	case errors.As(err, new(*jobs.WarningsError)):
		return exitWarnings
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
