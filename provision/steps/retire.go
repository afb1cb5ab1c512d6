package steps

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/legacy"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// Retire moves a file of a hand-built setup aside (layout.Retired: beside
// it as FILE.borgkit-old, or under /var/lib/borgkit/retired for a cron.d
// or logrotate.d file, which would still be read where it is). Nothing is
// deleted: moving the file back undoes it. A systemd unit is disabled and
// stopped first, so no timer is left pointing at it.
type Retire struct {
	Path string
}

func (r *Retire) ID() string { return "retire." + r.Path }

func (r *Retire) dest() string { return layout.Retired(r.Path) }

// Reads are the file to retire (its content: borgkit's own in its place
// is retired already) and where it goes.
func (r *Retire) Reads() []host.Want {
	return []host.Want{{Path: r.Path, Content: true}, {Path: r.dest()}}
}

func (r *Retire) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	fi, err := h.Lstat(ctx, r.Path)
	if host.IsNotExist(err) {
		return plan.Satisfied(), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	if fi.IsDir() {
		return plan.Conflicts(fmt.Sprintf("%s is a directory; only files are retired", r.Path)), nil
	}
	if fi.Mode.IsRegular() && fi.Size < 1<<20 {
		// borgkit's own file in its place (the msmtprc it wrote after
		// retiring the old one): retired already.
		if b, err := h.ReadFile(ctx, r.Path); err == nil {
			if layout.MarkedBy(b, layout.Marker) {
				return plan.Satisfied(), nil
			}
		}
	}
	for _, d := range []string{path.Dir(r.Path), path.Dir(r.dest())} {
		if _, err := host.PathInside(h, d); err != nil {
			return plan.Conflicts(fmt.Sprintf("%s cannot be retired in this tree: %v", r.Path, err)), nil
		}
	}
	if _, err := h.Lstat(ctx, r.dest()); err == nil {
		return plan.Conflicts(fmt.Sprintf("%s is to be retired to %s, which exists (retired before?): move one of them away first", r.Path, r.dest())), nil
	}
	what := "retire: move to " + r.dest()
	if isUnit(r.Path) && h.Live() {
		what = "retire: systemctl disable --now " + path.Base(r.Path) + ", move to " + r.dest()
	}
	return plan.Modifies(what), nil
}

func isUnit(p string) bool {
	if path.Dir(p) != legacy.UnitDir {
		return false
	}
	switch path.Ext(p) {
	case ".service", ".timer", ".path", ".mount", ".automount", ".socket":
		return true
	}
	return false
}

func (r *Retire) Apply(ctx context.Context, h host.Host) error {
	unit := isUnit(r.Path)
	if unit {
		args := []string{"disable"}
		if h.Live() {
			args = append(args, "--now")
		} else {
			args = append([]string{"--root=" + h.Path("/")}, args...)
		}
		// A unit systemd does not know (never loaded, a typo'd name) has
		// nothing to disable; the move below is what counts.
		_, _ = h.Run(ctx, host.Command(tools.Systemctl, append(args, path.Base(r.Path))...))
	}
	dest := r.dest()
	if d := path.Dir(dest); d != path.Dir(r.Path) {
		// Retired files may hold secrets (an msmtprc's password).
		if err := h.MkdirAll(ctx, d, 0o700, host.Root); err != nil {
			return fmt.Errorf("retire %s: %w", r.Path, err)
		}
	}
	if _, err := h.Lstat(ctx, dest); err == nil {
		return fmt.Errorf("retire %s: %s exists", r.Path, dest)
	}
	// mv follows symlinked directories: under --root both ends must stay
	// in the tree.
	src, err := host.PathInside(h, path.Dir(r.Path))
	if err != nil {
		return fmt.Errorf("retire %s: %w", r.Path, err)
	}
	dst, err := host.PathInside(h, path.Dir(dest))
	if err != nil {
		return fmt.Errorf("retire %s: %w", r.Path, err)
	}
	if _, err := h.Run(ctx, host.Command(tools.Mv, "-n", "-T", path.Join(src, path.Base(r.Path)), path.Join(dst, path.Base(dest)))); err != nil {
		return fmt.Errorf("retire %s: %w", r.Path, err)
	}
	if _, err := h.Lstat(ctx, r.Path); err == nil {
		return fmt.Errorf("retire %s: it is still there after mv", r.Path)
	}
	if unit && h.Live() {
		if _, err := h.Run(ctx, host.Command(tools.Systemctl, "daemon-reload")); err != nil {
			return fmt.Errorf("retire %s: %w", r.Path, err)
		}
	}
	return nil
}

