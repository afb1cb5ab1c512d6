package jobs

import (
	"context"
	"fmt"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Check runs borg check on every repo: --repository-only (weekly: segments
// and index) or, with verifyData, --verify-data (monthly: every chunk
// decrypted and hashed, which catches bit rot a structural check cannot).
func Check(ctx context.Context, e *Env, verifyData bool) error {
	job, flag := layout.JobCheck, "--repository-only"
	if verifyData {
		job, flag = layout.JobVerify, "--verify-data"
	}
	run, ctx, stop, err := e.Begin(ctx, job)
	if err != nil {
		return err
	}
	defer stop()
	report := alert.IntegrityReport{Check: "borg check " + flag, Started: e.Now(), LogPath: e.LogPath}
	var stats state.CheckStats
	failed := 0
	lock, err := state.LockContext(ctx, e.LockPath, e.LockWait)
	if err != nil {
		return run.Finish(state.Failed, 1, "cannot take the borg lock: "+err.Error(), nil, nil)
	}
	defer lock.Unlock()
	for i := range e.Host.Repos {
		r := &e.Host.Repos[i]
		t0 := e.Now()
		res, err := e.borg(ctx, r, "check", flag, r.Path)
		rr := alert.RepoResult{Repo: r.Name, Path: r.Path, Status: alert.StatusOK, Duration: e.Now().Sub(t0)}
		rc := state.RepoCheck{Name: r.Name, Status: "ok", Duration: rr.Duration}
		if err != nil {
			failed++
			rr.Status, rr.ExitCode, rr.Output = alert.StatusFailed, exitCode(res, err), tailText(append(res.Stderr, res.Stdout...), 12)
			rc.Status = "failed"
		}
		report.Repos = append(report.Repos, rr)
		stats.Repos = append(stats.Repos, rc)
	}
	if failed == 0 {
		return run.Finish(state.OK, 0, fmt.Sprintf("%d repos intact", len(stats.Repos)), stats, nil)
	}
	e.Mail(ctx, alert.IntegrityFailed(report))
	if err := run.Finish(state.Failed, 1, fmt.Sprintf("%d of %d repos failed %s", failed, len(stats.Repos), flag), stats, nil); err != nil {
		return err
	}
	return fmt.Errorf("%s: %d repos failed", job, failed)
}
