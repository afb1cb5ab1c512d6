package status

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// overdueGrace is how late a scheduled job may start before it counts as
// missed: cron starts jobs on the minute and Begin records at once, so an
// hour only absorbs a slow boot or a clock step.
const overdueGrace = time.Hour

// scheduledJobs are the jobs whose only sign of a dead cron line is a
// record that stops changing; nightly and sync have their own thresholds.
var scheduledJobs = []string{layout.JobStale, layout.JobCheck, layout.JobVerify, layout.JobAudit, layout.JobRestoreTest, layout.JobWatchdog}

// jobTitles name jobs in issue texts.
var jobTitles = map[string]string{
	layout.JobNightly:     "Nightly backup",
	layout.JobSync:        "Mirror sync",
	layout.JobStale:       "Staleness check",
	layout.JobCheck:       "Integrity check",
	layout.JobVerify:      "Deep verify",
	layout.JobAudit:       "Copy audit",
	layout.JobRestoreTest: "Restore test",
	layout.JobSummary:     "Weekly summary",
	layout.JobWatchdog:    "Watchdog",
	layout.JobSnapshot:    "Offsite snapshot",
	layout.JobScrub:       "ZFS scrub",
	layout.JobSmartShort:  "SMART short test",
	layout.JobSmartLong:   "SMART long test",
	layout.JobPull:        "Dataset pull",
	layout.JobDrill:       "Recovery drill",
}

func jobTitle(job string) string {
	if t, ok := jobTitles[job]; ok {
		return t
	}
	return job
}

// dead reports a record left running by a process that is gone: the run
// was killed before it could finish its record.
func dead(r *state.Record) bool { return r.Status == state.Running && !state.ProcessAlive(r) }

// lastSuccess is when job last did its work: carried in the record, or the
// record's own end for writers that predate LastSuccess.
func lastSuccess(r *state.Record) time.Time {
	if r == nil {
		return time.Time{}
	}
	if !r.LastSuccess.IsZero() {
		return r.LastSuccess
	}
	if r.Status.Succeeded() {
		return r.Finished
	}
	return time.Time{}
}

// ended is when r's run ended, or began when it has no end.
func ended(r *state.Record) time.Time {
	if !r.Finished.IsZero() {
		return r.Finished
	}
	return r.Started
}

// jobFailures reports every record that ended badly or was left running by
// a dead process, whatever the job: a failure is news even from a job the
// config no longer schedules.
func (b *builder) jobFailures() {
	for _, job := range orderedJobs(b.recs) {
		r := b.recs[job]
		title := jobTitle(job)
		when := b.at(ended(r)).Format(timeLayout)
		switch {
		case dead(r):
			b.reported[job] = true
			b.issue(LevelFailed, job, "%s left running by pid %d since %s: the process is gone (terminated abnormally)",
				title, r.PID, b.at(r.Started).Format(timeLayout))
		case r.Status == state.Aborted && r.Job == layout.JobSnapshot:
			// Deferred while a push held the mirror: the watchdog judges
			// whether the wait lasted too long (offsiteMonitoring).
		case r.Status == state.Failed, r.Status == state.Aborted, r.Status == state.Terminated:
			b.reported[job] = true
			what := fmt.Sprintf("%s %s (%s", title, strings.ToUpper(string(r.Status)), when)
			if r.ExitCode != 0 {
				what += fmt.Sprintf(", exit code %d", r.ExitCode)
			}
			if r.Signal != "" {
				what += ", " + r.Signal
			}
			what += ")"
			if why := b.failureDetail(r); why != "" {
				what += ": " + why
			}
			b.issue(LevelFailed, job, "%s", what)
		case r.Status == state.Warning && !b.judgedHere(r):
			b.reported[job] = true
			what := fmt.Sprintf("%s ended with a warning (%s)", title, when)
			if why := firstLine(r.Message); why != "" {
				what += ": " + why
			}
			b.issue(LevelWarning, job, "%s", what)
		}
	}
}

// judgedHere reports a warning the dashboard already raises on its own
// evidence: the stale check and the summary warn about other jobs' records
// and the watchdog about heartbeats and its disk, all of which Build judges
// itself. Counting them twice would inflate the summary's count of issues.
func (b *builder) judgedHere(r *state.Record) bool {
	switch r.Job {
	case layout.JobStale, layout.JobSummary, layout.JobWatchdog:
		return true
	}
	return false
}

// orderedJobs lists the jobs of recs as a listing should show them: the
// server's schedule order, then the drill, then the rest by name.
func orderedJobs(recs map[string]*state.Record) []string {
	order := append(config.RoleJobs(config.RoleServer), layout.JobWatchdog, layout.JobDrill)
	var out []string
	for _, j := range order {
		if recs[j] != nil && !slices.Contains(out, j) {
			out = append(out, j)
		}
	}
	for _, j := range state.Jobs(recs) {
		if !slices.Contains(out, j) {
			out = append(out, j)
		}
	}
	return out
}

