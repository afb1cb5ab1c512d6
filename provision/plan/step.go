// Package plan is the provisioning engine: every step is checked, the plan is
// shown, nothing is applied while any step conflicts, and every step is
// checked again after applying.
package plan

import (
	"context"

	"github.com/borgkit/borgkit/provision/host"
)

// Action is what a step's check found.
type Action int

const (
	// OK: the host already is as the step wants it.
	OK Action = iota
	// Create: something is missing and will be made.
	Create
	// Modify: something exists and will be changed.
	Modify
	// Conflict: something is in the way that borgkit will not touch on its
	// own (a foreign file, a disk with a filesystem, a non-repo directory).
	Conflict
	// Skip: the step does not apply here (--root has no packages, mounts or
	// block devices); it is neither pending nor done.
	Skip
)

// Symbol is the plan's one-character mark for the action.
func (a Action) Symbol() string {
	return [...]string{"=", "+", "~", "!", "#"}[a]
}

func (a Action) String() string {
	return [...]string{"ok", "create", "modify", "conflict", "skip"}[a]
}

// Pending reports whether applying the step would change the host.
func (a Action) Pending() bool { return a == Create || a == Modify }

// MarshalText makes Action read as a word in JSON reports.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Check is a step's verdict on the host as it is now.
type Check struct {
	Action Action `json:"action"`
	// Summary says what would be done ("write 412 bytes", "borg init
	// --encryption=repokey-blake2"); Reason says why a step conflicts or skips.
	Summary string `json:"summary,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Diff is a unified diff for file content; empty for secrets.
	Diff string `json:"diff,omitempty"`
	// Warnings are about things the step leaves alone but the user should
	// look at (a broken line of theirs in a shared file) or must do
	// because borgkit cannot (a placeholder password to replace); they
	// never stop a run, and the plan repeats them at its end.
	Warnings []string `json:"warnings,omitempty"`
}

// Step is one piece of desired state. Check must not change the host; Apply
// is called only after a check said Create or Modify, and must leave the host
// so that the next Check says OK.
type Step interface {
	// ID is dotted and stable: "file./etc/cron.d/borgkit", "repo.john-ai".
	ID() string
	Check(ctx context.Context, h host.Host) (Check, error)
	Apply(ctx context.Context, h host.Host) error
}

// Helpers for steps, so verdicts read the same everywhere.

func Satisfied() Check                  { return Check{Action: OK} }
func Creates(summary string) Check      { return Check{Action: Create, Summary: summary} }
func Modifies(summary string) Check     { return Check{Action: Modify, Summary: summary} }
func Conflicts(reason string) Check     { return Check{Action: Conflict, Reason: reason} }
func Skipped(reason string) Check       { return Check{Action: Skip, Reason: reason} }
func (c Check) WithDiff(d string) Check { c.Diff = d; return c }
func (c Check) WithWarnings(w []string) Check {
	c.Warnings = w
	return c
}
