package snapshot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/borgkit/borgkit/provision/layout"
)

// pushUID stands for the push user in these tests: root can give a file to
// any uid, and the walk only asks whether it is root's.
const pushUID = 4242

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("BORGKIT_REQUIRE_ROOT") != "" {
			t.Fatal("these tests need root (chown, linkat with AT_EMPTY_PATH)")
		}
		t.Skip("needs root: a snapshot gives files to root and links them by descriptor")
	}
}

// mirrorFile writes a file as the push user would leave it.
func mirrorFile(t *testing.T, p string, data string, mode os.FileMode) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p, pushUID, pushUID); err != nil {
		t.Fatal(err)
	}
}

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	mount := t.TempDir()
	s := For(layout.MirrorRoot(mount), mount)
	os.MkdirAll(s.Mirror, 0o700)
	os.Lchown(s.Mirror, pushUID, pushUID)
	return s, mount
}

func stat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

var t0 = time.Date(2026, 6, 1, 3, 0, 0, 0, time.UTC)

func TestTakeFreezesAndLinksEveryFile(t *testing.T) {
	needRoot(t)
	s, _ := newStore(t)
	mirrorFile(t, filepath.Join(s.Mirror, "system/config"), "[repository]\n", 0o600)
	mirrorFile(t, filepath.Join(s.Mirror, "system/data/0/1"), strings.Repeat("segment", 1000), 0o600)
	mirrorFile(t, filepath.Join(s.Mirror, "system/data/0/2"), "loose mode", 0o4666)
	mirrorFile(t, filepath.Join(s.Mirror, ".heartbeat/john-ai-last-success"), "2026-06-01T02:10:00Z\n", 0o644)
	os.Symlink("/etc/shadow", filepath.Join(s.Mirror, "system/evil"))
	unix.Mkfifo(filepath.Join(s.Mirror, "system/fifo"), 0o600)

	res, err := s.Take(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Snapshot.Name != "2026-06-01T030000Z" || res.Files != 4 || res.Frozen != 4 || len(res.Skipped) != 2 {
		t.Fatalf("result %+v", res)
	}
	for _, rel := range []string{"system/config", "system/data/0/1", "system/data/0/2", ".heartbeat/john-ai-last-success"} {
		m, sn := stat(t, filepath.Join(s.Mirror, rel)), stat(t, filepath.Join(res.Snapshot.Path, rel))
		if m.Ino != sn.Ino {
			t.Errorf("%s: the snapshot holds another inode than the mirror", rel)
		}
		if m.Uid != 0 || m.Gid != 0 || m.Mode&frozenMode != 0 {
			t.Errorf("%s not frozen: uid %d gid %d mode %o", rel, m.Uid, m.Gid, m.Mode)
		}
	}
	if m := stat(t, filepath.Join(s.Mirror, "system/config")); m.Mode&0o7777 != 0o600 {
		t.Errorf("a borg file's mode changed: %o (the next push would try to set it back)", m.Mode&0o7777)
	}
	for _, rel := range []string{"system/evil", "system/fifo"} {
		if _, err := os.Lstat(filepath.Join(res.Snapshot.Path, rel)); !os.IsNotExist(err) {
			t.Errorf("%s was taken into the snapshot: %v", rel, err)
		}
	}
	if st := stat(t, "/etc/shadow"); st.Nlink != 1 {
		t.Errorf("the walk followed a symlink: /etc/shadow has %d links", st.Nlink)
	}
	if fi, _ := os.Stat(s.Root); fi.Mode().Perm() != 0o700 {
		t.Errorf("snapshot root mode %v", fi.Mode())
	}

	// Nothing new: nothing frozen, and no heartbeat pending.
	if p, err := s.Pending(); err != nil || len(p) != 0 {
		t.Fatalf("pending after the snapshot: %v %v", p, err)
	}
	res2, err := s.Take(context.Background(), t0.Add(time.Hour))
	if err != nil || res2.Frozen != 0 || res2.Files != 4 {
		t.Fatalf("second snapshot %+v %v", res2, err)
	}
	all, _ := s.List()
	if len(all) != 2 || all[0].Name != res.Snapshot.Name {
		t.Fatalf("list %v", all)
	}
}

// A mirror kept at the top of its disk (adopted: mirror_root is the
// mountpoint) holds the snapshots and lost+found: a snapshot takes the
// repos and the heartbeat, never the earlier snapshots nor lost+found.
func TestTakeAtTheTopOfTheDisk(t *testing.T) {
	needRoot(t)
	mount := t.TempDir()
	s := For(mount, mount)
	mirrorFile(t, filepath.Join(mount, "system/data/0/1"), strings.Repeat("segment", 100), 0o600)
	mirrorFile(t, filepath.Join(mount, ".heartbeat/john-ai-last-success"), "2026-06-01T02:10:00Z\n", 0o644)
	if err := os.MkdirAll(filepath.Join(mount, layout.LostFound), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mount, layout.LostFound, "#12"), []byte("orphan"), 0o600); err != nil {
		t.Fatal(err)
	}
	first, err := s.Take(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Take(context.Background(), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range []*Result{first, second} {
		if res.Files != 2 {
			t.Errorf("snapshot %s holds %d files, want the repo's segment and the heartbeat: %+v", res.Snapshot.Name, res.Files, res)
		}
		for _, name := range []string{layout.SnapshotDir, layout.LostFound} {
			if _, err := os.Lstat(filepath.Join(res.Snapshot.Path, name)); !os.IsNotExist(err) {
				t.Errorf("snapshot %s took %s: %v", res.Snapshot.Name, name, err)
			}
		}
	}
	if st := stat(t, filepath.Join(mount, layout.LostFound, "#12")); st.Nlink != 1 {
		t.Errorf("lost+found's file was linked into a snapshot (%d links)", st.Nlink)
	}
}

func TestPendingFollowsTheHeartbeatsInode(t *testing.T) {
	needRoot(t)
	s, _ := newStore(t)
	hb := filepath.Join(s.Mirror, layout.HeartbeatDir, layout.HeartbeatName("john-ai"))
	if p, err := s.Pending(); err != nil || len(p) != 0 {
		t.Fatalf("pending without a heartbeat: %v %v", p, err)
	}
	mirrorFile(t, hb, "2026-06-01T02:10:00Z\n", 0o644)
	p, err := s.Pending()
	if err != nil || len(p) != 1 || p[0].Server != "john-ai" || !p[0].At().Equal(time.Date(2026, 6, 1, 2, 10, 0, 0, time.UTC)) {
		t.Fatalf("pending %+v %v", p, err)
	}
	if _, err := s.Take(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	// The same content under a new inode is a new push, as rsync makes it.
	tmp := hb + ".tmp"
	mirrorFile(t, tmp, "2026-06-01T02:10:00Z\n", 0o644)
	os.Rename(tmp, hb)
	if p, err := s.Pending(); err != nil || len(p) != 1 {
		t.Fatalf("a rewritten heartbeat is not pending: %v %v", p, err)
	}
}

func TestHeartbeatsAreReadWithoutFollowingOrBlocking(t *testing.T) {
	needRoot(t)
	s, _ := newStore(t)
	dir := filepath.Join(s.Mirror, layout.HeartbeatDir)
	os.MkdirAll(dir, 0o700)
	os.Symlink("/etc/shadow", filepath.Join(dir, layout.HeartbeatName("link")))
	unix.Mkfifo(filepath.Join(dir, layout.HeartbeatName("fifo")), 0o600)
	mirrorFile(t, filepath.Join(dir, layout.HeartbeatName("big")), strings.Repeat("x", 1<<20), 0o644)
	done := make(chan []Heartbeat)
	go func() {
		hbs, err := ReadHeartbeats(s.Mirror)
		if err != nil {
			t.Error(err)
		}
		done <- hbs
	}()
	var hbs []Heartbeat
	select {
	case hbs = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reading the heartbeats blocked (a FIFO opened for reading waits for a writer)")
	}
	if len(hbs) != 3 {
		t.Fatalf("heartbeats %+v", hbs)
	}
	for _, hb := range hbs {
		switch hb.Server {
		case "big":
			if hb.Err != nil || len(hb.Line) > maxHeartbeatLine {
				t.Errorf("big: %d bytes kept, %v", len(hb.Line), hb.Err)
			}
		default:
			if hb.Err == nil {
				t.Errorf("%s taken for a heartbeat: %+v", hb.Server, hb)
			}
		}
	}
	// The heartbeat directory itself swapped for a symlink is refused.
	os.RemoveAll(dir)
	os.Symlink("/etc", dir)
	if _, err := ReadHeartbeats(s.Mirror); err == nil {
		t.Fatal("a symlinked heartbeat directory was read")
	}
}

func TestTakeWaitsForThePushLock(t *testing.T) {
	needRoot(t)
	s, _ := newStore(t)
	mirrorFile(t, filepath.Join(s.Mirror, "r/config"), "x", 0o600)
	// rrsync's lock: flock on the mirror directory, held for a whole push.
	fd, err := unix.Open(s.Mirror, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	s.LockWait = 1500 * time.Millisecond
	_, err = s.Take(context.Background(), t0)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("snapshot during a push: %v", err)
	}
	if m := stat(t, filepath.Join(s.Mirror, "r/config")); m.Uid != pushUID {
		t.Fatal("a snapshot that did not get the lock froze files")
	}
	if all, _ := s.List(); len(all) != 0 {
		t.Fatalf("snapshots %v", all)
	}
	if ents, _ := os.ReadDir(s.Root); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
	// The push ends while the snapshot waits: it goes ahead.
	go func() { time.Sleep(500 * time.Millisecond); unix.Close(fd) }()
	s.LockWait = 10 * time.Second
	res, err := s.Take(context.Background(), t0)
	if err != nil || res.LockWait < 400*time.Millisecond {
		t.Fatalf("%+v %v", res, err)
	}
	// The lock goes with the snapshot: the next push gets it.
	if err := unix.Flock(mustOpen(t, s.Mirror), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("lock not released after the snapshot: %v", err)
	}
}

func mustOpen(t *testing.T, p string) int {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestInterruptedSnapshotIsCleanedUp(t *testing.T) {
	needRoot(t)
	s, _ := newStore(t)
	mirrorFile(t, filepath.Join(s.Mirror, "r/config"), "x", 0o600)
	os.MkdirAll(filepath.Join(s.Root, partialPrefix+"2026-05-31T030000Z/r"), 0o700)
	if _, err := s.Take(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(s.Root)
	if len(ents) != 1 || ents[0].Name() != "2026-06-01T030000Z" {
		t.Fatalf("snapshot root holds %v", ents)
	}
	if _, err := s.Take(context.Background(), t0); err == nil {
		t.Fatal("a second snapshot under the same name")
	}
}

func TestPolicyKeep(t *testing.T) {
	day := func(d, h int) Snapshot {
		at := time.Date(2026, 6, d, h, 0, 0, 0, time.UTC)
		return Snapshot{Name: layout.SnapshotName(at), Time: at}
	}
	// June 2026: the 1st is a Monday.
	var nightly []Snapshot
	for d := 1; d <= 30; d++ {
		nightly = append(nightly, day(d, 3))
	}
	tests := []struct {
		name  string
		p     Policy
		snaps []Snapshot
		want  []string
	}{
		{"nothing", Policy{Daily: 7, Weekly: 4}, nil, nil},
		{"a month of nights", Policy{Daily: 7, Weekly: 4}, nightly, []string{
			"2026-06-08T030000Z", "2026-06-15T030000Z", "2026-06-22T030000Z", // Mondays of the last weeks
			"2026-06-24T030000Z", "2026-06-25T030000Z", "2026-06-26T030000Z", "2026-06-27T030000Z",
			"2026-06-28T030000Z", "2026-06-29T030000Z", "2026-06-30T030000Z"}},
		{"a later push the same day displaces nothing", Policy{Daily: 2}, []Snapshot{day(1, 3), day(2, 3), day(2, 15), day(3, 3), day(3, 11), day(3, 12)},
			[]string{"2026-06-02T030000Z", "2026-06-03T030000Z", "2026-06-03T120000Z"}},
		{"silence deletes nothing", Policy{Daily: 3}, []Snapshot{day(1, 3), day(2, 3), day(3, 3)},
			[]string{"2026-06-01T030000Z", "2026-06-02T030000Z", "2026-06-03T030000Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.Loc = time.UTC
			keep := tt.p.Keep(tt.snaps)
			var got []string
			for _, s := range tt.snaps {
				if _, ok := keep[s.Name]; ok {
					got = append(got, s.Name)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("kept %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestPruneAndUsage(t *testing.T) {
	needRoot(t)
	s, _ := newStore(t)
	seg := bytes.Repeat([]byte("s"), 64<<10)
	mirrorFile(t, filepath.Join(s.Mirror, "r/data/0/1"), string(seg), 0o600)
	mirrorFile(t, filepath.Join(s.Mirror, "r/data/0/2"), string(seg), 0o600)
	for d := range 3 {
		if _, err := s.Take(context.Background(), t0.AddDate(0, 0, d)); err != nil {
			t.Fatal(err)
		}
	}
	// Compaction removed segment 1 from the mirror: only snapshots hold it.
	os.Remove(filepath.Join(s.Mirror, "r/data/0/1"))
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.Snapshots != 3 || u.HeldFiles != 1 || u.HeldBytes < int64(len(seg)) || u.HeldBytes > 2*int64(len(seg)) || u.MirrorBytes < int64(len(seg)) ||
		u.HeldSegmentBytes != u.HeldBytes {
		t.Fatalf("usage %+v", u)
	}
	removed, err := s.Prune(Policy{Daily: 1, Loc: time.UTC})
	if err != nil || len(removed) != 2 {
		t.Fatalf("pruned %v %v", removed, err)
	}
	if st := stat(t, filepath.Join(s.Mirror, "r/data/0/2")); st.Nlink != 2 {
		t.Fatalf("segment 2 has %d links, want the mirror's and the kept snapshot's", st.Nlink)
	}
	if err := s.Remove(Snapshot{Name: "x", Path: "/etc"}); err == nil {
		t.Fatal("Remove took a path that is no snapshot")
	}
}