// LegacySchedules refuses to provision beside a hand-built setup's
// schedule (a cron line, a timer, a boot-time service) whose commands
// work on what borgkit is about to run — the repos, their disk, the
// mirrors, the offsite disk: two nightly jobs on one repo, two unlocks of
// one disk. Listing its file for retiring (Retired) lifts the conflict;
// the Retire steps of the plan then move it aside.
type LegacySchedules struct {
	// Watch are the paths whose users are borgkit's jobs from now on.
	Watch []string
	// Retired are the files the user retires (config and --retire).
	Retired []string
}

func (l *LegacySchedules) ID() string { return "legacy-schedules" }

// Reads are what the scan of the schedules reads: the cron and unit
// directories with their files, the crontabs, the bin directories.
func (l *LegacySchedules) Reads() []host.Want { return legacy.Wants() }

func (l *LegacySchedules) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	jobs, err := legacy.Scan(ctx, h)
	if err != nil {
		return plan.Check{}, fmt.Errorf("read the host's schedules: %w", err)
	}
	var why []string
	for _, j := range jobs {
		touched := j.Touches(l.Watch)
		if len(touched) == 0 {
			continue
		}
		sched := j.Units
		if len(sched) == 0 {
			sched = []string{j.File}
		}
		if !slices.ContainsFunc(sched, func(f string) bool { return !slices.Contains(l.Retired, f) }) {
			continue
		}
		where := j.File
		if j.Line > 0 {
			where = fmt.Sprintf("%s line %d", j.File, j.Line)
		}
		run := strings.TrimSpace(strings.SplitN(j.Command, "\n", 2)[0])
		switch j.File {
		case legacy.SystemCron, legacy.RootCrontab:
			why = append(why, fmt.Sprintf("%s runs %q on %s; that file holds other lines: delete this one by hand", where, run, strings.Join(touched, ", ")))
		default:
			why = append(why, fmt.Sprintf("%s runs %q on %s; retire it: --retire %s", where, run, strings.Join(touched, ", "), strings.Join(j.Files(), " --retire ")))
		}
	}
	if len(why) == 0 {
		return plan.Satisfied(), nil
	}
	return plan.Conflicts("a hand-built backup schedule works on what borgkit would run, and two jobs must never run on one repo or disk: " +
		strings.Join(why, "; ")), nil
}

func (l *LegacySchedules) Apply(context.Context, host.Host) error { return nil }

// Replacing is a file borgkit writes where a retired file of the old
// setup still stands (its msmtprc): until the Retire step earlier in the
// plan has moved it, the file is foreign, and its conflict is what the
// retirement resolves.
type Replacing struct {
	*File
	Retire *Retire
}

// Place is "": the file waits for the steps before it, the retirement of
// the old one among them.
func (r *Replacing) Place() string { return "" }

func (r *Replacing) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	c, err := r.File.Check(ctx, h)
	if err != nil || c.Action != plan.Conflict {
		return c, err
	}
	rc, err := r.Retire.Check(ctx, h)
	if err != nil || !rc.Action.Pending() {
		return c, err
	}
	return plan.Creates(fmt.Sprintf("write %d bytes, mode %04o, in place of the retired file", len(r.Content), r.Mode.Perm())).WithDiff(r.diff(nil)), nil
}
