package jobs_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/snapshot"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// flip rewrites bytes in the middle of a file, keeping its size (and its
// mtime: bit rot does not touch it either).
func flip(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	f.ReadAt(b, fi.Size()/2)
	for i := range b {
		b[i] ^= 0xff
	}
	f.WriteAt(b, fi.Size()/2)
	f.Close()
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
}

// TestAuditFindsFlippedSegments is issue 15's proof for the audit: one
// segment flipped on the Pi's copy and another on the NAS copy, both
// invisible to the sync (same size, same mtime), are each found within
// the cover period by audits run one a simulated day, named in a COPY
// MISMATCH mail with the copy, the repo and the file, while each night
// reads only its share.
func TestAuditFindsFlippedSegments(t *testing.T) {
	const cover = 10
	l, pi := newOffsiteLab(t, labOptions{})
	for i := range 3 {
		l.night(i)
		if err := jobs.Sync(ctx(), l.env); err != nil {
			t.Fatal(err)
		}
	}
	l.mails(0)
	repo := filepath.Join(l.mnt, "system")
	segs := segmentsOf(t, repo)
	// The two largest segments, so that neither is hashed on the first
	// night by chance of a small share.
	var big []string
	for _, s := range segs {
		if fi, _ := os.Stat(s); fi.Size() > 1000 {
			big = append(big, strings.TrimPrefix(s, repo+"/"))
		}
	}
	if len(big) < 2 {
		t.Fatalf("only %d segments of any size: %v", len(big), segs)
	}
	nasSeg, piSeg := big[0], big[len(big)-1]
	flipped := map[string]string{"nas": nasSeg, "offsite": piSeg}
	flip(t, filepath.Join(l.nas, "backups/system", nasSeg))
	flip(t, filepath.Join(pi.root, "system", piSeg))
	// The sync sees nothing: its compare is by size, and content only
	// outside data/.
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("the sync noticed the flips: %v", err)
	}
	l.mails(0)

	l.env.Host.Audit = &config.Audit{CoverDays: cover}
	day := time.Now()
	l.env.Now = func() time.Time { return day }
	l.env.Store.Now = l.env.Now
	found := map[string]int{}
	for d := 0; d < cover; d++ {
		st, err := auditDay(t, l, d+1)
		for _, c := range st.Copies {
			if d == 0 && c.HashedBytes > c.Bytes/2 {
				t.Errorf("the first night read %d of %d bytes of %s: not a share", c.HashedBytes, c.Bytes, c.Name)
			}
		}
		if err != nil {
			for _, m := range l.sink.Messages() {
				if m.Subject != "[BACKUP] john-ai COPY MISMATCH" {
					t.Fatalf("mail %q", m.Subject)
				}
				body := strings.ReplaceAll(m.Body, "\r\n", "\n")
				// One section a copy: a flip found on an earlier night is
				// named again until it is repaired, beside the other copy's.
				for _, sec := range strings.Split(body, "\n--- copy ")[1:] {
					name, _, _ := strings.Cut(sec, ",")
					own, ok := flipped[name]
					if !ok || !strings.HasPrefix(sec, name+", repo system:") {
						t.Fatalf("a section for an unknown copy:\n%s", body)
					}
					for other, seg := range flipped {
						if other != name && strings.Contains(sec, "\n  "+seg+": ") {
							t.Fatalf("a good segment was named:\n%s", body)
						}
					}
					if strings.Contains(sec, "\n  "+own+": SHA-256") {
						found[name] = min(orBig(found[name]), d+1)
					}
				}
			}
			l.sink.Reset()
		}
		day = day.Add(24 * time.Hour)
	}
	if found["nas"] == 0 || found["offsite"] == 0 {
		t.Fatalf("within %d days the audit found the NAS flip on day %d and the Pi flip on day %d (0: never)", cover, found["nas"], found["offsite"])
	}
	t.Logf("flipped %s on the NAS, found on day %d; %s on the Pi, found on day %d (cover period %d days)", nasSeg, found["nas"], piSeg, found["offsite"], cover)
	rec, _ := l.env.Store.Load("audit")
	var st state.AuditStats
	decode(rec, &st)
	for _, c := range st.Copies {
		if _, ok := flipped[c.Name]; !ok {
			// The Pi's snapshots: none was taken, so nothing to compare.
			if c.Name != "offsite-snapshots" || c.Status != "ok" || c.Files != 0 {
				t.Errorf("copy %s after %d days: %+v", c.Name, cover, c)
			}
			continue
		}
		if c.Covered < 0.5 || c.LastMismatch.IsZero() || len(c.LastMismatchFiles) != 1 {
			t.Errorf("copy %s after %d days: %+v", c.Name, cover, c)
		}
	}
}

// auditDay runs the audit of day d and logs what it read of each copy.
func auditDay(t *testing.T, l *lab, d int) (state.AuditStats, error) {
	t.Helper()
	err := jobs.Audit(ctx(), l.env)
	rec, _ := l.env.Store.Load("audit")
	var st state.AuditStats
	decode(rec, &st)
	for _, c := range st.Copies {
		t.Logf("day %2d: %-17s %d of %d files hashed, %d bytes read on the copy, %d of the repo, in %s; %.0f%% covered",
			d, c.Name, c.HashedFiles, c.Files, c.HashedBytes, c.SourceBytes, c.Duration.Round(time.Millisecond), 100*c.Covered)
	}
	t.Logf("day %2d: first-seen record: %d segments, %d bytes hashed in the repo", d, st.FirstSeenFiles, st.FirstSeenBytes)
	return st, err
}