// failureDetail names what failed inside a run (repos, mirrors, files), or
// falls back to the first line of the record's message.
//
// A repo that failed because of its guests is named with those guests
// ("guests (VM claudecode)"): the repo alone would blame the guests that
// were backed up.
func (b *builder) failureDetail(r *state.Record) string {
	var names []string
	switch r.Job {
	case layout.JobNightly:
		var st state.NightlyStats
		if json.Unmarshal(r.Stats, &st) == nil {
			for _, rs := range st.Repos {
				if rs.Status == "failed" {
					names = append(names, rs.Name+failedGuests(rs.Guests))
				}
			}
		}
	case layout.JobSync:
		var st state.SyncStats
		if json.Unmarshal(r.Stats, &st) == nil {
			for _, m := range st.Mirrors {
				if m.Status != "ok" {
					names = append(names, m.Name+" "+m.Status)
				}
			}
		}
	case layout.JobCheck, layout.JobVerify:
		var st state.CheckStats
		if json.Unmarshal(r.Stats, &st) == nil {
			for _, rc := range st.Repos {
				if rc.Status == "failed" {
					names = append(names, rc.Name)
				}
			}
		}
	case layout.JobAudit:
		var st state.AuditStats
		if json.Unmarshal(r.Stats, &st) == nil {
			for _, c := range st.Copies {
				switch c.Status {
				case "mismatch":
					names = append(names, fmt.Sprintf("%s differs from the repos in %s", c.Name, strings.Join(c.Mismatches, ", ")))
				case "failed":
					names = append(names, fmt.Sprintf("%s could not be audited (%s)", c.Name, c.Error))
				}
			}
		}
	case layout.JobRestoreTest:
		var st state.RestoreStats
		if json.Unmarshal(r.Stats, &st) == nil {
			for _, f := range st.Files {
				if f.Status != "match" {
					name := fmt.Sprintf("%s:%s %s", f.Repo, f.Path, f.Status)
					if f.Guest != "" {
						name += " (" + f.Guest + ")"
					}
					names = append(names, name)
				}
			}
		}
	}
	if len(names) > 0 {
		return strings.Join(names, ", ")
	}
	return firstLine(r.Message)
}

// staleness applies the stale check's rules: the nightly and the sync must
// have succeeded within the host's thresholds.
func (b *builder) staleness() {
	for _, j := range []struct {
		job    string
		maxAge time.Duration
	}{
		{layout.JobNightly, b.self.Thresholds.NightlyMaxAgeOrDefault()},
		{layout.JobSync, b.self.Thresholds.SyncMaxAgeOrDefault()},
	} {
		if _, ok := b.self.Schedule(j.job); !ok {
			continue
		}
		last := lastSuccess(b.rec(j.job))
		switch {
		case last.IsZero():
			b.issue(LevelFailed, j.job, "%s has never succeeded (threshold: %s)", jobTitle(j.job), alert.Limit(j.maxAge))
		case b.now.Sub(last) > j.maxAge:
			b.issue(LevelFailed, j.job, "%s is stale: last success %s ago (threshold: %s)",
				jobTitle(j.job), ago(b.age(last)), alert.Limit(j.maxAge))
		}
	}
	if _, ok := b.self.Schedule(layout.JobCheck); ok && b.rec(layout.JobCheck) == nil {
		b.reported[layout.JobCheck] = true
		b.issue(LevelWarning, layout.JobCheck, "Integrity check has never run")
	}
}

// overdue catches a job whose cron line stopped firing: its record stays
// as it was while its next start passes.
func (b *builder) overdue() {
	for _, job := range scheduledJobs {
		r := b.rec(job)
		spec, ok := b.self.Schedule(job)
		if !ok || r == nil || b.reported[job] || r.Status == state.Running {
			continue
		}
		sched, err := config.ParseSchedule(spec)
		if err != nil {
			continue // Validate refuses bad schedules; nothing to judge by
		}
		next := sched.Next(b.at(r.Started))
		if !next.IsZero() && b.now.Sub(next) > overdueGrace {
			b.issue(LevelWarning, job, "%s missed its schedule: last run %s, due %s",
				jobTitle(job), b.at(r.Started).Format(timeLayout), next.Format(timeLayout))
		}
	}
}

// failedGuests is " (VM a, Container b)" for the guests that failed, "" when
// none did.
func failedGuests(gs []state.GuestStats) string {
	var names []string
	for _, g := range gs {
		if g.Status == "failed" {
			what := "VM"
			if g.Kind == config.GuestContainer {
				what = "Container"
			}
			names = append(names, what+" "+g.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}
