package jobs

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/window"
)

// repoNight is one repo's night: its mail sections, its figures for the
// dashboard, and why its archive looks wrong (nil when it does not).
type repoNight struct {
	secs    []alert.Section
	stats   state.RepoStats
	suspect *alert.Suspect
}

// backupRepos backs up every repo of the host, several at once where the
// host's nightly window allows (config.Host.NightlyWindow), and returns
// their nights in the config's order, however they ended: the mail, the
// records and the dashboard read the same whatever ran at once.
//
// Repos are independent (each its own borg lock, cache and record), but
// for repos archived from one ZFS snapshot: the snapshot has one name per
// dataset, so they run one after the other, as one task.
func (e *Env) backupRepos(ctx context.Context) []repoNight {
	repos := e.Host.Repos
	nights := make([]repoNight, len(repos))
	tasks := snapshotGroups(repos)
	disks := make([]string, len(tasks))
	for t, group := range tasks {
		if r := &repos[group[0]]; r.Remote() {
			disks[t] = "borg-server:" + r.Location().Addr() // its disk is the server's
		} else {
			disks[t] = window.Disk(r.Path)
		}
	}
	total, perDisk := e.Host.NightlyWindow()
	lim := window.Limits{Total: total, PerDisk: perDisk}
	together := !lim.OneAtATime(disks)
	if together {
		e.logf("%d repos, %s at once (%d per disk; %s); each repo's log follows when it ends",
			len(repos), atOnce(total), perDisk, describeDisks(repos, tasks, disks))
	}
	errs := window.Run(ctx, disks, lim, func(ctx context.Context, t int) error {
		re, flush := e, func() {}
		if together {
			// Each repo's lines go to the log in one piece when it ends,
			// not interleaved line by line with the others'.
			re, flush = e.repoLog()
		}
		defer flush()
		for _, i := range tasks[t] {
			if ctx.Err() != nil {
				break
			}
			secs, rs, suspect := re.backupRepo(ctx, &repos[i])
			nights[i] = repoNight{secs, rs, suspect}
		}
		return nil
	})
	for t, err := range errs {
		for _, i := range tasks[t] {
			if nights[i].stats.Name != "" {
				continue
			}
			// Never started: the job was stopped first.
			r := &repos[i]
			why := "the nightly was stopped before this repo's turn"
			if err != nil {
				why += " (" + err.Error() + ")"
			}
			nights[i] = repoNight{
				secs:  []alert.Section{{Name: "Backup: " + r.Name, Status: alert.StatusFailed, ExitCode: 1, Output: why}},
				stats: state.RepoStats{Name: r.Name, Path: r.Path, Status: "failed", VMs: r.VMs},
			}
		}
	}
	return nights
}

// snapshotGroups are the repos as tasks, in order: repos archived from the
// same ZFS dataset's snapshot share one task, every other repo has its own.
func snapshotGroups(repos []config.Repo) [][]int {
	var tasks [][]int
	bySnapshot := map[string]int{}
	for i, r := range repos {
		if r.Snapshot != "" {
			if t, ok := bySnapshot[r.Snapshot]; ok {
				tasks[t] = append(tasks[t], i)
				continue
			}
			bySnapshot[r.Snapshot] = len(tasks)
		}
		tasks = append(tasks, []int{i})
	}
	return tasks
}

// repoLog is a copy of e whose log is kept apart, and the func that
// appends it to e's log in one write.
func (e *Env) repoLog() (*Env, func()) {
	re := *e
	var buf bytes.Buffer
	re.Log, re.lines = &buf, &runLog{}
	return &re, func() {
		re.lines.mu.Lock()
		lines, mailErr := re.lines.lines, re.lines.mailErr
		re.lines.mu.Unlock()
		e.lines.mu.Lock()
		defer e.lines.mu.Unlock()
		e.Log.Write(buf.Bytes())
		e.lines.lines = append(e.lines.lines, lines...)
		if mailErr != "" {
			e.lines.mailErr = mailErr
		}
	}
}

func atOnce(total int) string {
	if total == 0 {
		return "one per disk"
	}
	return fmt.Sprintf("up to %d", total)
}

// describeDisks says which repos share a disk, for the log.
func describeDisks(repos []config.Repo, tasks [][]int, disks []string) string {
	var order []string
	on := map[string][]string{}
	for t, d := range disks {
		if _, ok := on[d]; !ok {
			order = append(order, d)
		}
		for _, i := range tasks[t] {
			on[d] = append(on[d], repos[i].Name)
		}
	}
	parts := make([]string, len(order))
	for k, d := range order {
		parts[k] = d + ": " + strings.Join(on[d], ", ")
	}
	return strings.Join(parts, "; ")
}
