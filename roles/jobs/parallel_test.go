package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// parts are the repos besides system in the five-repo lab, as in the first
// seed: five repos on one backup disk.
var parts = []string{"p1", "p2", "p3", "p4"}

// fiveRepoLab is the lab with five repos on its backup disk, each with a
// source of its own, and the broken repo after them.
func fiveRepoLab(t *testing.T) *lab {
	l := newLab(t, labOptions{extraRepo: true, repos: func(l *lab) string {
		var b strings.Builder
		for _, p := range parts {
			src := filepath.Join(l.dir, "src", p)
			os.MkdirAll(src, 0o700)
			for i := range 30 {
				data := bytes.Repeat([]byte(fmt.Sprintf("%s file %d\n", p, i)), 2000+i*300)
				os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), data, 0o644)
			}
			pass := filepath.Join(l.dir, "keys", p+".pass")
			pp, _ := steps.Passphrase()
			os.WriteFile(pass, pp, 0o600)
			fmt.Fprintf(&b, `
      - name: %s
        path: %s/%s
        sources: [%s]
        encryption: repokey-blake2
        passphrase_file: %s`, p, l.mnt, p, src, pass)
		}
		return b.String()
	}})
	for _, p := range parts {
		repo := filepath.Join(l.mnt, p)
		c := exec.Command("borg", "init", "--encryption=repokey-blake2", repo)
		c.Env = append(host.Environ(borg.Inherited...), l.repoEnv(p)...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("borg init %s: %v\n%s", p, err, out)
		}
		// Room for a segment on the small test disk, as newLab does.
		cfg := filepath.Join(repo, "config")
		b, _ := os.ReadFile(cfg)
		os.WriteFile(cfg, bytes.Replace(b, []byte("max_segment_size = 524288000"), []byte("max_segment_size = 8388608"), 1), 0o600)
	}
	return l
}

func (l *lab) repoEnv(repo string) []string {
	return borg.OnHost(host.NewLocal("t"), filepath.Join(l.dir, "keys", repo+".pass")).Vars()
}

