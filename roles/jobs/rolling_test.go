package jobs

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// TestAuditShareCoversEverySegment runs the audit's choice of segments
// over 120 simulated days at the default cover period: new segments every
// night, a compaction that drops some now and then, a night the server is
// off. Every segment must be compared within 30 days of the last time (or
// of its arrival), and a night must read about 1/30 of the bytes.
func TestAuditShareCoversEverySegment(t *testing.T) {
	const cover = config.DefaultAuditCoverDays
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 1, 1, 4, 0, 0, 0, time.UTC)
	files := map[string]state.CoveredFile{}
	next := 0
	add := func(now time.Time, n int) {
		for range n {
			files[fmt.Sprintf("data/%d/%d", next/1000, next)] = state.CoveredFile{Size: 1 + rng.Int64N(500<<20), Seen: now}
			next++
		}
	}
	add(start, 400)
	var worst time.Duration
	var maxShare float64
	for day := range 120 {
		// A run starts within an hour or so of its time.
		now := start.Add(time.Duration(day)*24*time.Hour + time.Duration(rng.IntN(90))*time.Minute)
		add(now, 1+rng.IntN(4))
		if day%7 == 6 { // compaction: a few old segments go
			for p := range files {
				if rng.IntN(20) == 0 {
					delete(files, p)
				}
			}
		}
		if day == 50 || day == 51 {
			continue // the server was off for two nights
		}
		var total, read int64
		for _, f := range files {
			total += f.Size
		}
		a := &auditor{cover: cover * 24 * time.Hour, now: now}
		for _, p := range a.due(files) {
			f := files[p]
			read += f.Size
			f.Verified = now
			files[p] = f
		}
		for p, f := range files {
			age := now.Sub(since(f))
			if age > cover*24*time.Hour {
				t.Fatalf("day %d: %s last compared %s ago, over %d days", day, p, age, cover)
			}
			worst = max(worst, age)
		}
		if day > 60 {
			maxShare = max(maxShare, float64(read)/float64(total))
		}
	}
	// Whole files of up to 500 MB: a night reads its share plus one file.
	if maxShare > 2.5/cover {
		t.Fatalf("a night read %.1f%% of the bytes; the share is %.1f%%", 100*maxShare, 100.0/cover)
	}
	t.Logf("oldest comparison at any night: %s; largest nightly share after day 60: %.2f%% (1/%d = %.2f%%)", worst.Round(time.Hour), 100*maxShare, cover, 100.0/cover)
}

// TestRollingVerifyRotation: with the period at 30 days, three repos are
// verified one a night at first, then each again before 30 days pass,
// never two on one night, and a failed repo comes back the next night.
func TestRollingVerifyRotation(t *testing.T) {
	repos := []config.Repo{{Name: "system"}, {Name: "vms"}, {Name: "media"}}
	prev := map[string]state.RepoCheck{}
	start := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)
	last := map[string]time.Time{}
	for day := range 100 {
		now := start.Add(time.Duration(day) * 24 * time.Hour)
		due := dueVerify(repos, prev, now, 30*24*time.Hour)
		if len(due) > 1 {
			t.Fatalf("day %d: %d repos verified in one night", day, len(due))
		}
		for _, r := range due {
			prev[r.Name] = state.RepoCheck{Name: r.Name, Status: "ok", At: now}
			last[r.Name] = now
		}
		if day == 40 { // a verify of vms found damage
			prev["vms"] = state.RepoCheck{Name: "vms", Status: "failed", At: now}
		}
		for _, r := range repos {
			if l, ok := last[r.Name]; day >= 3 && (!ok || now.Sub(l) >= 30*24*time.Hour) {
				t.Fatalf("day %d: %s last verified %v", day, r.Name, l)
			}
		}
		if day == 41 && !slices.ContainsFunc(due, func(r config.Repo) bool { return r.Name == "vms" }) {
			t.Fatalf("day 41: the repo that failed on day 40 is not verified again (%v)", due)
		}
	}
}

