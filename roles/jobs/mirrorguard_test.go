package jobs_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// segmentsOf lists a repo's segment files, oldest first.
func segmentsOf(t *testing.T, repo string) []string {
	t.Helper()
	var segs []string
	filepath.WalkDir(filepath.Join(repo, "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(repo, p)
			if _, ok := borg.Segment(rel); ok {
				segs = append(segs, p)
			}
		}
		return nil
	})
	sort.Slice(segs, func(i, j int) bool {
		a, _ := borg.Segment(strings.TrimPrefix(segs[i], repo+"/"))
		b, _ := borg.Segment(strings.TrimPrefix(segs[j], repo+"/"))
		return a < b
	})
	return segs
}

// TestSyncRefusesADamagedSource is issue 14's data loss: after good
// nights and syncs, the source repo is damaged in one way or another, and
// the next sync must mirror none of it, to the NAS (max_delete 5, which
// once let five segments go) or through rrsync to the Pi: every file of
// both mirrors keeps its SHA-256, and the mail says why.
func TestSyncRefusesADamagedSource(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, l *lab, repo string)
		reason string
	}{
		{"data emptied", func(t *testing.T, l *lab, repo string) {
			ents, _ := os.ReadDir(filepath.Join(repo, "data"))
			for _, e := range ents {
				os.RemoveAll(filepath.Join(repo, "data", e.Name()))
			}
		}, "lacks segment"},
		{"a few segments deleted", func(t *testing.T, l *lab, repo string) {
			segs := segmentsOf(t, repo)
			for _, s := range segs[1:4] { // old ones, not the last commit
				os.Remove(s)
			}
		}, "segments the nightly left are gone"},
		{"config replaced with garbage", func(t *testing.T, l *lab, repo string) {
			os.WriteFile(filepath.Join(repo, "config"), []byte("\x00garbage\xff\n"), 0o600)
		}, "holds no borg repository"},
		{"index removed", func(t *testing.T, l *lab, repo string) {
			idx, _ := filepath.Glob(filepath.Join(repo, "index.*"))
			for _, p := range idx {
				os.Remove(p)
			}
		}, "no complete transaction"},
		{"latest archive deleted with borg", func(t *testing.T, l *lab, repo string) {
			newest := strings.TrimSpace(l.borg("list", "--short", "--last", "1", repo))
			l.borg("delete", repo+"::"+newest)
		}, "archives the nightly recorded are gone"},
		{"latest archive deleted and compacted with borg", func(t *testing.T, l *lab, repo string) {
			newest := strings.TrimSpace(l.borg("list", "--short", "--last", "1", repo))
			l.borg("delete", repo+"::"+newest)
			l.borg("compact", "--threshold", "0", repo)
		}, "refused:"},
		{"replaced by an empty new repo", func(t *testing.T, l *lab, repo string) {
			os.RemoveAll(repo)
			l.borg("init", "--encryption=repokey-blake2", repo)
		}, "it was replaced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, pi := newOffsiteLab(t, labOptions{maxDelete: 5})
			repo := filepath.Join(l.mnt, "system")
			for i := range 2 {
				l.night(i)
				if err := jobs.Sync(ctx(), l.env); err != nil {
					t.Fatalf("sync %d: %v", i, err)
				}
			}
			l.mails(0)
			nas, off := filepath.Join(l.nas, "backups/system"), filepath.Join(pi.root, "system")
			nasBefore, offBefore := treeSums(t, nas), treeSums(t, off)
			if nasBefore != treeSums(t, repo) || offBefore != nasBefore {
				t.Fatal("the mirrors were not byte-identical to the repo before the damage")
			}
			if n := strings.Count(nasBefore, "\ndata/"); n < 6 {
				t.Fatalf("only %d segments: the damage needs more", n)
			}
			tc.damage(t, l, repo)
			if err := jobs.Sync(ctx(), l.env); err == nil {
				t.Fatal("the sync mirrored a damaged source")
			}
			m := l.mails(1)
			wantMail(t, m[0], "[BACKUP] john-ai OFFSITE SYNC FAILED", "--- system -> "+l.nas+"/backups ---", "--- system -> pi:/mnt/backup ---",
				tc.reason, "the mirror of it was left as it was")
			if got := treeSums(t, nas); got != nasBefore {
				t.Errorf("the NAS mirror changed:\nbefore\n%s\nafter\n%s", nasBefore, got)
			}
			if got := treeSums(t, off); got != offBefore {
				t.Errorf("the offsite mirror changed:\nbefore\n%s\nafter\n%s", offBefore, got)
			}
			rec, _ := l.env.Store.Load("sync")
			var st state.SyncStats
			decode(rec, &st)
			for _, ms := range st.Mirrors {
				if len(ms.Refused) != 1 || ms.Heartbeat.After(rec.Started) {
					t.Errorf("mirror %s: %+v", ms.Name, ms)
				}
			}
		})
	}
}

