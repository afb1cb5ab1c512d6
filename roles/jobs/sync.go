package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Sync mirrors every repo to each mirror once the nightly run is done:
// offsite through the rrsync-restricted key, the NAS with --size-only. It
// refuses a source it cannot trust, because --delete would carry an empty
// or damaged source over the good copies.
func Sync(ctx context.Context, e *Env) error {
	run, ctx, stop, err := e.Begin(ctx, layout.JobSync)
	if err != nil {
		return err
	}
	defer stop()
	started := e.Now()
	var report alert.SyncReport
	report.Started, report.LogPath = started, e.LogPath
	finish := func(stats state.SyncStats) error {
		status, code, msg := state.OK, 0, "all mirrors up to date"
		if len(report.Failures) > 0 {
			status, code, msg = state.Failed, 1, fmt.Sprintf("%d transfers failed", len(report.Failures))
			e.Mail(ctx, alert.SyncFailed(report))
		}
		if err := run.Finish(status, code, msg, stats, nil); err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("sync: %s", msg)
		}
		return nil
	}

	// Wait for the nightly run (or a check) to let go of the repos.
	lock, err := state.LockContext(ctx, e.LockPath, e.LockWait)
	if err != nil {
		report.Failures = append(report.Failures, alert.SyncFailure{Repo: "(all)", Target: "(all)", ExitCode: 1, Output: err.Error()})
		return finish(state.SyncStats{})
	}
	defer lock.Unlock()

	if err := e.backupDiskReady(ctx); err != nil {
		report.Failures = append(report.Failures, alert.SyncFailure{Repo: "(all)", Target: "(all)", ExitCode: 1,
			Output: "refused: " + err.Error() + "; nothing was mirrored, every mirror was left as it was"})
		return finish(state.SyncStats{})
	}
	repos, refused := e.trustedRepos()
	var stats state.SyncStats
	for i := range e.Host.Mirrors {
		m := &e.Host.Mirrors[i]
		ms := e.mirror(ctx, m, repos, refused, &report)
		stats.Mirrors = append(stats.Mirrors, ms)
	}
	return finish(stats)
}

// trustedRepos are the repos whose directory holds a borg repo and whose
// last integrity check did not fail; the rest are refused with a reason.
func (e *Env) trustedRepos() ([]*config.Repo, map[string]string) {
	failedCheck := map[string]bool{}
	for _, job := range []string{layout.JobCheck, layout.JobVerify} {
		rec, err := e.Store.Load(job)
		if err != nil || rec.Status != state.Failed {
			continue
		}
		var cs state.CheckStats
		if decodeStats(rec, &cs) == nil {
			for _, r := range cs.Repos {
				if r.Status == "failed" {
					failedCheck[r.Name] = true
				}
			}
		}
	}
	var ok []*config.Repo
	refused := map[string]string{}
	for i := range e.Host.Repos {
		r := &e.Host.Repos[i]
		switch {
		case !borg.IsLocalRepo(r.Path):
			refused[r.Name] = r.Path + " holds no borg repository"
		case failedCheck[r.Name]:
			refused[r.Name] = "its last borg check failed; mirroring it would overwrite the good copies"
		default:
			ok = append(ok, r)
		}
	}
	return ok, refused
}

var sentRE = regexp.MustCompile(`Total bytes sent: ([\d,.]+)`)

func (e *Env) mirror(ctx context.Context, m *config.Mirror, repos []*config.Repo, refused map[string]string, report *alert.SyncReport) state.MirrorStats {
	ms := state.MirrorStats{Name: m.Name, Status: "ok"}
	fail := func(repo, target string, code int, out string) {
		report.Failures = append(report.Failures, alert.SyncFailure{Repo: repo, Target: target, ExitCode: code, Output: out})
		ms.Failed = append(ms.Failed, repo)
		ms.Status = "failed"
	}
	remote := m.Host != ""
	if remote {
		ms.Target = m.Host + ":" + m.Path
	} else {
		ms.Target = m.Path
		// Never write into the empty mountpoint of an unmounted share: the
		// local disk would fill, and the next mount would hide it all.
		if mp := e.mountOf(m.Path); mp != "" {
			if ok, _, err := e.Mounted(ctx, mp); err != nil || !ok {
				fail("(all)", m.Path, 1, fmt.Sprintf("refused: %s is not mounted", mp))
				ms.Status = "refused"
				return ms
			}
		}
	}
	for name, why := range refused {
		fail(name, ms.Target, 1, "refused: "+why)
	}
	for _, r := range repos {
		args := []string{"-a", "--delete", "--stats"}
		var dest string
		if remote {
			// rrsync on the target roots every path at its mount, so the
			// destination is relative.
			args = append(args, "--hard-links", "--numeric-ids", "-e", e.SSH)
			dest = m.Host + ":" + r.Name + "/"
		} else {
			dest = filepath.Join(m.Path, r.Name) + "/"
			if err := os.MkdirAll(m.Path, 0o700); err != nil {
				fail(r.Name, dest, 1, err.Error())
				continue
			}
		}
		if m.SizeOnly {
			args = append(args, "--size-only")
		}
		if m.MaxDelete > 0 {
			args = append(args, "--max-delete="+strconv.Itoa(m.MaxDelete))
		}
		args = append(args, strings.TrimSuffix(r.Path, "/")+"/", dest)
		res, err := e.run(ctx, host.Command(tools.Rsync, args...))
		if err != nil {
			fail(r.Name, dest, exitCode(res, err), tailText(append(res.Stderr, res.Stdout...), 12))
			continue
		}
		ms.Repos = append(ms.Repos, r.Name)
		if mm := sentRE.FindSubmatch(res.Stdout); mm != nil {
			n, _ := strconv.ParseUint(strings.NewReplacer(",", "", ".", "").Replace(string(mm[1])), 10, 64)
			ms.SentBytes += n
		}
	}
	if remote && ms.Status == "ok" {
		if err := e.heartbeat(ctx, m); err != nil {
			fail("(heartbeat)", m.Host+":"+layout.HeartbeatDir+"/", 1, err.Error())
		} else {
			ms.Heartbeat = e.Now()
		}
	}
	return ms
}

// heartbeat tells the offsite watchdog that the whole mirror arrived: it is
// written only after every repo went through.
func (e *Env) heartbeat(ctx context.Context, m *config.Mirror) error {
	dir, err := os.MkdirTemp("", "borgkit-heartbeat-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hb := filepath.Join(dir, layout.HeartbeatDir)
	if err := os.Mkdir(hb, 0o755); err != nil {
		return err
	}
	stamp := e.Now().UTC().Format("2006-01-02T15:04:05Z") + "\n"
	if err := os.WriteFile(filepath.Join(hb, layout.HeartbeatName(e.Host.Name)), []byte(stamp), 0o644); err != nil {
		return err
	}
	res, err := e.run(ctx, host.Command(tools.Rsync, "-rt", "-e", e.SSH, hb+"/", m.Host+":"+layout.HeartbeatDir+"/"))
	if err != nil {
		return fmt.Errorf("write heartbeat: %s", tailText(res.Stderr, 4))
	}
	return nil
}

// mountOf is the mountpoint of the host's share or disk holding p.
func (e *Env) mountOf(p string) string {
	var mounts []string
	for _, s := range e.Host.Shares {
		mounts = append(mounts, s.Mountpoint)
	}
	for _, d := range e.Host.Disks {
		mounts = append(mounts, d.Mountpoint)
	}
	return layout.Mountpoint(p, mounts)
}
