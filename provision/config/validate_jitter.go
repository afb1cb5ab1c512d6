package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// jitter checks a host's jitter: block: known jobs of its role, durations,
// a timer host, and a delay short enough that a run never slips past the
// next one.
func (v *validator) jitter(p string, h *Host) {
	if len(h.Jitter) == 0 {
		return
	}
	if h.SchedulerKind() != SchedulerSystemd {
		v.add(p+".jitter", ErrBadValue, "jitter needs scheduler: systemd: cron has no random delay, and a sleep in the job would hold its record and the borg lock while it waits")
		return
	}
	jobs := RoleJobs(h.Role)
	for _, job := range slices.Sorted(maps.Keys(h.Jitter)) {
		jp := p + ".jitter." + job
		if !slices.Contains(jobs, job) {
			msg := fmt.Sprintf("%q is not a scheduled job of a %s host (its jobs: %s)", job, h.Role, strings.Join(jobs, ", "))
			if best := Closest(job, jobs); best != "" {
				msg += fmt.Sprintf("; did you mean %q?", best)
			}
			v.add(jp, ErrRoleMismatch, "%s", msg)
			continue
		}
		d, err := time.ParseDuration(strings.TrimSpace(h.Jitter[job]))
		if err != nil || d < 0 {
			v.add(jp, ErrBadDuration, "jitter %q is not a duration such as 10m or 0", h.Jitter[job])
			continue
		}
		if d%time.Second != 0 {
			v.add(jp, ErrBadDuration, "jitter %s: whole seconds only (RandomizedDelaySec counts seconds)", d)
			continue
		}
		spec, on := h.Schedule(job)
		if !on || d == 0 {
			continue
		}
		sc, err := ParseSchedule(spec)
		if err != nil {
			continue // the schedule's own problem is reported there
		}
		if gap := sc.shortestGap(); d > gap/2 {
			v.add(jp, ErrBadValue, "jitter %s is more than half the %s between two runs of %s (%s): a delayed run would crowd the next one", d, gap, job, spec)
		}
	}
}

// shortestGap is the least time between two consecutive runs over the
// next year (at most 2000 runs): what a random delay must stay well under.
func (s Schedule) shortestGap() time.Duration {
	t := s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	gap := time.Duration(1<<63 - 1)
	end := t.AddDate(1, 0, 0)
	for i := 0; i < 2000 && t.Before(end); i++ {
		n := s.Next(t)
		if n.IsZero() {
			break
		}
		gap = min(gap, n.Sub(t))
		t = n
	}
	return gap
}
