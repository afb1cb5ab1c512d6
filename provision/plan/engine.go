package plan

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
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
// (those that may, beside each other: Beside) unless anything conflicts,
// then checks every step again.
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
	checks, view := checkAll(ctx, h, steps)
	for i, res := range checks {
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
	err := apply(ctx, h, view, steps, r, opts.DryRun, checkFailed, p, prog)
	prog.Done()
	p.Done(r, err)
	return r, err
}

// apply applies the pending steps in plan order. A step that may go
// beside others (Beside) starts without waiting for the steps before it
// that are in flight, except those on its path; any other step waits for
// every step before it, and the steps after it wait for it. After a
// failure no step starts. view is what the checks found: whether a step's
// directory is there.
func apply(ctx context.Context, h, view host.Host, steps []Step, r *Report, dryRun, checkFailed bool, p Printer, prog *progress.Line) error {
	switch {
	case checkFailed:
		return ErrCheck
	case r.Conflict > 0:
		return fmt.Errorf("%w (%d conflicting)", ErrConflict, r.Conflict)
	case dryRun || r.Pending() == 0:
		return nil
	}
	a := &applying{h: h, steps: steps, r: r, p: p, prog: prog, errs: make([]error, len(steps)), slots: make(chan struct{}, applyWorkers)}
	made := map[string]bool{} // the places of the pending steps so far
	var inFlight []*flight    // started since the last step that went alone
	for i, s := range steps {
		if !r.Steps[i].Check.Action.Pending() {
			continue
		}
		if err := ctx.Err(); err != nil {
			a.wg.Wait()
			return err
		}
		place := besidePlace(ctx, view, s, made)
		if b, ok := s.(Beside); ok && b.Place() != "" {
			made[path.Clean(b.Place())] = true
		}
		if place == "" {
			a.wg.Wait()
			inFlight = nil
			if a.failed() {
				break
			}
			a.one(ctx, i, true)
			continue
		}
		// It follows the steps in flight on its path, and waits for them
		// on its own: the steps after it need not.
		f := &flight{place: place, done: make(chan struct{})}
		for _, g := range inFlight {
			if layout.Under(place, g.place) || layout.Under(g.place, place) {
				f.after = append(f.after, g)
			}
		}
		inFlight = append(inFlight, f)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer close(f.done)
			for _, g := range f.after {
				<-g.done
			}
			a.slots <- struct{}{}
			defer func() { <-a.slots }()
			if !a.failed() {
				a.one(ctx, i, false)
			}
		}()
	}
	a.wg.Wait()
	for i, err := range a.errs {
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrApply, steps[i].ID(), err)
		}
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
	checks, _ := checkAll(ctx, h, again)
	for i, res := range checks {
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

// applyWorkers bounds the steps applied at once: over SSH each holds a
// session of the host's few (maxRuns).
const applyWorkers = 4

// Beside is a step whose Apply changes only the entry at Place (a
// directory or a small file, made with its missing parents) and needs of
// the steps before it at most that entry's parent. The engine applies it
// beside the steps in flight when its parent directory was there at the
// check or is made by a step before it, and no step in flight is on its
// path, above it or below it. Over a slow link a first run's directories
// and files then wait on their round trips together, not one after the
// other. Place "" (a large file, whose bytes hold the link anyway) makes
// it a step like the others.
type Beside interface {
	Place() string
}

// besidePlace is where s goes beside others, or "" when it goes alone:
// not Beside, or its parent neither surveyed as a directory nor made by
// an earlier step (two steps making a missing parent at once would race
// for its mode).
func besidePlace(ctx context.Context, view host.Host, s Step, made map[string]bool) string {
	b, ok := s.(Beside)
	if !ok || b.Place() == "" || !path.IsAbs(b.Place()) {
		return ""
	}
	p := path.Clean(b.Place())
	if p == "/" {
		return ""
	}
	if made[path.Dir(p)] {
		return p
	}
	if fi, err := view.Lstat(ctx, path.Dir(p)); err == nil && fi.IsDir() {
		return p
	}
	return ""
}

// flight is a step applied beside others, until done is closed; it
// starts once the flights after are done.
type flight struct {
	place string
	after []*flight
	done  chan struct{}
}

// applying is one apply's shared state: steps in flight report through
// it one at a time.
type applying struct {
	h     host.Host
	steps []Step
	r     *Report
	p     Printer
	prog  *progress.Line
	slots chan struct{}
	wg    sync.WaitGroup

	mu   sync.Mutex
	errs []error // by step index
}

func (a *applying) failed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.ContainsFunc(a.errs, func(err error) bool { return err != nil })
}

// one applies step i. A step applied alone is announced before it runs;
// one beside others when it ends, so that printed lines do not mix.
func (a *applying) one(ctx context.Context, i int, alone bool) {
	s := a.steps[i]
	a.prog.Tick("%s: applying %s", a.h.Name(), s.ID())
	if alone {
		a.p.Applying(s.ID())
	}
	start := time.Now()
	err := s.Apply(ctx, a.h)
	a.mu.Lock()
	defer a.mu.Unlock()
	rep := &a.r.Steps[i]
	rep.Duration = time.Since(start)
	if err != nil {
		rep.Error = err.Error()
		a.r.Failed++
		a.errs[i] = err
	} else {
		rep.Applied = true
	}
	if !alone {
		a.p.Applying(s.ID())
	}
	a.p.Applied(*rep)
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
