package status

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/recovery/fingerprint"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// DrillMaxAge is how old the last drill may get: a yearly rehearsal with a
// month's slack, since a recovery path nobody has walked is a guess.
const DrillMaxAge = 13 // months

// statusWord is the word SELF-MONITORING shows for a record: the seed says
// SUCCESS for the nightly, OK for checks, PASS for the restore test.
func statusWord(r *state.Record, okWord, failWord string) (string, Level) {
	switch {
	case r == nil:
		return "Never", LevelUnknown
	case dead(r):
		return "TERMINATED", LevelFailed
	case r.Status == state.Running:
		return "RUNNING", LevelRunning
	case r.Status == state.OK:
		return okWord, LevelOK
	case r.Status == state.Warning:
		return "WARNING", LevelWarning
	case r.Status == state.Failed:
		return failWord, LevelFailed
	}
	return strings.ToUpper(string(r.Status)), LevelFailed
}

func (b *builder) jobCheck(name, job, okWord, failWord string) Check {
	r := b.rec(job)
	c := Check{Name: name, Job: job}
	c.Status, c.Level = statusWord(r, okWord, failWord)
	if r == nil {
		return c
	}
	t := ended(r)
	c.At, c.AgeSeconds = b.at(t), b.age(t)
	if r.Status == state.Running {
		c.Note = "since " + c.At.Format(timeLayout)
	} else {
		c.Note = c.At.Format(timeLayout)
	}
	return c
}

func (b *builder) monitoring() {
	// A host without a nightly of its own (a borg server) has no line
	// "Last nightly: Never" to worry its reader.
	if _, ok := b.self.Schedule(layout.JobNightly); ok || b.rec(layout.JobNightly) != nil {
		b.d.Monitoring = append(b.d.Monitoring, b.jobCheck("Last nightly", layout.JobNightly, "SUCCESS", "FAILED"))
	}
	if _, ok := b.self.Schedule(layout.JobCheck); ok || b.rec(layout.JobCheck) != nil {
		b.d.Monitoring = append(b.d.Monitoring, b.jobCheck("Last integrity check", layout.JobCheck, "OK", "FAILED"))
	}
	if _, ok := b.self.Schedule(layout.JobVerify); ok || b.rec(layout.JobVerify) != nil {
		b.d.Monitoring = append(b.d.Monitoring, b.jobCheck("Last deep verify", layout.JobVerify, "OK", "FAILED"))
	}
	if _, ok := b.self.Schedule(layout.JobRestoreTest); ok || b.rec(layout.JobRestoreTest) != nil {
		b.d.Monitoring = append(b.d.Monitoring, b.jobCheck("Last restore test", layout.JobRestoreTest, "PASS", "FAIL"))
	}
	if hb, ok := b.offsiteHeartbeat(); ok {
		b.d.Monitoring = append(b.d.Monitoring, hb)
	}
	b.offsiteWatchdogs()
	b.d.Monitoring = append(b.d.Monitoring, b.drillCheck())
}

// offsiteWatchdogs are the server's watch on its offsite hosts: the last
// report of each one's watchdog, judged by this server's watchdog_max_age,
// as the stale check judges it.
func (b *builder) offsiteWatchdogs() {
	limit := b.self.Thresholds.WatchdogMaxAgeOrDefault()
	names := make([]string, 0, len(b.reports))
	for n := range b.reports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		r := b.reports[name]
		c := Check{Name: "Offsite watchdog of " + name, Job: layout.JobWatchdog, Status: "Never", Level: LevelFailed}
		if r == nil {
			b.issue(LevelFailed, layout.JobWatchdog, "%s's watchdog has never reported here (its report key, or %s not provisioned yet)", name, name)
			b.d.Monitoring = append(b.d.Monitoring, c)
			continue
		}
		c.At, c.AgeSeconds = b.at(r.Received), b.age(r.Received)
		c.Note = fmt.Sprintf("%s ago: %s", ago(c.AgeSeconds), r.Status)
		if r.LatestSnapshot != "" {
			c.Note += fmt.Sprintf(", %d snapshots", r.Snapshots)
		}
		if r.DiskMounted {
			c.Note += fmt.Sprintf(", disk %d%%", r.DiskPercent)
		} else {
			c.Note += ", disk not mounted"
		}
		switch {
		case b.now.Sub(r.Received) > limit:
			c.Status = "SILENT"
			b.issue(LevelFailed, layout.JobWatchdog, "%s's watchdog has not reported for %s (threshold: %s): %s is down or cut off",
				name, ago(c.AgeSeconds), alert.Limit(limit), name)
		case r.MailError != "":
			c.Status = "CANNOT MAIL"
			b.issue(LevelFailed, layout.JobWatchdog, "%s's watchdog cannot mail: %s", name, r.MailError)
		default:
			c.Status, c.Level = "Fresh", LevelOK
			if r.Status != state.OK {
				c.Level = LevelWarning
			}
			if r.SnapshotOverdue {
				c.Level = LevelWarning
				b.issue(LevelWarning, layout.JobWatchdog, "%s: a push waits too long for the snapshot that keeps it", name)
			}
		}
		b.d.Monitoring = append(b.d.Monitoring, c)
	}
}

