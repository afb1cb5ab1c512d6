package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/snapshot"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Snapshot keeps the offsite host's history out of the push key's reach:
// after every complete push (a heartbeat no snapshot holds yet) it takes a
// read-only snapshot of the mirror, then removes the snapshots the
// retention no longer keeps. It runs every quarter hour and returns at
// once, without a record, when no push arrived or the disk is not mounted
// (the watchdog reports both). It mails nothing: the hourly watchdog
// alerts when a push waits too long for its snapshot.
func Snapshot(ctx context.Context, env *OffsiteEnv) error {
	e, err := env.resolved()
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	d := e.Host.BackupDisk()
	if d == nil {
		return fmt.Errorf("snapshot: host %s has no backup disk in %s (mark one backup: true)", e.Host.Name, e.Cfg.File)
	}
	mnt, err := findMount(e.MountInfo, d.Mountpoint)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if mnt == nil {
		return nil
	}
	store := e.snapshots(d)
	pending, perr := store.Pending()
	if perr == nil && len(pending) == 0 {
		return nil
	}
	return e.record(ctx, layout.JobSnapshot, func(ctx context.Context) (state.Status, int, string, any, error) {
		return statsAny(e.snapshot(ctx, store, pending, perr))
	})
}

// snapshots is the snapshot store of backup disk d.
func (e *OffsiteEnv) snapshots(d *config.Disk) *snapshot.Store {
	s := snapshot.For(e.Host.MirrorRootOrDefault(), d.Mountpoint)
	s.LockWait = e.SnapshotLockWait
	return s
}

func (e *OffsiteEnv) snapshot(ctx context.Context, store *snapshot.Store, pending []snapshot.Heartbeat, perr error) (state.Status, int, string, state.SnapshotStats, error) {
	var stats state.SnapshotStats
	fail := func(err error) (state.Status, int, string, state.SnapshotStats, error) {
		err = fmt.Errorf("snapshot: %w", err)
		e.logf("%v", err)
		return state.Failed, 1, err.Error(), stats, err
	}
	if perr != nil {
		return fail(perr)
	}
	for _, hb := range pending {
		e.logf("push from %s arrived %s (heartbeat %q): no snapshot holds it yet", hb.Server, hb.Arrived.Format(time.RFC3339), hb.Line)
		stats.Pushes = append(stats.Pushes, state.Heartbeat{Host: hb.Server, File: filepath.Join(store.Mirror, layout.HeartbeatDir, hb.Name), At: hb.At()})
	}
	policy, ret, rerr := e.snapshotPolicy()
	stats.Retention = ret
	if ret.Note != "" {
		e.logf("%s", ret.Note)
	}
	res, err := store.Take(ctx, e.Now())
	if res != nil {
		stats.LockWaitSeconds = res.LockWait.Seconds()
	}
	if errors.Is(err, snapshot.ErrBusy) {
		// Not a failure: the next run tries again, and the watchdog alerts
		// if the push keeps the mirror busy past snapshot_max_lag.
		e.logf("%v; the next run tries again", err)
		return state.Aborted, 0, "deferred: " + err.Error(), stats, nil
	}
	if err != nil {
		return fail(err)
	}
	stats.Snapshot = res.Snapshot.Name
	stats.Files, stats.Bytes, stats.Frozen, stats.FrozenBytes = res.Files, res.Bytes, res.Frozen, res.FrozenBytes
	stats.Skipped = res.Skipped
	e.logf("took snapshot %s: %d files (%s), %d of them new and now root's (%s); waited %s for the mirror's lock",
		res.Snapshot.Name, res.Files, bytesOf(res.Bytes), res.Frozen, bytesOf(res.FrozenBytes), res.LockWait.Round(time.Millisecond))
	if len(res.Skipped) > 0 {
		e.logf("left out of the snapshot (a borg repo has no such entries): %s", strings.Join(res.Skipped, ", "))
	}
	if rerr != nil {
		// Never delete on doubt: the snapshot is kept, nothing removed.
		return fail(fmt.Errorf("took %s but removed nothing: %w", res.Snapshot.Name, rerr))
	}
	removed, err := store.Prune(policy)
	for _, r := range removed {
		stats.Removed = append(stats.Removed, r.Name)
		e.logf("removed snapshot %s (retention %s)", r.Name, policy)
	}
	if err != nil {
		return fail(err)
	}
	all, err := store.List()
	if err != nil {
		return fail(err)
	}
	for _, s := range all {
		stats.Kept = append(stats.Kept, s.Name)
	}
	u, err := store.Usage()
	if err != nil {
		return fail(err)
	}
	stats.Usage = u
	e.logf("%d snapshots kept; they hold %s the mirror no longer has (%d files), %s of directories",
		u.Snapshots, bytesOf(u.HeldBytes), u.HeldFiles, bytesOf(u.DirBytes))
	msg := fmt.Sprintf("snapshot %s taken; %d kept, holding %s beyond the mirror", res.Snapshot.Name, u.Snapshots, bytesOf(u.Total()))
	return state.OK, 0, msg, stats, nil
}

