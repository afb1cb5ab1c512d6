package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
)

// Store is the directory of job records.
type Store struct {
	// Dir defaults to layout.StateDir.
	Dir string
	// Host is written into records; default os.Hostname().
	Host string
	// Alive reports whether the process that wrote a running record still
	// runs; default ProcessAlive. Tests replace it.
	Alive func(r *Record) bool
	// Now defaults to time.Now.
	Now func() time.Time
	// Finished, when set, is told of the record a run ends with, once it
	// is on disk, whether Finish or a caught signal ended it (not when a
	// second signal cuts the first one's report short, nor for a run Reap
	// closes later): the jobs' pings and Prometheus textfile hang on it.
	Finished func(rec Record)
}

// Bounds on what a record carries: a state file is read by the dashboard on
// every call, and a log tail is there to show why, not to be the log.
const (
	MaxLogTail     = 40
	maxLogLine     = 500
	maxMessage     = 4 << 10
	dirLockTimeout = 10 * time.Second
)

// ErrFinished is returned by Finish on a run already finished, typically by
// the signal handler while the job was unwinding; callers may ignore it.
var ErrFinished = errors.New("run already finished")

// RunningError is Begin refusing to start a job whose previous run is
// still alive: two runs would overwrite each other's record.
type RunningError struct{ Record *Record }

func (e *RunningError) Error() string {
	return fmt.Sprintf("job %s is already running as pid %d since %s",
		e.Record.Job, e.Record.PID, e.Record.Started.Format("2006-01-02 15:04:05"))
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) alive(r *Record) bool {
	if s.Alive != nil {
		return s.Alive(r)
	}
	return ProcessAlive(r)
}

// lockDir serialises read-modify-write of records between processes (two
// jobs starting at once, the stale check reaping while a job begins).
func (s *Store) lockDir() (*Flock, error) {
	if err := os.MkdirAll(s.dir(), 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return Lock(filepath.Join(s.dir(), ".lock"), dirLockTimeout)
}

// Run is a job's run in progress.
type Run struct {
	// Abandoned is the previous run's record when it was left running by a
	// process that is gone (SIGKILL, OOM, power loss): the caller should
	// send TERMINATED ABNORMALLY for it. Begin has replaced it on disk.
	Abandoned *Record
	// PrevErr says the previous record could not be read (it is replaced,
	// and with it the time of the last success); worth a log line.
	PrevErr error

	store *Store
	mu    sync.Mutex
	rec   Record
	done  bool
}

// Begin records that job starts now in this process. It refuses, with a
// *RunningError, while the previous run's process is still alive.
func (s *Store) Begin(job string) (*Run, error) {
	job, err := JobName(job)
	if err != nil {
		return nil, err
	}
	l, err := s.lockDir()
	if err != nil {
		return nil, fmt.Errorf("begin %s: %w", job, err)
	}
	defer l.Unlock()

	r := &Run{store: s}
	prev, err := s.load(job)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		r.PrevErr = err
	case prev.Status == Running && s.alive(prev):
		return nil, &RunningError{Record: prev}
	case prev.Status == Running:
		r.Abandoned = prev
	}

	host := s.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	self := Self()
	r.rec = Record{
		Job: job, Status: Running, PID: self.PID, Host: host, Started: s.now(),
		BootID: self.BootID, ProcStart: self.ProcStart,
	}
	if prev != nil {
		r.rec.LastSuccess = prev.LastSuccess
	}
	if err := s.write(&r.rec); err != nil {
		return nil, fmt.Errorf("begin %s: %w", job, err)
	}
	return r, nil
}

func (s *Store) write(r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state of %s: %w", r.Job, err)
	}
	if err := writeFileAtomic(s.path(r.Job), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write state of %s: %w", r.Job, err)
	}
	return nil
}

// Record is a copy of the run's record as it stands.
func (r *Run) Record() Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec
}

// Finish records how the run ended. stats is JSON-encoded into Stats (nil
// for none); message and logTail are cut to size and scrubbed of anything
// that looks like a password. A second Finish returns ErrFinished.
func (r *Run) Finish(status Status, exitCode int, message string, stats any, logTail []string) error {
	return r.finish(status, exitCode, message, stats, logTail, "")
}

func (r *Run) finish(status Status, exitCode int, message string, stats any, logTail []string, signal string) error {
	rec, written, err := r.write(status, exitCode, message, stats, logTail, signal)
	if written && r.store.Finished != nil {
		r.store.Finished(rec)
	}
	return err
}

// write puts the run's end on disk; written says whether it got there.
func (r *Run) write(status Status, exitCode int, message string, stats any, logTail []string, signal string) (_ Record, written bool, _ error) {
	if !status.valid() || status == Running {
		return Record{}, false, fmt.Errorf("finish %s: status %q is not an end state", r.rec.Job, status)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return Record{}, false, fmt.Errorf("finish %s as %s: %w", r.rec.Job, status, ErrFinished)
	}
	r.done = true
	rec := r.rec
	rec.Status, rec.ExitCode, rec.Signal = status, exitCode, signal
	rec.Finished = r.store.now()
	rec.Duration = rec.Finished.Sub(rec.Started).Round(time.Millisecond)
	rec.Message = scrub(truncate(message, maxMessage))
	rec.LogTail = Tail(logTail)
	if status.Succeeded() {
		rec.LastSuccess = rec.Finished
	}
	var statsErr error
	if stats != nil {
		b, err := json.Marshal(stats)
		if err != nil {
			// The record still gets written: a run left "running" would
			// later be reported as killed.
			statsErr = fmt.Errorf("finish %s: encode stats: %w", rec.Job, err)
		} else {
			rec.Stats = b
		}
	}
	if err := r.store.write(&rec); err != nil {
		return Record{}, false, fmt.Errorf("finish %s: %w", rec.Job, err)
	}
	r.rec = rec
	return rec, true, statsErr
}