func TestPruneLists(t *testing.T) {
	// borg 1.2.4's own lines.
	out := []byte(`Keeping archive (rule: daily #1):        nightly-2026-12-02T06:36:35          Wed, 2026-12-02 06:36:43 [46e3a7382a31c339fe753d865b2552885805491672159e706050971f6c9e1949]
Pruning archive (1/1):                   nightly-2026-12-02T06:34:29          Wed, 2026-12-02 06:34:36 [fed6092f7f6e016a0b5ce86c77fdf8cfc820a7aded6fd85cc00f9f122dd25c4c]
Keeping archive (rule: daily[oldest] #2): nightly-2026-12-02T06:33:06          Wed, 2026-12-02 06:33:09 [39bc2aab626894d4d297f98efe875cadc6a12bcf06a3168bbc12382474d278e8]
`)
	kept, pruned := pruneLists(out)
	if !slices.Equal(kept, []string{"nightly-2026-12-02T06:36:35", "nightly-2026-12-02T06:33:06"}) || !slices.Equal(pruned, []string{"nightly-2026-12-02T06:34:29"}) {
		t.Fatalf("kept %v pruned %v", kept, pruned)
	}
}

func TestJudgeArchive(t *testing.T) {
	p := config.Thresholds{}.SuspiciousOrDefault()
	var recent []state.ArchiveFigures
	for i := range 10 {
		recent = append(recent, state.ArchiveFigures{Archive: fmt.Sprint(i), Files: 10000 + int64(i), OriginalBytes: 50 << 30, NewBytes: 200 << 20})
	}
	for _, tc := range []struct {
		name    string
		now     state.ArchiveFigures
		suspect bool
	}{
		{"an ordinary night", state.ArchiveFigures{Archive: "n", Files: 10020, OriginalBytes: 51 << 30, NewBytes: 300 << 20}, false},
		{"half the files gone", state.ArchiveFigures{Archive: "n", Files: 4000, OriginalBytes: 49 << 30, NewBytes: 10 << 20}, true},
		{"the bytes gone", state.ArchiveFigures{Archive: "n", Files: 10000, OriginalBytes: 10 << 30, NewBytes: 10 << 20}, true},
		{"everything rewritten", state.ArchiveFigures{Archive: "n", Files: 10000, OriginalBytes: 50 << 30, NewBytes: 48 << 30}, true},
		{"a big new file, a normal night otherwise", state.ArchiveFigures{Archive: "n", Files: 10001, OriginalBytes: 58 << 30, NewBytes: 8 << 30}, false},
	} {
		got := judgeArchive("r", recent, tc.now, p)
		if (got != nil) != tc.suspect {
			t.Errorf("%s: %+v", tc.name, got)
		}
	}
	if judgeArchive("r", recent[:3], state.ArchiveFigures{Archive: "n", Files: 1}, p) != nil {
		t.Error("judged with fewer nights than min_nights")
	}
}

// TestSnapshotCoverageFollowsTheName: a snapshot file named tonight from
// a newer snapshot (retention removed the oldest that held it) keeps when
// it was last compared; a segment of another size, or one still listed
// under its old name, starts afresh.
func TestSnapshotCoverageFollowsTheName(t *testing.T) {
	day := time.Date(2026, 6, 1, 3, 0, 0, 0, time.UTC)
	verified := state.CoveredFile{Size: 100, Seen: day, Verified: day.Add(24 * time.Hour)}
	fresh := func(size int64) state.CoveredFile {
		return state.CoveredFile{Size: size, Seen: day.Add(9 * 24 * time.Hour)}
	}
	old := map[string]state.CoveredFile{
		"2026-06-01T030000Z/data/0/5": verified,
		"2026-06-01T030000Z/data/0/6": verified,
		"2026-06-02T030000Z/data/0/7": verified,
	}
	next := map[string]state.CoveredFile{
		"2026-06-03T030000Z/data/0/5": fresh(100), // the same segment, named anew
		"2026-06-03T030000Z/data/0/6": fresh(120), // another size: another file
		"2026-06-02T030000Z/data/0/7": verified,   // still listed by its name
		"2026-06-03T030000Z/data/0/7": fresh(100), // a second inode of it
	}
	carryCoverage(old, next)
	for p, want := range map[string]state.CoveredFile{
		"2026-06-03T030000Z/data/0/5": verified,
		"2026-06-03T030000Z/data/0/6": fresh(120),
		"2026-06-02T030000Z/data/0/7": verified,
		"2026-06-03T030000Z/data/0/7": fresh(100),
	} {
		if next[p] != want {
			t.Errorf("%s: %+v, want %+v", p, next[p], want)
		}
	}
}