// keptRetention is the offsite host's own record of the snapshot retention
// it keeps (layout.SnapshotRetentionFile).
type keptRetention struct {
	Daily  int       `json:"daily"`
	Weekly int       `json:"weekly"`
	Since  time.Time `json:"since"`
	// By says what set it: "config" (raised by a pushed config) or
	// "lower-retention" (lowered by hand on this host).
	By string `json:"by"`
}

func readKept(path string) (*keptRetention, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var k keptRetention
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s: %w (fix or remove it by hand; until then no snapshot is removed)", path, err)
	}
	if k.Daily < 1 || k.Weekly < 0 {
		return nil, fmt.Errorf("%s: retention %d daily, %d weekly is not one borgkit writes (fix or remove it by hand; until then no snapshot is removed)", path, k.Daily, k.Weekly)
	}
	return &k, nil
}

func writeKept(path string, k keptRetention) error {
	b, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// snapshotPolicy is the retention this host keeps: the larger, count by
// count, of what its config asks for and what it kept before. A config
// can raise it; only `borgkit snapshots lower-retention` on this host
// lowers it. An unreadable record is an error: nothing is then removed.
func (e *OffsiteEnv) snapshotPolicy() (snapshot.Policy, state.SnapshotRetention, error) {
	want := e.Host.SnapshotRetention()
	r := state.SnapshotRetention{Daily: want.Daily, Weekly: want.Weekly, ConfigDaily: want.Daily, ConfigWeekly: want.Weekly}
	kept, err := readKept(e.RetentionFile)
	if err != nil {
		r.Note = err.Error()
		return snapshot.Policy{}, r, err
	}
	if kept != nil {
		r.Daily, r.Weekly = max(want.Daily, kept.Daily), max(want.Weekly, kept.Weekly)
	}
	if kept == nil || r.Daily != kept.Daily || r.Weekly != kept.Weekly {
		if err := writeKept(e.RetentionFile, keptRetention{Daily: r.Daily, Weekly: r.Weekly, Since: e.Now().UTC(), By: "config"}); err != nil {
			err = fmt.Errorf("record the snapshot retention: %w", err)
			r.Note = err.Error()
			return snapshot.Policy{}, r, err
		}
		e.logf("snapshot retention is now %d daily, %d weekly (%s)", r.Daily, r.Weekly, e.RetentionFile)
	}
	if r.Daily != want.Daily || r.Weekly != want.Weekly {
		r.Note = fmt.Sprintf("the config asks for %d daily, %d weekly snapshots; this host keeps %d daily, %d weekly, the most it was ever given, "+
			"so that a config edited on %s cannot shorten the offsite history. To accept the smaller retention run on %s: borgkit snapshots lower-retention --yes",
			want.Daily, want.Weekly, r.Daily, r.Weekly, e.serverName(), e.Host.Name)
	}
	return snapshot.Policy{Daily: r.Daily, Weekly: r.Weekly}, r, nil
}

func (e *OffsiteEnv) serverName() string {
	if s := e.Cfg.OffsiteServer(e.Host); s != nil {
		return s.Name
	}
	return "the server"
}

// LowerSnapshotRetention makes the retention the config asks for the one
// this host keeps, when it is smaller: the only way it ever shrinks. The
// next snapshot run then removes what it no longer keeps. It returns the
// retention before and after.
func LowerSnapshotRetention(env *OffsiteEnv) (before, after config.Snapshots, err error) {
	e, err := env.resolved()
	if err != nil {
		return before, after, err
	}
	want := e.Host.SnapshotRetention()
	// An unreadable record is replaced: this is how it is fixed, too.
	if kept, _ := readKept(e.RetentionFile); kept != nil {
		before = config.Snapshots{Daily: kept.Daily, Weekly: kept.Weekly}
	}
	if err := writeKept(e.RetentionFile, keptRetention{Daily: want.Daily, Weekly: want.Weekly, Since: e.Now().UTC(), By: "lower-retention"}); err != nil {
		return before, after, fmt.Errorf("lower the snapshot retention: %w", err)
	}
	return before, want, nil
}

// SnapshotList is what `borgkit snapshots list` shows.
type SnapshotList struct {
	Mirror, Root string
	Snapshots    []snapshot.Snapshot
	// Why each is kept under Policy (the retention this host keeps).
	Why       map[string]string
	Policy    snapshot.Policy
	Retention state.SnapshotRetention
	Usage     state.SnapshotUsage
}

// ListSnapshots reads the snapshots of this host's backup disk.
func ListSnapshots(env *OffsiteEnv) (*SnapshotList, error) {
	e, err := env.resolved()
	if err != nil {
		return nil, err
	}
	d := e.Host.BackupDisk()
	if d == nil {
		return nil, fmt.Errorf("host %s has no backup disk in %s", e.Host.Name, e.Cfg.File)
	}
	store := e.snapshots(d)
	all, err := store.List()
	if err != nil {
		return nil, err
	}
	l := &SnapshotList{Mirror: store.Mirror, Root: store.Root, Snapshots: all}
	want := e.Host.SnapshotRetention()
	l.Retention = state.SnapshotRetention{Daily: want.Daily, Weekly: want.Weekly, ConfigDaily: want.Daily, ConfigWeekly: want.Weekly}
	if kept, err := readKept(e.RetentionFile); err != nil {
		l.Retention.Note = err.Error()
	} else if kept != nil {
		l.Retention.Daily, l.Retention.Weekly = max(want.Daily, kept.Daily), max(want.Weekly, kept.Weekly)
	}
	l.Policy = snapshot.Policy{Daily: l.Retention.Daily, Weekly: l.Retention.Weekly}
	l.Why = l.Policy.Keep(all)
	if l.Usage, err = store.Usage(); err != nil {
		return l, err
	}
	return l, nil
}

// bytesOf is a byte count as the mails write sizes.
func bytesOf(n int64) string { return alert.Size(uint64(max(n, 0))) }

// SubjectSnapshotOverdue is the watchdog's mail when a push has waited too
// long for the snapshot that keeps it.
const SubjectSnapshotOverdue = "OFFSITE SNAPSHOT OVERDUE"

// watchSnapshots is the watchdog's look at the snapshots: a push that
// arrived more than snapshot_max_lag ago and that no snapshot holds mails,
// with what the snapshot job last said. The error is a look it could not
// take (the snapshot directory unreadable, the heartbeat directory a
// symlink).
func (e *OffsiteEnv) watchSnapshots(ctx context.Context, d *config.Disk, now time.Time) (*state.SnapshotWatch, error) {
	sw := &state.SnapshotWatch{}
	store := e.snapshots(d)
	all, err := store.List()
	if err != nil {
		return sw, fmt.Errorf("watchdog: %w", err)
	}
	sw.Count = len(all)
	if len(all) > 0 {
		sw.Latest, sw.LatestTime = all[len(all)-1].Name, all[len(all)-1].Time
	}
	pending, err := store.Pending()
	if err != nil {
		return sw, fmt.Errorf("watchdog: snapshots: %w", err)
	}
	lag := e.Host.Thresholds.SnapshotMaxLagOrDefault()
	var late []snapshot.Heartbeat
	for _, hb := range pending {
		sw.Waiting = append(sw.Waiting, state.Heartbeat{Host: hb.Server, File: filepath.Join(store.Mirror, layout.HeartbeatDir, hb.Name), At: hb.Arrived})
		waited := now.Sub(hb.Arrived)
		if waited > lag {
			late = append(late, hb)
			e.logf("the push from %s that arrived %s ago is in no snapshot (threshold %s)", hb.Server, alert.Age(waited), alert.Limit(lag))
		} else {
			e.logf("the push from %s that arrived %s ago waits for the next snapshot run", hb.Server, alert.Age(max(waited, 0)))
		}
	}
	if sw.Latest != "" {
		e.logf("%d snapshots, the newest %s (%s ago)", sw.Count, sw.Latest, alert.Age(max(now.Sub(sw.LatestTime), 0)))
	}
	if len(late) == 0 {
		return sw, nil
	}
	sw.Overdue = true
	e.Mail(ctx, e.snapshotOverdue(store, late, sw, now, lag))
	return sw, nil
}

// snapshotOverdue is that mail.
func (e *OffsiteEnv) snapshotOverdue(store *snapshot.Store, late []snapshot.Heartbeat, sw *state.SnapshotWatch, now time.Time, lag time.Duration) alert.Message {
	var b strings.Builder
	fmt.Fprintf(&b, "=== %s %s ===\n", e.Host.Name, SubjectSnapshotOverdue)
	for _, hb := range late {
		fmt.Fprintf(&b, "Push from %s arrived: %s ago (threshold: %s)\n", hb.Server, alert.Age(now.Sub(hb.Arrived)), alert.Limit(lag))
	}
	if sw.Latest != "" {
		fmt.Fprintf(&b, "Newest snapshot: %s (%s ago), %d kept in %s\n", sw.Latest, alert.Age(max(now.Sub(sw.LatestTime), 0)), sw.Count, store.Root)
	} else {
		fmt.Fprintf(&b, "Newest snapshot: none in %s\n", store.Root)
	}
	if rec, err := e.Store.Load(layout.JobSnapshot); err == nil {
		fmt.Fprintf(&b, "Last snapshot run: %s, %s: %s\n", rec.Started.Format(alert.TimestampLayout), rec.Status, rec.Message)
	} else {
		b.WriteString("Last snapshot run: none recorded\n")
	}
	b.WriteString("\nThe mirror has data no snapshot keeps: until one does, whoever holds the\n")
	b.WriteString("server's push key can still delete or overwrite it. The snapshot job runs\n")
	fmt.Fprintf(&b, "every quarter hour (%s job snapshot, log %s).\n", layout.Binary, layout.JobLog(layout.LogDir, layout.JobSnapshot))
	b.WriteString("Check: its schedule, its log, and that the disk has room for root.\n")
	return alert.Message{Subject: SubjectSnapshotOverdue, Text: b.String()}
}

// snapshotSpace is the paragraph the disk warning gets about the
// snapshots, from the snapshot job's last record.
func (e *OffsiteEnv) snapshotSpace() string {
	rec, err := e.Store.Load(layout.JobSnapshot)
	var st state.SnapshotStats
	if err != nil || decodeStats(rec, &st) != nil || st.Usage.Snapshots == 0 {
		return ""
	}
	return fmt.Sprintf("\n%d snapshots of the mirror hold %s it no longer has (%s; retention %d daily, %d weekly).\n"+
		"They are never removed to make room: a push filling the disk would then erase the\n"+
		"offsite history. To keep fewer, lower snapshots: in the config, provision, then\n"+
		"run on %s: borgkit snapshots lower-retention --yes\n",
		st.Usage.Snapshots, bytesOf(st.Usage.Total()), rec.Finished.Format(alert.TimestampLayout), st.Retention.Daily, st.Retention.Weekly, e.Host.Name)
}