// Abandoned lists running records whose process is gone, by job: runs that
// died without a word. The stale check reports them, then calls Reap.
func (s *Store) Abandoned() ([]*Record, error) {
	all, err := s.LoadAll()
	var out []*Record
	for _, j := range Jobs(all) {
		if r := all[j]; r.Status == Running && !s.alive(r) {
			out = append(out, r)
		}
	}
	return out, err
}

// Reap marks job's abandoned run terminated, so that it is reported once:
// it returns the record as it was, or nil when the job is not (or no
// longer) an abandoned run.
func (s *Store) Reap(job string) (*Record, error) {
	job, err := JobName(job)
	if err != nil {
		return nil, err
	}
	l, err := s.lockDir()
	if err != nil {
		return nil, fmt.Errorf("reap %s: %w", job, err)
	}
	defer l.Unlock()
	prev, err := s.load(job)
	if err != nil {
		return nil, fmt.Errorf("reap %s: %w", job, err)
	}
	if prev.Status != Running || s.alive(prev) {
		return nil, nil
	}
	rec := *prev
	rec.Status, rec.ExitCode = Terminated, -1
	rec.Message = fmt.Sprintf("process %d ended without finishing its record (SIGKILL, OOM kill, power loss or crash); found %s",
		prev.PID, s.now().Format("2006-01-02 15:04:05"))
	if err := s.write(&rec); err != nil {
		return nil, fmt.Errorf("reap %s: %w", job, err)
	}
	return prev, nil
}

// secretRE finds "password=...", "BORG_PASSPHRASE: ..." and the like in
// command output. Jobs must not log secrets in the first place; this is the
// net under them, since state files are world readable.
var secretRE = regexp.MustCompile(`(?i)([a-z_]*(?:passphrase|password|passwd|passcommand|secret|token)[a-z_]*)(\s*[=:]\s*)\S+`)

func scrub(s string) string { return secretRE.ReplaceAllString(s, "${1}${2}[redacted]") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + " [...]"
}

// Tail is what a record keeps of a log: the last MaxLogTail lines, each cut
// to size and scrubbed of anything that looks like a password. The same
// goes for a log that leaves the machine (a ping's body).
func Tail(lines []string) []string {
	if len(lines) > MaxLogTail {
		lines = lines[len(lines)-MaxLogTail:]
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, scrub(truncate(strings.TrimRight(l, "\r\n"), maxLogLine)))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Process identifies a process across pid reuse.
type Process struct {
	PID       int
	BootID    string
	ProcStart uint64
}

var (
	selfOnce sync.Once
	self     Process
)

// Self is this process.
func Self() Process {
	selfOnce.Do(func() {
		self.PID = os.Getpid()
		self.BootID = bootID()
		if st, err := readStat(self.PID); err == nil {
			self.ProcStart = st.start
		}
	})
	return self
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ProcessAlive reports whether the process that wrote r still runs. With
// the boot id and start time recorded it compares them, which survives pid
// reuse; otherwise it settles for a live pid whose command line mentions
// borgkit. A zombie is dead: it will never finish the record.
func ProcessAlive(r *Record) bool {
	if r.PID <= 0 {
		return false
	}
	if r.BootID != "" && r.BootID != Self().BootID {
		return false // written before a reboot
	}
	st, err := readStat(r.PID)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		// /proc hidden from us (hidepid): assume alive rather than cry
		// "killed" about a job that may be running.
		return true
	}
	if st.state == 'Z' || st.state == 'X' {
		return false
	}
	if r.ProcStart != 0 {
		return st.start == r.ProcStart
	}
	return cmdlineContains(r.PID, "borgkit")
}

type procStat struct {
	state byte
	start uint64
}

// readStat parses /proc/PID/stat: state is field 3, starttime field 22.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return procStat{state: f[0][0], start: start}, nil
}

func cmdlineContains(pid int, word string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(word))
}

// reportPath is where the server keeps offsite host's last watchdog report.
func (s *Store) reportPath(host string) (string, error) {
	if _, err := JobName(host); err != nil {
		return "", fmt.Errorf("watchdog report of %q: not a host name", host)
	}
	return filepath.Join(s.dir(), layout.WatchdogReports, host+".json"), nil
}

// SaveWatchdogReport keeps r as its host's last watchdog report, replacing
// the one before atomically. World readable, as the records are: the
// dashboard reads it.
func (s *Store) SaveWatchdogReport(r WatchdogReport) error {
	p, err := s.reportPath(r.Host)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("watchdog reports: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(p, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("keep the watchdog report of %s: %w", r.Host, err)
	}
	return nil
}

// LoadWatchdogReport is host's last watchdog report; an error wrapping
// fs.ErrNotExist when it never reported.
func (s *Store) LoadWatchdogReport(host string) (*WatchdogReport, error) {
	p, err := s.reportPath(host)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var r WatchdogReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("watchdog report %s: %w", p, err)
	}
	return &r, nil
}
