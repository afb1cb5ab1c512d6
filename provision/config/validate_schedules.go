package config

import (
	"fmt"
	"slices"
	"strings"
)

// Schedules, retention and compaction: when the jobs run and what they keep.

func (v *validator) schedules(p string, h *Host) {
	jobs := RoleJobs(h.Role)
	for _, job := range allJobs {
		val := strings.TrimSpace(*h.Schedules.field(job))
		if val == "" {
			continue
		}
		sp := p + ".schedules." + job
		if validRole(h.Role) && !slices.Contains(jobs, job) {
			v.add(sp, ErrRoleMismatch, "a %s host does not run %s (its jobs: %s)", h.Role, job, strings.Join(jobs, ", "))
			continue
		}
		if val == "off" {
			continue
		}
		sc, err := ParseSchedule(val)
		if err != nil {
			v.add(sp, ErrBadSchedule, "%s", strings.TrimPrefix(err.Error(), ErrBadSchedule.Error()+" "))
			continue
		}
		if h.SchedulerKind() == SchedulerSystemd {
			if _, err := sc.OnCalendar(); err != nil {
				v.add(sp, ErrBadSchedule, "%s", strings.TrimPrefix(err.Error(), ErrBadSchedule.Error()+" "))
			}
		}
	}
}

func (v *validator) retentionBlock(p string, r Retention) {
	for _, f := range []struct {
		key string
		n   int
	}{{"daily", r.Daily}, {"weekly", r.Weekly}, {"monthly", r.Monthly}, {"yearly", r.Yearly}} {
		if f.n < 0 {
			v.add(p+"."+f.key, ErrBadValue, "%s %d must be 0 or more", f.key, f.n)
		}
	}
}

func (v *validator) compaction(p string, c *Compaction) {
	if c == nil {
		return
	}
	if len(c.Weekdays) == 0 && v.present(p+".weekdays") {
		v.add(p+".weekdays", ErrBadValue, "weekdays is empty: name at least one day (borg compact never running would let the repos grow without end)")
	}
	seen := map[string]string{}
	for i, d := range c.Weekdays {
		dp := fmt.Sprintf("%s.weekdays[%d]", p, i)
		if !slices.Contains(Weekdays[:], d) {
			v.add(dp, ErrBadValue, "weekday %q: use mon, tue, wed, thu, fri, sat or sun", d)
			continue
		}
		v.unique(seen, dp, "weekday", d)
	}
	if c.Threshold < 0 || c.Threshold > 99 || c.Threshold == 0 && v.present(p+".threshold") {
		v.add(p+".threshold", ErrBadValue, "threshold %d is out of range 1..99 (percent of a segment that must be free before borg compact rewrites it)", c.Threshold)
	}
}
