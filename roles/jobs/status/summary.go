package status

import (
	"context"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Live builds the dashboard from the recorded state and the mounts' fill
// as they are now: no borg process, so it answers in milliseconds.
func Live(e *jobs.Env) (*Dashboard, error) {
	recs, err := e.Store.LoadAll()
	if err != nil && recs == nil {
		return nil, err
	}
	var disks []state.DiskUsage
	for _, mp := range StorageMounts(e.Host) {
		u, err := e.Usage(mp)
		if err != nil {
			continue
		}
		u.Mounted = e.MountedAt(mp)
		disks = append(disks, u)
	}
	return BuildWithBundle(e.Cfg, e.Host, recs, disks, e.Now(), WatchdogReports(e), e.Bundle(context.Background())), nil
}

// WatchdogReports are the last watchdog reports of the offsite hosts e's
// host watches (revoked ones left out), nil for one that never reported.
func WatchdogReports(e *jobs.Env) map[string]*state.WatchdogReport {
	out := map[string]*state.WatchdogReport{}
	for _, o := range e.WatchedOffsites() {
		r, _ := e.Store.LoadWatchdogReport(o.Name)
		out[o.Name] = r
	}
	return out
}

// Summary is the weekly mail: the dashboard as text and HTML. Unlike the
// other jobs it always mails, so a quiet week is confirmed, not assumed.
func Summary(ctx context.Context, e *jobs.Env) error {
	run, ctx, stop, err := e.Begin(ctx, layout.JobSummary)
	if err != nil {
		return err
	}
	defer stop()
	d, err := Live(e)
	if err != nil {
		return run.Finish(state.Failed, 1, err.Error(), nil, nil)
	}
	msg := SummaryMail(d)
	e.Mail(ctx, msg)
	return run.Finish(state.OK, 0, msg.Subject, nil, nil)
}