// TestSyncFollowsCompaction: the guard must not stand in the way of what
// borg itself does. Nights that prune and compact every time free
// segments; each sync deletes them from both mirrors, which stay
// byte-identical to the repo.
func TestSyncFollowsCompaction(t *testing.T) {
	l, pi := newOffsiteLab(t, labOptions{compactDaily: true, retention: "{daily: 1, weekly: 0, monthly: 0}", maxDelete: 50})
	repo := filepath.Join(l.mnt, "system")
	freed := 0
	for i := range 4 {
		before := segmentsOf(t, repo)
		l.night(i)
		after := segmentsOf(t, repo)
		for _, s := range before {
			if !contains(after, s) {
				freed++
			}
		}
		if err := jobs.Sync(ctx(), l.env); err != nil {
			t.Fatalf("sync after night %d: %v\n%s", i, err, l.log.String())
		}
		want := treeSums(t, repo)
		if got := treeSums(t, filepath.Join(l.nas, "backups/system")); got != want {
			t.Fatalf("night %d: the NAS mirror differs:\n%s\n---\n%s", i, got, want)
		}
		if got := treeSums(t, filepath.Join(pi.root, "system")); got != want {
			t.Fatalf("night %d: the offsite mirror differs", i)
		}
	}
	if freed == 0 {
		t.Fatal("no night freed a segment: the test proves nothing")
	}
	l.mails(0)
	t.Logf("%d segments freed by compaction, deleted from both mirrors", freed)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestNightlyWillNotBuildOnLostSegments: segments gone from the repo
// with no borg run since (deleted by hand, a bad disk) make the nightly
// refuse to write to it: a new archive would refer to chunks that are gone.
func TestNightlyWillNotBuildOnLostSegments(t *testing.T) {
	l := newLab(t, labOptions{})
	for i := range 3 {
		l.night(i)
	}
	repo := filepath.Join(l.mnt, "system")
	segs := segmentsOf(t, repo)
	os.Remove(segs[1])
	before := l.archives("system")
	time.Sleep(1100 * time.Millisecond)
	if err := jobs.Nightly(ctx(), l.env); err == nil {
		t.Fatal("the nightly wrote to a repo that lost segments")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP FAILED", "1 segments the last nightly left in "+repo+" are gone",
		"no borg run since explains it", "--accept-source system")
	if n := l.archives("system"); n != before {
		t.Fatalf("%d archives, %d before", n, before)
	}
}

// TestAcceptSource is the way out of a refusal for a change the operator
// made: an archive deleted and compacted by hand. The nightly warns, the
// sync refuses and leaves the mirrors alone; after --accept-source the
// sync records the repo as it is and mirrors it, deletions included.
func TestAcceptSource(t *testing.T) {
	l, pi := newOffsiteLab(t, labOptions{})
	for i := range 2 {
		l.night(i)
		if err := jobs.Sync(ctx(), l.env); err != nil {
			t.Fatal(err)
		}
	}
	repo := filepath.Join(l.mnt, "system")
	oldest := strings.Fields(l.borg("list", "--short", repo))[0]
	l.borg("delete", repo+"::"+oldest)
	l.borg("compact", "--threshold", "0", repo)
	time.Sleep(1100 * time.Millisecond)
	var w *jobs.WarningsError
	if err := jobs.Nightly(ctx(), l.env); !errors.As(err, &w) {
		t.Fatalf("nightly after a change by hand: %v", err)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP COMPLETED WITH WARNINGS", "removed by a borg run outside borgkit", oldest)
	nasBefore := treeSums(t, filepath.Join(l.nas, "backups/system"))
	if err := jobs.Sync(ctx(), l.env); err == nil {
		t.Fatal("the sync carried an unaccepted change to the mirrors")
	}
	l.mails(1)
	if treeSums(t, filepath.Join(l.nas, "backups/system")) != nasBefore {
		t.Fatal("the refused sync changed the NAS mirror")
	}
	l.env.AcceptSource = []string{"system"}
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("the accepted sync: %v\n%s", err, l.log.String())
	}
	l.mails(0)
	l.env.AcceptSource = nil
	want := treeSums(t, repo)
	if treeSums(t, filepath.Join(l.nas, "backups/system")) != want || treeSums(t, filepath.Join(pi.root, "system")) != want {
		t.Fatal("after --accept-source the mirrors differ from the repo")
	}
	// The record is the repo's again: the next night and sync are quiet.
	l.night(9)
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("the sync after the accepted one: %v", err)
	}
	l.mails(0)
}

