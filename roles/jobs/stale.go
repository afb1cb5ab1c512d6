package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/recovery/fingerprint"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

func decodeStats(rec *state.Record, v any) error {
	if len(rec.Stats) == 0 {
		return fmt.Errorf("%s: no stats", rec.Job)
	}
	return json.Unmarshal(rec.Stats, v)
}

// Stale catches what no job can report itself: a job that stopped running
// (cron dead, timer disabled) or a run that died without finishing.
func Stale(ctx context.Context, e *Env) error {
	run, ctx, stop, err := e.Begin(ctx, layout.JobStale)
	if err != nil {
		return err
	}
	defer stop()
	abandoned, err := e.Store.Abandoned()
	if err != nil {
		e.logf("reading state: %v", err)
	}
	for _, a := range abandoned {
		if a.Job == layout.JobStale {
			continue
		}
		if rec, err := e.Store.Reap(a.Job); err == nil && rec != nil {
			e.Mail(ctx, alert.TerminatedAbnormally(rec.Job, rec.PID, rec.Started, "its process is gone without finishing (SIGKILL, OOM, power loss)"))
		}
	}
	now := e.Now()
	th := e.Host.Thresholds
	checks := []alert.AgeCheck{e.age(layout.JobNightly, "Nightly backup", th.NightlyMaxAgeOrDefault(), now)}
	if len(e.Host.Mirrors) > 0 {
		checks = append(checks, e.age(layout.JobSync, "Offsite sync", th.SyncMaxAgeOrDefault(), now))
	}
	checks = append(checks, e.offsiteWatchdogs(now)...)
	var stats *state.StaleStats // nil without Proxmox or a bundle: no stats at all in the record
	if p := e.Host.Proxmox; p != nil {
		pc, ps := e.proxmoxChecks(ctx, p, now)
		checks = append(checks, pc...)
		stats = &state.StaleStats{Proxmox: ps}
	}
	stale := 0
	for _, c := range checks {
		if c.Stale() {
			stale++
		}
	}
	status, msg := state.OK, "all fresh"
	if stale > 0 {
		status, msg = state.Warning, fmt.Sprintf("%d stale", stale)
		e.Mail(ctx, alert.Staleness(checks))
	}
	if b := e.Bundle(ctx); b != nil {
		if stats == nil {
			stats = &state.StaleStats{}
		}
		stats.Bundle = b
		if b.Stale() {
			status, msg = state.Warning, strings.TrimPrefix(msg+"; ", "all fresh; ")+fingerprint.OutOfDate
			e.Mail(ctx, alert.BundleOutOfDate(b.Written, b.Changes, b.Err))
		}
	}
	if stats == nil {
		return run.Finish(status, 0, msg, nil, nil)
	}
	return run.Finish(status, 0, msg, stats, nil)
}

// Bundle compares the last recovery bundle's fingerprint record, kept in
// the state directory, with this host's secrets as they are now; nil when
// no bundle was written from them.
func (e *Env) Bundle(ctx context.Context) *fingerprint.Status {
	return fingerprint.Check(ctx, e.Store.File(fingerprint.Name), e.Exec.ReadFile)
}

// age measures from the job's last success, not its last run, which may
// have failed.
func (e *Env) age(job, name string, threshold time.Duration, now time.Time) alert.AgeCheck {
	c := alert.AgeCheck{Name: name, Threshold: threshold, Log: layout.JobLog(layout.LogDir, job)}
	rec, err := e.Store.Load(job)
	if err != nil || rec.LastSuccess.IsZero() {
		c.Never = true
		return c
	}
	c.Age = now.Sub(rec.LastSuccess)
	return c
}

// offsiteWatchdogs are the server's watch on its offsite hosts: each one's
// watchdog reports every hour (see ReceiveWatchdogReport), so a report
// older than watchdog_max_age is a dead Pi, or one cut off from here, and
// one that says its mail failed is a Pi that can no longer alert. A
// revoked host is not watched.
func (e *Env) offsiteWatchdogs(now time.Time) []alert.AgeCheck {
	var out []alert.AgeCheck
	limit := e.Host.Thresholds.WatchdogMaxAgeOrDefault()
	for _, o := range e.WatchedOffsites() {
		c := alert.AgeCheck{Name: "Offsite watchdog of " + o.Name, Noun: "report of " + o.Name + "'s watchdog", Threshold: limit,
			Hint: fmt.Sprintf("%s's watchdog reports here every hour: %s is down, its network or this one is, or its report key no longer works (journalctl on %s, %s there).",
				o.Name, o.Name, o.Name, layout.JobLog(layout.LogDir, layout.JobWatchdog))}
		r, err := e.Store.LoadWatchdogReport(o.Name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			c.Never = true
		case err != nil:
			c.Err = err.Error()
		default:
			c.Age = now.Sub(r.Received)
			if r.MailError != "" && c.Age <= limit {
				c.Problem = fmt.Sprintf("its watchdog cannot mail (%s): it can no longer alert by itself; fix its mail path (alerts: of %s)", r.MailError, o.Name)
			}
		}
		out = append(out, c)
	}
	return out
}