func orBig(n int) int {
	if n == 0 {
		return 1 << 30
	}
	return n
}

// TestAuditFindsFlippedSnapshotSegment is issue 15's proof for the Pi's
// snapshots as a copy: nights of backups, syncs through rrsync, the Pi's
// own snapshot after each push and the audit each night, until a
// compaction removes segments from the repo and the mirror, so only the
// snapshots hold them. One of those is flipped on the Pi (bit rot in the
// one inode every snapshot links), and the audit, through the real
// serve-hashes forced command's snapshots root, finds it within the cover
// period against the hash it recorded when the segment was new in the
// repo, and names the snapshot's file in the COPY MISMATCH mail.
func TestAuditFindsFlippedSnapshotSegment(t *testing.T) {
	const cover = 10
	if os.Geteuid() != 0 {
		t.Skip("a snapshot gives files to root and links them by descriptor: needs root")
	}
	l, pi := newOffsiteLab(t, labOptions{})
	// One archive kept, compaction every night: the night before is pruned
	// and its segments removed.
	l.cfg.Retention = config.Retention{Daily: 1}
	l.env.Host.Compaction = &config.Compaction{Weekdays: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, Threshold: 1}
	l.env.Host.Audit = &config.Audit{CoverDays: cover}
	day := time.Now()
	l.env.Now = func() time.Time { return day }
	l.env.Store.Now = l.env.Now
	store := snapshot.For(pi.root, filepath.Dir(pi.root))
	report := func(d int) (state.AuditStats, error) { return auditDay(t, l, d) }
	// The audit's first night, before any backup: the repo's first
	// segments are its backlog, every later one new.
	if _, err := report(0); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 2<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(l.home, "big.bin"), big, 0o644)
	for i := range 3 {
		if i == 1 {
			os.Remove(filepath.Join(l.home, "big.bin"))
		}
		day = day.Add(24 * time.Hour)
		l.night(i)
		if err := jobs.Sync(ctx(), l.env); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
		if _, err := store.Take(ctx(), day); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		if _, err := report(i + 1); err != nil {
			t.Fatalf("audit after night %d: %v", i, err)
		}
	}
	l.mails(0)
	// The segments only the snapshots hold now: compaction removed them
	// from the repo, the sync from the mirror.
	mirrorInodes := map[uint64]bool{}
	for _, p := range segmentsOf(t, filepath.Join(pi.root, "system")) {
		fi, _ := os.Stat(p)
		mirrorInodes[fi.Sys().(*syscall.Stat_t).Ino] = true
	}
	snaps, err := store.List()
	if err != nil || len(snaps) != 3 {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
	var only []string
	var onlyBytes int64
	for _, p := range segmentsOf(t, filepath.Join(snaps[0].Path, "system")) {
		fi, _ := os.Stat(p)
		if !mirrorInodes[fi.Sys().(*syscall.Stat_t).Ino] {
			only = append(only, p)
			onlyBytes += fi.Size()
		}
	}
	if onlyBytes < 1<<20 {
		t.Fatalf("compaction left %d bytes to the snapshots alone (%v): the pruned file's segments are still in the repo", onlyBytes, only)
	}
	victim := only[0]
	for _, p := range only {
		if a, b := fileSize(p), fileSize(victim); a > b {
			victim = p
		}
	}
	rel := snaps[0].Name + "/" + strings.TrimPrefix(victim, filepath.Join(snaps[0].Path, "system")+"/")
	flip(t, victim)

	found := 0
	for d := 4; d < 4+cover; d++ {
		day = day.Add(24 * time.Hour)
		st, err := report(d)
		if err != nil {
			msgs := l.mails(1)
			body := strings.ReplaceAll(msgs[0].Body, "\r\n", "\n")
			if msgs[0].Subject != "[BACKUP] john-ai COPY MISMATCH" || !strings.Contains(body, "\n--- copy offsite-snapshots, repo system: 1 files differ ---\n  "+rel+": SHA-256 ") ||
				!strings.Contains(body, "when first seen in the repo on") || strings.Count(body, "\n--- copy ") != 1 {
				t.Fatalf("day %d: %v; mail %q:\n%s", d, err, msgs[0].Subject, body)
			}
			found = d
			i := slices.IndexFunc(st.Copies, func(c state.CopyAudit) bool { return c.Name == "offsite-snapshots" })
			if i < 0 || st.Copies[i].Status != "mismatch" || len(st.Copies[i].LastMismatchFiles) != 1 || !strings.HasPrefix(st.Copies[i].LastMismatchFiles[0], "system/"+rel+": SHA-256 ") {
				t.Fatalf("day %d: record %+v", d, st.Copies)
			}
			break
		}
	}
	if found == 0 {
		t.Fatalf("the flipped %s (held by the snapshots alone) was not found within %d days", rel, cover)
	}
	t.Logf("%d bytes in %d segments held by the snapshots alone; flipped %s, found %d days later (cover period %d days)", onlyBytes, len(only), rel, found-3, cover)
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return fi.Size()
}
