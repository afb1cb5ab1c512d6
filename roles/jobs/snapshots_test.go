package jobs

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// piSnapLab is pi with a mirror holding one repo, as a night's push
// leaves it, and a clock the test moves.
type piSnapLab struct {
	*piWatchLab
	now time.Time
}

func newPiSnapLab(t *testing.T) *piSnapLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a snapshot gives files to root and links them by descriptor: needs root")
	}
	l := &piSnapLab{piWatchLab: newPiWatchLab(t), now: piNow}
	clock := func() time.Time { return l.now }
	l.env.Now, l.env.Store.Now = clock, clock
	l.env.RetentionFile = filepath.Join(t.TempDir(), "snapshot-retention.json")
	l.env.SnapshotLockWait = time.Second
	for _, f := range []string{"system/config", "system/data/0/1"} {
		p := filepath.Join(layout.MirrorRoot(l.mount), f)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(f), 0o600)
	}
	return l
}

// push lands a night's heartbeat as rsync does: a new file renamed in.
func (l *piSnapLab) push(t *testing.T) {
	t.Helper()
	p := l.heartbeat(t, l.now.UTC().Format(time.RFC3339)+"\n", l.now)
	tmp := p + ".new"
	os.Link(p, tmp)
	os.Remove(p)
	b, _ := os.ReadFile(tmp)
	os.WriteFile(p, b, 0o644)
	os.Remove(tmp)
}

func (l *piSnapLab) run(t *testing.T) *state.Record {
	t.Helper()
	if err := Snapshot(context.Background(), l.env); err != nil {
		t.Fatalf("snapshot: %v\nlog:\n%s", err, l.log)
	}
	rec, err := l.env.Store.Load(layout.JobSnapshot)
	if err != nil {
		return nil
	}
	return rec
}

func snapStats(t *testing.T, rec *state.Record) state.SnapshotStats {
	t.Helper()
	var st state.SnapshotStats
	if err := json.Unmarshal(rec.Stats, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSnapshotJobTakesOneAfterEachPush(t *testing.T) {
	l := newPiSnapLab(t)
	if rec := l.run(t); rec != nil {
		t.Fatalf("a run without any push left a record: %+v", rec)
	}
	l.push(t)
	rec := l.run(t)
	if rec == nil || rec.Status != state.OK {
		t.Fatalf("record %+v\nlog:\n%s", rec, l.log)
	}
	st := snapStats(t, rec)
	if st.Snapshot != layout.SnapshotName(l.now) || st.Files != 3 || len(st.Pushes) != 1 || st.Pushes[0].Host != "john-ai" ||
		st.Retention.Daily != 7 || st.Retention.Weekly != 4 || st.Usage.Snapshots != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A quarter of an hour later, nothing new: no second snapshot, the
	// record untouched.
	l.now = l.now.Add(15 * time.Minute)
	if again := l.run(t); again.Started != rec.Started {
		t.Fatalf("a run without a new push rewrote the record: %+v", again)
	}
	entries, _ := os.ReadDir(layout.SnapshotRoot(l.mount))
	if len(entries) != 1 {
		t.Fatalf("snapshots %v", entries)
	}
}

// TestSnapshotRetentionOnlyGrowsFromTheConfig: a config that asks for
// fewer snapshots (one edited on the server and pushed by provisioning)
// removes nothing; lower-retention on the host itself does.
func TestSnapshotRetentionOnlyGrowsFromTheConfig(t *testing.T) {
	l := newPiSnapLab(t)
	night := func() *state.Record {
		t.Helper()
		l.now = l.now.Add(24 * time.Hour)
		l.push(t)
		return l.run(t)
	}
	for range 10 {
		if rec := night(); rec.Status != state.OK {
			t.Fatalf("record %+v", rec)
		}
	}
	count := func() int {
		entries, _ := os.ReadDir(layout.SnapshotRoot(l.mount))
		return len(entries)
	}
	// 10 nights from a Friday: 7 dailies, and the first snapshots of the
	// weeks before them.
	before := count()
	if before < 7 {
		t.Fatalf("%d snapshots after 10 nights", before)
	}
	l.env.Host.Snapshots = &config.Snapshots{Daily: 1, Weekly: 0}
	rec := night()
	st := snapStats(t, rec)
	for d := range 7 {
		name := layout.SnapshotName(l.now.Add(-time.Duration(d) * 24 * time.Hour))
		if _, err := os.Stat(filepath.Join(layout.SnapshotRoot(l.mount), name)); err != nil {
			t.Fatalf("a smaller retention from the config removed the daily snapshot %s (%d kept, removed %v)", name, count(), st.Removed)
		}
	}
	if st.Retention.Daily != 7 || st.Retention.ConfigDaily != 1 || !strings.Contains(st.Retention.Note, "borgkit snapshots lower-retention --yes") {
		t.Fatalf("retention %+v", st.Retention)
	}
	// A larger one is taken at once, and kept when the config shrinks again.
	l.env.Host.Snapshots = &config.Snapshots{Daily: 9, Weekly: 4}
	if st := snapStats(t, night()); st.Retention.Daily != 9 {
		t.Fatalf("retention not raised: %+v", st.Retention)
	}
	l.env.Host.Snapshots = &config.Snapshots{Daily: 1, Weekly: 0}
	if st := snapStats(t, night()); st.Retention.Daily != 9 || st.Retention.Weekly != 4 {
		t.Fatalf("retention fell back: %+v", st.Retention)
	}
	was, now, err := LowerSnapshotRetention(l.env)
	if err != nil || was.Daily != 9 || now.Daily != 1 {
		t.Fatalf("lower-retention: %v %+v %+v", err, was, now)
	}
	if st := snapStats(t, night()); st.Retention.Daily != 1 || count() != 1 || st.Retention.Note != "" {
		t.Fatalf("after lower-retention: %d snapshots, %+v", count(), st.Retention)
	}
}

func TestSnapshotJobNeverRemovesOnDoubt(t *testing.T) {
	l := newPiSnapLab(t)
	for range 3 {
		l.now = l.now.Add(24 * time.Hour)
		l.push(t)
		l.run(t)
	}
	l.env.Host.Snapshots = &config.Snapshots{Daily: 1}
	os.WriteFile(l.env.RetentionFile, []byte("{garbage"), 0o644)
	l.now = l.now.Add(24 * time.Hour)
	l.push(t)
	err := Snapshot(context.Background(), l.env)
	rec, _ := l.env.Store.Load(layout.JobSnapshot)
	if err == nil || rec.Status != state.Failed || !strings.Contains(rec.Message, "removed nothing") {
		t.Fatalf("err %v, record %+v", err, rec)
	}
	if entries, _ := os.ReadDir(layout.SnapshotRoot(l.mount)); len(entries) != 4 {
		t.Fatalf("%d snapshots, want all 4 kept", len(entries))
	}
}

func TestSnapshotDeferredWhileAPushRuns(t *testing.T) {
	l := newPiSnapLab(t)
	l.push(t)
	fd, err := unix.Open(layout.MirrorRoot(l.mount), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	unix.Flock(fd, unix.LOCK_EX) // rrsync's lock, as a push holds it
	rec := l.run(t)
	if rec == nil || rec.Status != state.Aborted || !strings.Contains(rec.Message, "deferred: a push into the mirror is in progress") {
		t.Fatalf("record %+v", rec)
	}
	unix.Flock(fd, unix.LOCK_UN)
	l.now = l.now.Add(15 * time.Minute)
	if rec := l.run(t); rec.Status != state.OK {
		t.Fatalf("after the push: %+v", rec)
	}
}
