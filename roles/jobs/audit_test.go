package jobs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
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
		err := jobs.Audit(ctx(), l.env)
		rec, _ := l.env.Store.Load("audit")
		var st state.AuditStats
		decode(rec, &st)
		for _, c := range st.Copies {
			t.Logf("day %2d: %-7s %d of %d segments hashed, %d bytes read on the copy, %d of the source, in %s; %.0f%% covered",
				d+1, c.Name, c.HashedFiles, c.Files, c.HashedBytes, c.SourceBytes, c.Duration.Round(time.Millisecond), 100*c.Covered)
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
		if c.Covered < 0.5 || c.LastMismatch.IsZero() || len(c.LastMismatchFiles) != 1 {
			t.Errorf("copy %s after %d days: %+v", c.Name, cover, c)
		}
	}
}

func orBig(n int) int {
	if n == 0 {
		return 1 << 30
	}
	return n
}