// bundleFreshness shows the last recovery bundle against the secrets it
// packed from this host: a stick whose key no longer opens the repo is
// found on the dashboard, not on the day the house burns down.
func (b *builder) bundleFreshness() {
	st := b.bundle
	if st == nil {
		return
	}
	c := Check{Name: "Recovery bundle", Status: "UP TO DATE", Level: LevelOK}
	if !st.Written.IsZero() {
		c.At, c.AgeSeconds = b.at(st.Written), b.age(st.Written)
		c.Note = "written " + c.At.Format(timeLayout)
	}
	switch {
	case st.Err != "":
		c.Status, c.Level = "UNKNOWN", LevelWarning
		b.issue(LevelWarning, "", "%s? its fingerprint record cannot be read: %s", fingerprint.OutOfDate, st.Err)
	case len(st.Changes) > 0:
		c.Status, c.Level = fingerprint.OutOfDate, LevelWarning
		b.issue(LevelWarning, "", "%s: %s since it was written on %s: write a new one (borgkit recovery-bundle) and destroy the old stick",
			fingerprint.OutOfDate, strings.Join(st.Changes, "; "), c.At.Format("2006-01-02"))
	}
	b.d.Monitoring = append(b.d.Monitoring, c)
}

func (b *builder) drillCheck() Check {
	r := b.rec(layout.JobDrill)
	c := b.jobCheck("Last drill", layout.JobDrill, "OK", "FAILED")
	if r == nil {
		return c
	}
	var st state.DrillStats
	b.decodeStats(r, &st)
	if !st.Finished.IsZero() && r.Status != state.Running {
		c.At, c.AgeSeconds = b.at(st.Finished), b.age(st.Finished)
		c.Note = c.At.Format(timeLayout)
	}
	var figs []string
	if st.RepoCount > 0 {
		figs = append(figs, fmt.Sprintf("%d repos", st.RepoCount))
	}
	if st.RTO > 0 {
		figs = append(figs, "RTO "+duration(st.RTO))
	}
	if st.RPO > 0 {
		figs = append(figs, "RPO "+ago(int64(st.RPO/time.Second)))
	}
	if len(figs) > 0 && r.Status != state.Running {
		c.Note += ", " + strings.Join(figs, ", ")
	}
	if c.Level == LevelOK && b.drillTooOld(c.At) {
		c.Level = LevelWarning
	}
	return c
}

func (b *builder) drillTooOld(t time.Time) bool {
	return t.Before(b.now.AddDate(0, -DrillMaxAge, 0))
}

// drill warns when the recovery path has not been rehearsed within
// DrillMaxAge months: the bundle may no longer match the disks.
func (b *builder) drill() {
	c := b.drillCheck()
	switch r := b.rec(layout.JobDrill); {
	case r == nil:
		b.issue(LevelWarning, layout.JobDrill, "No recovery drill recorded: rehearse a restore from the recovery bundle")
	case b.reported[layout.JobDrill] || r.Status == state.Running:
	case b.drillTooOld(c.At):
		b.issue(LevelWarning, layout.JobDrill, "Last recovery drill was %s, over %d months ago", c.At.Format("2006-01-02"), DrillMaxAge)
	}
}
