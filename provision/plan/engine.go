package plan

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/progress"
)

// Options steer one run of the engine.
type Options struct {
	// DryRun stops after the plan is shown.
	DryRun bool
	// Printer is told about each phase as it happens; nil prints nothing.
	Printer Printer
	// Progress shows the step being checked or applied: over SSH a plan
	// of fifty steps takes a while before the Printer has anything.
	Progress *progress.Line
}

// StepReport is one step's line in a report.
type StepReport struct {
	ID    string `json:"id"`
	Check Check  `json:"check"`
	// Applied is true when Apply ran and succeeded.
	Applied  bool          `json:"applied,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// Report is what a run found and did.
type Report struct {
	Host   string       `json:"host"`
	DryRun bool         `json:"dry_run"`
	Steps  []StepReport `json:"steps"`
	// Counts by action at plan time.
	Unchanged int `json:"unchanged"`
	Create    int `json:"create"`
	Modify    int `json:"modify"`
	Conflict  int `json:"conflict"`
	Skip      int `json:"skip"`
	Failed    int `json:"failed"`
	// Warnings counts the warnings of every check.
	Warnings int `json:"warnings"`
}

// WarningSteps are the steps whose check carries a warning, in plan order.
func (r *Report) WarningSteps() []StepReport {
	var out []StepReport
	for _, s := range r.Steps {
		if len(s.Check.Warnings) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// Pending is how many steps the plan would change.
func (r *Report) Pending() int { return r.Create + r.Modify }

// Errors the engine returns; the CLI maps them to exit codes.
var (
	ErrConflict   = errors.New("plan has conflicts; nothing was applied")
	ErrCheck      = errors.New("a step could not be checked; nothing was applied")
	ErrApply      = errors.New("applying a step failed")
	ErrNotSettled = errors.New("a step is still not satisfied after applying")
)

// Printer receives the engine's progress. Text and JSON printers implement it
// so --json never forks the engine.
type Printer interface {
	Planned(r *Report)
	Applying(id string)
	Applied(s StepReport)
	Done(r *Report, err error)
}

// Run checks every step, shows the plan, applies the pending steps in order
// unless anything conflicts, then checks every step again.
func Run(ctx context.Context, h host.Host, steps []Step, opts Options) (*Report, error) {
	p := opts.Printer
	if p == nil {
		p = nopPrinter{}
	}
	if err := uniqueIDs(steps); err != nil {
		return nil, err
	}
	r := &Report{Host: h.Name(), DryRun: opts.DryRun, Steps: make([]StepReport, len(steps))}
	checkFailed := false
	prog := opts.Progress
	prog.Status("%s: checking %d steps", h.Name(), len(steps))
	// The checks run together (checkAll); the ticks follow their results.
	for i, res := range checkAll(ctx, h, steps) {
		prog.Tick("%s: checking %d/%d %s", h.Name(), i+1, len(steps), steps[i].ID())
		r.Steps[i] = StepReport{ID: steps[i].ID(), Check: res.c}
		r.Warnings += len(res.c.Warnings)
		if res.err != nil {
			r.Steps[i].Error = res.err.Error()
			r.Failed++
			checkFailed = true
			continue
		}
		r.count(res.c.Action)
	}
	prog.Done()
	p.Planned(r)
	err := apply(ctx, h, steps, r, opts.DryRun, checkFailed, p, prog)
	prog.Done()
	p.Done(r, err)
	return r, err
}

func apply(ctx context.Context, h host.Host, steps []Step, r *Report, dryRun, checkFailed bool, p Printer, prog *progress.Line) error {
	switch {
	case checkFailed:
		return ErrCheck
	case r.Conflict > 0:
		return fmt.Errorf("%w (%d conflicting)", ErrConflict, r.Conflict)
	case dryRun || r.Pending() == 0:
		return nil
	}
	for i, s := range steps {
		if !r.Steps[i].Check.Action.Pending() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		prog.Tick("%s: applying %s", h.Name(), s.ID())
		p.Applying(s.ID())
		start := time.Now()
		err := s.Apply(ctx, h)
		r.Steps[i].Duration = time.Since(start)
		if err != nil {
			r.Steps[i].Error = err.Error()
			r.Failed++
			p.Applied(r.Steps[i])
			return fmt.Errorf("%w: %s: %w", ErrApply, s.ID(), err)
		}
		r.Steps[i].Applied = true
		p.Applied(r.Steps[i])
	}
	// A step whose Apply "worked" but left the host unsatisfied would make
	// every later run re-apply it forever; catch that now, naming the step.
	prog.Status("%s: checking every step again", h.Name())
	var again []Step
	for i, s := range steps {
		if r.Steps[i].Check.Action != Skip {
			again = append(again, s)
		}
	}
	for i, res := range checkAll(ctx, h, again) {
		prog.Tick("%s: checking again %d/%d %s", h.Name(), i+1, len(again), again[i].ID())
		if res.err != nil {
			return fmt.Errorf("%w: re-check %s: %w", ErrNotSettled, again[i].ID(), res.err)
		}
		if res.c.Action != OK {
			return fmt.Errorf("%w: %s: %s %s", ErrNotSettled, again[i].ID(), res.c.Action, res.c.Summary+res.c.Reason)
		}
	}
	return nil
}

func (r *Report) count(a Action) {
	switch a {
	case OK:
		r.Unchanged++
	case Create:
		r.Create++
	case Modify:
		r.Modify++
	case Conflict:
		r.Conflict++
	case Skip:
		r.Skip++
	}
}

func uniqueIDs(steps []Step) error {
	seen := make(map[string]bool, len(steps))
	for _, s := range steps {
		if seen[s.ID()] {
			return fmt.Errorf("plan: two steps share the id %q", s.ID())
		}
		seen[s.ID()] = true
	}
	return nil
}

type nopPrinter struct{}

func (nopPrinter) Planned(*Report)     {}
func (nopPrinter) Applying(string)     {}
func (nopPrinter) Applied(StepReport)  {}
func (nopPrinter) Done(*Report, error) {}
