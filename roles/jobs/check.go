package jobs

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Check runs borg check on the repos: with verifyData false, every repo
// --repository-only (weekly: segments and index); with verifyData, the
// rolling verify: borg check --verify-data (every chunk decrypted and
// hashed, which catches bit rot a structural check cannot) on the repos
// that are due, so each is read whole within audit.verify_days and a
// night reads one repo, not all.
//
// borg 1.2 cannot verify part of a repo's data: --verify-data reads every
// chunk in the repository whatever archives --last or --glob-archives
// select (they narrow only the archive metadata check), so the share a
// night is one repo.
//
// With the backup disk absent the check does not run: that is "not run"
// (mailed as such), never a failed repo, and the last results stand.
func Check(ctx context.Context, e *Env, verifyData bool) error {
	job, flag := layout.JobCheck, "--repository-only"
	if verifyData {
		job, flag = layout.JobVerify, "--verify-data"
	}
	prev := e.lastChecks(job)
	run, ctx, stop, err := e.Begin(ctx, job)
	if err != nil {
		return err
	}
	defer stop()
	report := alert.IntegrityReport{Check: "borg check " + flag, Started: e.Now(), LogPath: e.LogPath}
	period := e.Host.Audit.VerifyDaysOrDefault()
	stats := state.CheckStats{}
	if verifyData {
		stats.PeriodDays = period
	}
	lock, err := state.LockContext(ctx, e.LockPath, e.LockWait)
	if err != nil {
		return run.Finish(state.Failed, 1, "cannot take the borg lock: "+err.Error(), nil, nil)
	}
	defer lock.Unlock()
	if err := e.backupDiskReady(ctx); err != nil {
		reason := err.Error()
		e.logf("not run: %s", reason)
		e.Mail(ctx, alert.IntegrityNotRun(report.Check, reason, e.Now(), e.LogPath))
		stats.Repos = carried(e.Host.Repos, prev)
		if err := run.Finish(state.Aborted, 1, "not run: "+reason, stats, nil); err != nil {
			return err
		}
		return fmt.Errorf("%s not run: %s", job, reason)
	}
	due := e.Host.Repos
	if verifyData {
		due = dueVerify(e.Host.Repos, prev, e.Now(), time.Duration(period)*24*time.Hour)
	}
	failed := 0
	results := map[string]state.RepoCheck{}
	for i := range due {
		r := &due[i]
		t0 := e.Now()
		res, err := e.borg(ctx, r, "check", flag, r.BorgLocation())
		rr := alert.RepoResult{Repo: r.Name, Path: r.Path, Status: alert.StatusOK, Duration: e.Now().Sub(t0)}
		rc := state.RepoCheck{Name: r.Name, Status: "ok", Duration: rr.Duration, At: e.Now(), Checked: true}
		if err != nil {
			failed++
			rr.Status, rr.ExitCode, rr.Output = alert.StatusFailed, exitCode(res, err), failureText(res, err)
			rc.Status = "failed"
		}
		report.Repos = append(report.Repos, rr)
		results[r.Name] = rc
	}
	for _, rc := range carried(e.Host.Repos, prev) {
		if now, ok := results[rc.Name]; ok {
			rc = now
		}
		stats.Repos = append(stats.Repos, rc)
	}
	var names []string
	for i := range due {
		names = append(names, due[i].Name)
	}
	if failed == 0 {
		msg := fmt.Sprintf("%d repos intact", len(due))
		if verifyData {
			msg = fmt.Sprintf("verified %s; every repo within %d days", orNone(names), period)
		}
		return run.Finish(state.OK, 0, msg, stats, nil)
	}
	e.Mail(ctx, alert.IntegrityFailed(report))
	if err := run.Finish(state.Failed, 1, fmt.Sprintf("%d of %d repos failed %s", failed, len(due), flag), stats, nil); err != nil {
		return err
	}
	return fmt.Errorf("%s: %d repos failed", job, failed)
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none (none due)"
	}
	return strings.Join(names, ", ")
}

// lastChecks are job's last per-repo results, by repo.
func (e *Env) lastChecks(job string) map[string]state.RepoCheck {
	out := map[string]state.RepoCheck{}
	rec, err := e.Store.Load(job)
	if err != nil {
		return out
	}
	var cs state.CheckStats
	if decodeStats(rec, &cs) != nil {
		return out
	}
	for _, rc := range cs.Repos {
		if rc.At.IsZero() && rc.Status != "never" {
			rc.At = rec.Finished // written before results carried their time
		}
		rc.Checked = false
		out[rc.Name] = rc
	}
	return out
}

// carried is each repo's last result, "never" for a repo never checked.
func carried(repos []config.Repo, prev map[string]state.RepoCheck) []state.RepoCheck {
	var out []state.RepoCheck
	for _, r := range repos {
		rc, ok := prev[r.Name]
		if !ok {
			rc = state.RepoCheck{Name: r.Name, Status: "never"}
		}
		out = append(out, rc)
	}
	return out
}

// dueVerify picks tonight's repos: every one whose last good verify would
// pass the period before the next night, else the one verified least
// recently when it is due (a failed or never verified repo always is).
// After a first round of a repo a night, each comes due on its own night.
func dueVerify(repos []config.Repo, prev map[string]state.RepoCheck, now time.Time, period time.Duration) []config.Repo {
	type cand struct {
		repo config.Repo
		last time.Time // zero: never verified, or failed
	}
	var cands []cand
	for _, r := range repos {
		rc := prev[r.Name]
		c := cand{repo: r}
		if rc.Status == "ok" {
			c.last = rc.At
		}
		cands = append(cands, c)
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].last.Before(cands[j].last) })
	var out []config.Repo
	for _, c := range cands {
		age := now.Sub(c.last)
		switch {
		case !c.last.IsZero() && age >= period-30*time.Hour:
			out = append(out, c.repo) // tomorrow would be too late
		case len(out) == 0 && (c.last.IsZero() || age >= period-48*time.Hour):
			out = append(out, c.repo)
		}
	}
	slices.SortStableFunc(out, func(a, b config.Repo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
