package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
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
	var stats any // nil without Proxmox: no stats at all in the record
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
	return run.Finish(status, 0, msg, stats, nil)
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
