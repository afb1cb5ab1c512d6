package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// TextPrinter writes the plan and progress for a person.
type TextPrinter struct {
	W io.Writer
	// Header is printed before the plan ("Plan for john-ai over ssh").
	Header string
}

func (t *TextPrinter) Planned(r *Report) {
	if t.Header != "" {
		fmt.Fprintln(t.W, t.Header)
	}
	width := 0
	for _, s := range r.Steps {
		width = max(width, len(s.ID))
	}
	for _, s := range r.Steps {
		sym, text := s.Check.Action.Symbol(), s.Check.Summary
		switch {
		case s.Error != "":
			sym, text = "E", "check failed: "+s.Error
		case s.Check.Action == Conflict:
			text = s.Check.Reason
		case s.Check.Action == Skip:
			text = "skipped: " + s.Check.Reason
		}
		fmt.Fprintf(t.W, "  %s %-*s  %s\n", sym, width, s.ID, text)
		for _, w := range s.Check.Warnings {
			fmt.Fprintf(t.W, "      warning: %s\n", w)
		}
		if s.Check.Diff != "" {
			for _, l := range strings.SplitAfter(strings.TrimRight(s.Check.Diff, "\n"), "\n") {
				fmt.Fprintf(t.W, "      %s", strings.TrimRight(l, "\n")+"\n")
			}
		}
	}
	fmt.Fprintf(t.W, "Plan: %d to create, %d to change, %d unchanged, %d conflicting, %d skipped",
		r.Create, r.Modify, r.Unchanged, r.Conflict, r.Skip)
	if r.Failed > 0 {
		fmt.Fprintf(t.W, ", %d failed to check", r.Failed)
	}
	if r.Warnings > 0 {
		fmt.Fprintf(t.W, "; %d warning(s), listed at the end", r.Warnings)
	}
	fmt.Fprintln(t.W, ".")
}

func (t *TextPrinter) Applying(id string) { fmt.Fprintf(t.W, "applying %s ... ", id) }

func (t *TextPrinter) Applied(s StepReport) {
	if s.Error != "" {
		fmt.Fprintf(t.W, "FAILED (%s)\n  %s\n", s.Duration.Round(time.Millisecond), s.Error)
		return
	}
	fmt.Fprintf(t.W, "done (%s)\n", s.Duration.Round(time.Millisecond))
}

func (t *TextPrinter) Done(r *Report, err error) {
	defer t.warnings(r)
	switch {
	case err != nil:
		fmt.Fprintf(t.W, "%s: %v\n", r.Host, err)
	case r.DryRun && r.Pending() > 0:
		fmt.Fprintf(t.W, "%s: %d changes pending (dry run: nothing applied).\n", r.Host, r.Pending())
	case r.Pending() == 0:
		fmt.Fprintf(t.W, "%s: no changes.\n", r.Host)
	default:
		fmt.Fprintf(t.W, "%s: applied %d changes; every step re-checked and satisfied.\n", r.Host, r.Pending())
	}
}

// warnings ends the output with what the user still has to do, where the
// last lines are read: a placeholder password left in place fails every
// alert silently.
func (t *TextPrinter) warnings(r *Report) {
	for _, s := range r.WarningSteps() {
		for _, w := range s.Check.Warnings {
			fmt.Fprintf(t.W, "! WARNING %s: %s\n", s.ID, w)
		}
	}
}

// JSONPrinter writes the whole report as one JSON document at the end, so a
// script reads a single value whatever happened.
type JSONPrinter struct{ W io.Writer }

func (JSONPrinter) Planned(*Report)    {}
func (JSONPrinter) Applying(string)    {}
func (JSONPrinter) Applied(StepReport) {}

func (j JSONPrinter) Done(r *Report, err error) {
	out := struct {
		*Report
		Pending int    `json:"pending"`
		Error   string `json:"error,omitempty"`
	}{Report: r, Pending: r.Pending()}
	if err != nil {
		out.Error = err.Error()
	}
	enc := json.NewEncoder(j.W)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