// TestSyncRefusesMoreDeletionsThanMaxDelete: nights that prune and compact
// leave the NAS mirror with more files to delete than its max_delete. The
// sync refuses before rsync, which would otherwise delete up to the limit
// and stop, leaving a mirror half old, half new; with the limit raised to
// the count, the mirror follows the repo.
func TestSyncRefusesMoreDeletionsThanMaxDelete(t *testing.T) {
	l := newLab(t, labOptions{compactDaily: true, retention: "{daily: 1, weekly: 0, monthly: 0}"})
	repo, nas := filepath.Join(l.mnt, "system"), filepath.Join(l.nas, "backups/system")
	l.night(0)
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	for i := 1; i < 4; i++ {
		l.night(i)
	}
	l.mails(0)
	inRepo := map[string]bool{}
	for _, line := range strings.Split(treeSums(t, repo), "\n") {
		inRepo[strings.Fields(line)[0]] = true
	}
	deletions := 0
	for _, line := range strings.Split(treeSums(t, nas), "\n") {
		if !inRepo[strings.Fields(line)[0]] {
			deletions++
		}
	}
	if deletions < 2 {
		t.Fatalf("only %d files to delete from the mirror: the test needs more", deletions)
	}
	m := &l.env.Host.Mirrors[0]
	m.MaxDelete = deletions - 1
	before := treeSums(t, nas)
	if err := jobs.Sync(ctx(), l.env); err == nil {
		t.Fatal("the sync deleted more files than max_delete allows")
	}
	mail := l.mails(1)
	wantMail(t, mail[0], "[BACKUP] john-ai OFFSITE SYNC FAILED",
		fmt.Sprintf("%d files would be deleted from the mirror, more than max_delete (%d)", deletions, deletions-1),
		"the mirror of it was left as it was")
	if got := treeSums(t, nas); got != before {
		t.Fatalf("the refused sync changed the NAS mirror:\nbefore\n%s\nafter\n%s", before, got)
	}
	m.MaxDelete = deletions
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("sync within max_delete: %v\n%s", err, l.log.String())
	}
	l.mails(0)
	if treeSums(t, nas) != treeSums(t, repo) {
		t.Fatal("after a sync within max_delete the NAS mirror differs from the repo")
	}
}

// TestNASMirrorIsByteIdenticalEachNight: the NAS mirror is size_only, and
// borg rewrites the repo's nonce in place at the same size each night. The
// mirror must match the repo byte for byte after every sync, not only
// after the next one: a mirror restored with an old nonce and written to
// would reuse AES-CTR nonces.
func TestNASMirrorIsByteIdenticalEachNight(t *testing.T) {
	l := newLab(t, labOptions{})
	repo, nas := filepath.Join(l.mnt, "system"), filepath.Join(l.nas, "backups/system")
	var nonces []string
	for i := range 3 {
		l.night(i)
		if err := jobs.Sync(ctx(), l.env); err != nil {
			t.Fatalf("sync after night %d: %v\n%s", i, err, l.log.String())
		}
		want, got := treeSums(t, repo), treeSums(t, nas)
		if got != want {
			t.Fatalf("night %d: the NAS mirror differs from the repo:\nrepo\n%s\nmirror\n%s", i, want, got)
		}
		nonce, err := os.ReadFile(filepath.Join(repo, "nonce"))
		if err != nil {
			t.Fatalf("the repo has no nonce file: %v", err)
		}
		nonces = append(nonces, string(nonce))
	}
	l.mails(0)
	if nonces[0] == nonces[1] && nonces[1] == nonces[2] {
		t.Fatalf("the nonce never changed (%q): the test proves nothing", nonces[0])
	}
	if len(nonces[0]) != len(nonces[2]) {
		t.Fatalf("the nonce changed size (%q, %q): a size-only copy would have caught it", nonces[0], nonces[2])
	}
}
