package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// clock is a Store.Now that advances one step per call.
func clock(start time.Time, step time.Duration) func() time.Time {
	t := start.Add(-step)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

var t0 = time.Date(2026, 6, 12, 0, 0, 1, 0, time.UTC)

type nightlyStats struct {
	Repos    int    `json:"repos"`
	Original uint64 `json:"original_bytes"`
}

func TestBeginFinish(t *testing.T) {
	s := &Store{Dir: t.TempDir(), Host: "john-ai", Now: clock(t0, 10*time.Minute+32*time.Second)}
	run, err := s.Begin("nightly")
	if err != nil {
		t.Fatal(err)
	}
	if run.Abandoned != nil || run.PrevErr != nil {
		t.Errorf("first run: abandoned %v, prev %v", run.Abandoned, run.PrevErr)
	}
	path := filepath.Join(s.Dir, "nightly.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("record file: %v %v", fi, err)
	}
	got, err := s.Load("nightly")
	if err != nil {
		t.Fatal(err)
	}
	self := Self()
	if got.Status != Running || got.PID != os.Getpid() || got.Host != "john-ai" || !got.Started.Equal(t0) ||
		got.ProcStart != self.ProcStart || got.ProcStart == 0 || got.BootID == "" {
		t.Errorf("running record = %+v", got)
	}

	tailLines := []string{"Archive name: nightly-2026-06-12T00:00", "BORG_PASSPHRASE=hunter2 leaked\n"}
	if err := run.Finish(OK, 0, "all repos backed up", nightlyStats{Repos: 5, Original: 1 << 40}, tailLines); err != nil {
		t.Fatal(err)
	}
	got, err = s.Load("nightly")
	if err != nil {
		t.Fatal(err)
	}
	end := t0.Add(10*time.Minute + 32*time.Second)
	if got.Status != OK || !got.Finished.Equal(end) || got.Duration != 10*time.Minute+32*time.Second ||
		!got.LastSuccess.Equal(end) || got.Message != "all repos backed up" {
		t.Errorf("finished record = %+v", got)
	}
	if want := []string{"Archive name: nightly-2026-06-12T00:00", "BORG_PASSPHRASE=[redacted] leaked"}; !slices.Equal(got.LogTail, want) {
		t.Errorf("log tail = %q, want %q", got.LogTail, want)
	}
	var st nightlyStats
	if err := json.Unmarshal(got.Stats, &st); err != nil || st.Repos != 5 {
		t.Errorf("stats = %s (%v)", got.Stats, err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"duration_seconds": 632`) {
		t.Errorf("record lacks duration_seconds:\n%s", raw)
	}
	if err := run.Finish(Failed, 1, "", nil, nil); !errors.Is(err, ErrFinished) {
		t.Errorf("second Finish = %v, want ErrFinished", err)
	}
	if err := run.Finish(Running, 0, "", nil, nil); err == nil {
		t.Error("Finish(Running) accepted")
	}

	// A failed run keeps the time of the last success.
	run2, err := s.Begin("nightly")
	if err != nil {
		t.Fatal(err)
	}
	if err := run2.Finish(Failed, 2, "borg create failed", nil, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Load("nightly")
	if got.Status != Failed || !got.LastSuccess.Equal(end) || got.ExitCode != 2 {
		t.Errorf("after a failed run: %+v", got)
	}
}

func TestFinishStatsError(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	run, err := s.Begin("sync")
	if err != nil {
		t.Fatal(err)
	}
	err = run.Finish(OK, 0, "", map[string]any{"bad": make(chan int)}, nil)
	if err == nil || !strings.Contains(err.Error(), "encode stats") {
		t.Errorf("Finish = %v, want a stats error", err)
	}
	if r, _ := s.Load("sync"); r == nil || r.Status != OK {
		t.Errorf("record not finished despite the stats error: %+v", r)
	}
}

func TestBeginPrevious(t *testing.T) {
	tests := []struct {
		name        string
		prev        string // file content; "" for none
		alive       bool
		wantRunning bool
		wantAband   bool
		wantPrevErr bool
	}{
		{"none", "", false, false, false, false},
		{"finished", `{"job":"sync","status":"ok","pid":1,"started":"2026-06-11T02:00:00Z","last_success":"2026-06-11T02:10:00Z"}`, false, false, false, false},
		{"running alive", `{"job":"sync","status":"running","pid":4242,"started":"2026-06-12T02:00:00Z"}`, true, true, false, false},
		{"running dead", `{"job":"sync","status":"running","pid":4242,"started":"2026-06-12T02:00:00Z"}`, false, false, true, false},
		{"corrupt", `{"job":`, false, false, false, true},
		{"someone else's", `{"job":"nightly","status":"running","pid":4242}`, false, false, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{Dir: t.TempDir(), Alive: func(*Record) bool { return tc.alive }}
			if tc.prev != "" {
				if err := os.WriteFile(filepath.Join(s.Dir, "sync.json"), []byte(tc.prev), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run, err := s.Begin("sync")
			var re *RunningError
			if tc.wantRunning {
				if !errors.As(err, &re) || re.Record.PID != 4242 || !strings.Contains(err.Error(), "already running as pid 4242") {
					t.Fatalf("Begin = %v, want a RunningError", err)
				}
				if r, _ := s.Load("sync"); r.PID != 4242 {
					t.Error("refused Begin still replaced the record")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (run.Abandoned != nil) != tc.wantAband {
				t.Errorf("Abandoned = %+v", run.Abandoned)
			}
			if tc.wantAband && run.Abandoned.PID != 4242 {
				t.Errorf("Abandoned pid = %d", run.Abandoned.PID)
			}
			if (run.PrevErr != nil) != tc.wantPrevErr {
				t.Errorf("PrevErr = %v", run.PrevErr)
			}
			if tc.name == "finished" && !run.Record().LastSuccess.Equal(time.Date(2026, 6, 11, 2, 10, 0, 0, time.UTC)) {
				t.Errorf("LastSuccess not carried: %v", run.Record().LastSuccess)
			}
		})
	}
}

func TestAbandonedAndReap(t *testing.T) {
	dead := map[int]bool{7: true}
	s := &Store{Dir: t.TempDir(), Alive: func(r *Record) bool { return !dead[r.PID] }, Now: clock(t0, time.Hour)}
	for _, rec := range []string{
		`{"job":"nightly","status":"running","pid":7,"started":"2026-06-12T00:00:00Z"}`,
		`{"job":"sync","status":"running","pid":8,"started":"2026-06-12T02:00:00Z"}`,
		`{"job":"check","status":"ok","pid":7,"started":"2026-06-06T09:00:00Z"}`,
	} {
		var r Record
		if err := json.Unmarshal([]byte(rec), &r); err != nil {
			t.Fatal(err)
		}
		if err := s.write(&r); err != nil {
			t.Fatal(err)
		}
	}
	ab, err := s.Abandoned()
	if err != nil {
		t.Fatal(err)
	}
	if len(ab) != 1 || ab[0].Job != "nightly" {
		t.Fatalf("Abandoned = %+v, want nightly only", ab)
	}
	r, err := s.Reap("nightly")
	if err != nil || r == nil || r.Status != Running || r.PID != 7 {
		t.Fatalf("Reap = %+v, %v", r, err)
	}
	if r, err := s.Reap("nightly"); r != nil || err != nil {
		t.Errorf("second Reap = %+v, %v; want nothing: report once", r, err)
	}
	if r, err := s.Reap("sync"); r != nil || err != nil {
		t.Errorf("Reap of a live run = %+v, %v", r, err)
	}
	got, _ := s.Load("nightly")
	if got.Status != Terminated || got.ExitCode != -1 || !strings.Contains(got.Message, "process 7 ended") {
		t.Errorf("reaped record = %+v", got)
	}
	if ab, _ := s.Abandoned(); len(ab) != 0 {
		t.Errorf("after Reap: Abandoned = %+v", ab)
	}
}

func TestLoadAll(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	if all, err := (&Store{Dir: filepath.Join(s.Dir, "missing")}).LoadAll(); err != nil || len(all) != 0 {
		t.Errorf("missing dir: %v, %v", all, err)
	}
	for _, job := range []string{"nightly", "restore-test"} {
		run, err := s.Begin(job)
		if err != nil {
			t.Fatal(err)
		}
		run.Finish(OK, 0, "", nil, nil)
	}
	for name, content := range map[string]string{
		"check.json":               "not json",
		".nightly.json.tmp-123":    "{}",
		"notes.txt":                "hello",
		"Bad Name.json":            "{}",
		"verify.json.borgkit-old":  "{}",
		"summary.json/placeholder": "",
	} {
		p := filepath.Join(s.Dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if !strings.HasSuffix(name, "/placeholder") {
			os.WriteFile(p, []byte(content), 0o644)
		}
	}
	all, err := s.LoadAll()
	if err == nil || !strings.Contains(err.Error(), "check") {
		t.Errorf("LoadAll error = %v, want one naming check", err)
	}
	if got := Jobs(all); !slices.Equal(got, []string{"nightly", "restore_test"}) {
		t.Errorf("jobs = %q", got)
	}
	if _, err := s.Load("summary"); err == nil {
		t.Error("Load of a directory succeeded")
	}
	if _, err := s.Load("stale"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a job never run = %v, want ErrNotExist", err)
	}
}

func TestJobName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"nightly", "nightly", true},
		{"restore-test", "restore_test", true},
		{"restore_test", "restore_test", true},
		{"smart_long", "smart_long", true},
		{"", "", false},
		{"../etc/passwd", "", false},
		{"a/b", "", false},
		{"Nightly", "", false},
		{"_x", "", false},
		{".lock", "", false},
		{strings.Repeat("a", 65), "", false},
	} {
		got, err := JobName(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("JobName(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestScrubAndTail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"BORG_PASSPHRASE=hunter2", "BORG_PASSPHRASE=[redacted]"},
		{"password: s3cret rest", "password: [redacted] rest"},
		{"smtp_password=x y", "smtp_password=[redacted] y"},
		{"api_token = abc", "api_token = [redacted]"},
		{"Archive fingerprint: 1234", "Archive fingerprint: 1234"},
		{"no secrets here", "no secrets here"},
	} {
		if got := scrub(tc.in); got != tc.want {
			t.Errorf("scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprint("line ", i))
	}
	lines = append(lines, strings.Repeat("x", 2000))
	got := Tail(lines)
	if len(got) != MaxLogTail || got[0] != fmt.Sprint("line ", 101-MaxLogTail) {
		t.Errorf("tail kept %d lines starting %q", len(got), got[0])
	}
	if l := got[len(got)-1]; len(l) > maxLogLine+10 || !strings.HasSuffix(l, "[...]") {
		t.Errorf("long line not cut: %d bytes", len(l))
	}
	if Tail(nil) != nil {
		t.Error("empty tail is not nil")
	}
}

func TestProcessAlive(t *testing.T) {
	self := Self()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gone := cmd.Process.Pid
	for _, tc := range []struct {
		name string
		r    Record
		want bool
	}{
		{"self", Record{PID: self.PID, BootID: self.BootID, ProcStart: self.ProcStart}, true},
		{"reused pid", Record{PID: self.PID, BootID: self.BootID, ProcStart: self.ProcStart + 1}, false},
		{"before a reboot", Record{PID: self.PID, BootID: "00000000-0000-0000-0000-000000000000", ProcStart: self.ProcStart}, false},
		{"exited", Record{PID: gone, BootID: self.BootID, ProcStart: 1}, false},
		{"no pid", Record{}, false},
		// Without a start time only a borgkit command line counts, and the
		// test binary is not one.
		{"old record, not borgkit", Record{PID: self.PID}, false},
	} {
		if got := ProcessAlive(&tc.r); got != tc.want {
			t.Errorf("%s: ProcessAlive = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !cmdlineContains(self.PID, filepath.Base(os.Args[0])) {
		t.Error("cmdlineContains misses the test binary's own name")
	}
}

func TestReadStatOddName(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	dir := t.TempDir()
	odd := filepath.Join(dir, "a) b (c")
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	st, err := readStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.start == 0 || (st.state != 'S' && st.state != 'R') {
		t.Errorf("stat of %q = %+v", odd, st)
	}
}