// contents is every archive of repo, oldest first, each as the listing of
// its files (path, size, mode, mtime), without the archive's name.
func (l *lab) contents(repo string) []string {
	l.t.Helper()
	run := func(args ...string) string {
		c := exec.Command("borg", args...)
		c.Env = append(host.Environ(borg.Inherited...), l.repoEnv(repo)...)
		out, err := c.CombinedOutput()
		if err != nil {
			l.t.Fatalf("borg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	path := filepath.Join(l.mnt, repo)
	var out []string
	for _, a := range strings.Fields(run("list", "--short", path)) {
		out = append(out, run("list", "--format", "{mode} {size} {mtime} {path}{NL}", path+"::"+a))
	}
	return out
}

// TestNightlyParallelSameAsSequential backs up the five repos one after
// another, then two at once: the second night must leave what the first
// did (the same archives of the same files, the same records, the mail's
// sections in the same order), with each repo's log in one piece, and
// must really have overlapped.
func TestNightlyParallelSameAsSequential(t *testing.T) {
	l := fiveRepoLab(t)
	repos := append([]string{"system"}, parts...)
	night := func(n int, nightly *config.Nightly) (*state.Record, state.NightlyStats, string, string) {
		t.Helper()
		l.env.Host.Nightly = nightly
		l.log.Reset()
		time.Sleep(1100 * time.Millisecond) // archive names have a second's resolution
		if err := jobs.Nightly(ctx(), l.env); err == nil {
			t.Fatalf("night %d: the broken repo did not fail the night", n)
		}
		rec, err := l.env.Store.Load("nightly")
		if err != nil {
			t.Fatal(err)
		}
		var st state.NightlyStats
		json.Unmarshal(rec.Stats, &st)
		m := l.mails(1)[0]
		return rec, st, strings.ReplaceAll(m.Body, "\r\n", "\n"), l.log.String()
	}
	_, seqStats, seqMail, _ := night(1, nil)
	seqArchives := map[string][]string{}
	for _, r := range repos {
		seqArchives[r] = l.contents(r)
		if len(seqArchives[r]) != 1 {
			t.Fatalf("%s: %d archives after the first night", r, len(seqArchives[r]))
		}
	}

	rec, parStats, parMail, log := night(2, &config.Nightly{Parallel: 2})

	for _, r := range repos {
		got := l.contents(r)
		if len(got) != 2 || got[1] != seqArchives[r][0] {
			t.Errorf("%s: the parallel night's archive differs from the sequential one's (%d archives)\n%s\n---\n%s",
				r, len(got), seqArchives[r][0], got[len(got)-1])
		}
		rr, err := l.env.Store.LoadRepo(r)
		if err != nil || len(rr.Archives) != 2 {
			t.Errorf("%s: record %+v, %v", r, rr, err)
		}
	}
	names := func(st state.NightlyStats) (out []string) {
		for _, r := range st.Repos {
			out = append(out, r.Name+":"+r.Status)
		}
		return out
	}
	if !slices.Equal(names(parStats), names(seqStats)) {
		t.Errorf("dashboard repos %v, sequentially %v", names(parStats), names(seqStats))
	}
	if h, s := sectionHeads(parMail), sectionHeads(seqMail); !slices.Equal(h, s) {
		t.Errorf("mail sections %v, sequentially %v", h, s)
	}

	// The repos overlapped: their durations add up to more than the night.
	var sum time.Duration
	for _, r := range parStats.Repos {
		sum += r.Duration
	}
	if wall := rec.Finished.Sub(rec.Started); sum <= wall {
		t.Errorf("the repos' durations add up to %s, the night took %s: nothing ran at once", sum, wall)
	}
	if !strings.Contains(log, "6 repos, up to 2 at once (2 per disk;") {
		t.Errorf("the log does not say what ran at once:\n%s", log)
	}
	// Each repo's lines are together: once another repo's begin, its own
	// do not come back.
	var seen []string
	pathRE := regexp.MustCompile(regexp.QuoteMeta(l.mnt) + `/([a-z0-9]+)`)
	for _, line := range strings.Split(log, "\n") {
		m := pathRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if n := len(seen); n > 0 && seen[n-1] == m[1] {
			continue
		}
		if slices.Contains(seen, m[1]) {
			t.Fatalf("repo %s's log lines are split by another's (order %v, then %s):\n%s", m[1], seen, m[1], log)
		}
		seen = append(seen, m[1])
	}
	if len(seen) != len(repos) { // broken runs no borg: no line names it
		t.Errorf("the log names repos %v", seen)
	}
}

var sectionRE = regexp.MustCompile(`(?m)^--- (.*) ---$`)

func sectionHeads(mail string) (out []string) {
	for _, m := range sectionRE.FindAllStringSubmatch(mail, -1) {
		out = append(out, m[1])
	}
	return out
}

// borgsOn lists the borg processes whose argv names a path under dir.
func borgsOn(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(argv) > 1 && strings.Contains(strings.Join(argv, " "), "borg") && strings.Contains(strings.Join(argv[1:], " "), dir) {
			out = append(out, strings.Join(argv, " "))
		}
	}
	return out
}

// TestNightlyParallelCancelStopsEveryBorg: the job's context ends (what
// SIGTERM does) while two repos are being backed up: both borgs are
// killed, and no repo starts after it.
func TestNightlyParallelCancelStopsEveryBorg(t *testing.T) {
	l := fiveRepoLab(t)
	l.env.Host.Nightly = &config.Nightly{Parallel: 2}
	c, cancel := context.WithCancel(ctx())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- jobs.Nightly(c, l.env) }()
	deadline := time.Now().Add(60 * time.Second)
	for len(borgsOn(l.mnt)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("never two borgs at once: %v", borgsOn(l.mnt))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled night succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the nightly still runs 30s after the cancel: %v", borgsOn(l.mnt))
	}
	if left := borgsOn(l.mnt); len(left) > 0 {
		t.Fatalf("borg still running after the job returned: %v", left)
	}
	var st state.NightlyStats
	rec, _ := l.env.Store.Load("nightly")
	json.Unmarshal(rec.Stats, &st)
	for _, r := range st.Repos {
		if r.Status != "failed" {
			t.Errorf("%s: %s after the cancel", r.Name, r.Status)
		}
	}
	// The mail goes out through the signal's own context, not this one:
	// the log shows which repos ran borg at all.
	ran := map[string]bool{}
	for _, m := range regexp.MustCompile(regexp.QuoteMeta(l.mnt)+`/([a-z0-9]+)`).FindAllStringSubmatch(l.log.String(), -1) {
		ran[m[1]] = true
	}
	if len(ran) != 2 {
		t.Errorf("borg ran on %v, want the two running at the cancel only", ran)
	}
	if !strings.Contains(l.log.String(), "repos, up to 2 at once") {
		t.Errorf("the night did not run repos at once:\n%s", l.log.String())
	}
}
