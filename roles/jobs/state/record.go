package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
)

// Status is how a run stands.
type Status string

const (
	Running Status = "running"
	OK      Status = "ok"
	Failed  Status = "failed"
	// Aborted is a run a pre-flight check stopped before it did anything.
	Aborted Status = "aborted"
	// Warning is a run that did its work but has something to say (disk
	// space low): it counts as a success.
	Warning Status = "warning"
	// Terminated is a run killed before it finished: by a signal it caught,
	// or found later with its process gone.
	Terminated Status = "terminated"
)

// Succeeded reports whether the run did its work (ok or warning): what the
// stale check and borgkit_last_success_timestamp_seconds count.
func (s Status) Succeeded() bool { return s == OK || s == Warning }

func (s Status) valid() bool {
	switch s {
	case Running, OK, Failed, Aborted, Warning, Terminated:
		return true
	}
	return false
}

// Record is one job's last run, as stored in DIR/JOB.json. It is world
// readable (the dashboard runs unprivileged): no secret may go in it.
type Record struct {
	Job    string `json:"job"`
	Status Status `json:"status"`
	PID    int    `json:"pid"`
	Host   string `json:"host,omitempty"`
	// Started is when the run began; Finished is zero while it runs and for
	// a run whose process vanished.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// ExitCode is the job's exit status: 128+N when killed by signal N, -1
	// when unknown (the process vanished).
	ExitCode int `json:"exit_code"`
	// Duration is stored as duration_seconds.
	Duration time.Duration `json:"-"`
	Message  string        `json:"message,omitempty"`
	// Stats is the job's own summary (borg --stats figures, repos synced),
	// JSON the dashboard decodes into the job's type.
	Stats   json.RawMessage `json:"stats,omitempty"`
	LogTail []string        `json:"log_tail,omitempty"`
	// Signal names the signal that terminated the run ("SIGTERM").
	Signal string `json:"signal,omitempty"`
	// LastSuccess is when a run of this job last succeeded, carried from
	// record to record: the stale check measures from it, not from the
	// latest run, which may have failed.
	LastSuccess time.Time `json:"last_success,omitzero"`

	// BootID and ProcStart (the kernel's start time of PID, in clock ticks
	// since boot) tell the run's own process from a later one that got
	// the same pid: pids are reused, and after a reboot they start over.
	BootID    string `json:"boot_id,omitempty"`
	ProcStart uint64 `json:"proc_start,omitempty"`
}

// recordFields is Record without its methods, for the JSON coding below.
type recordFields Record

// MarshalJSON writes Duration as duration_seconds: people and the
// dashboard read seconds, not Go's nanoseconds.
func (r Record) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		recordFields
		DurationSeconds float64 `json:"duration_seconds"`
	}{recordFields(r), r.Duration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Record) UnmarshalJSON(b []byte) error {
	v := struct {
		*recordFields
		DurationSeconds float64 `json:"duration_seconds"`
	}{recordFields: (*recordFields)(r)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.Duration = time.Duration(v.DurationSeconds * float64(time.Second)).Round(time.Millisecond)
	return nil
}

var jobRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_]*$`)

// JobName is the canonical name of job, the one its file and metrics use:
// "restore-test" and "restore_test" are one job, as in config schedules.
// Anything that is not a plain name is refused, so a job name can never
// reach outside the state directory.
func JobName(job string) (string, error) {
	n := layout.JobKey(job)
	if len(n) > 64 || !jobRE.MatchString(n) {
		return "", fmt.Errorf("job name %q: want lower-case letters, digits, '-' and '_'", job)
	}
	return n, nil
}

func (s *Store) dir() string {
	if s.Dir == "" {
		return layout.StateDir
	}
	return s.Dir
}

// File is the path of another file kept in the state directory.
func (s *Store) File(name string) string { return filepath.Join(s.dir(), name) }

func (s *Store) path(job string) string { return filepath.Join(s.dir(), job+".json") }

// JobPath is where job's record lies.
func (s *Store) JobPath(job string) (string, error) {
	n, err := JobName(job)
	if err != nil {
		return "", err
	}
	return s.path(n), nil
}

// Path is the state directory.
func (s *Store) Path() string { return s.dir() }

// Load reads job's record; for a job that never ran the error wraps
// fs.ErrNotExist.
func (s *Store) Load(job string) (*Record, error) {
	n, err := JobName(job)
	if err != nil {
		return nil, err
	}
	return s.load(n)
}

func (s *Store) load(job string) (*Record, error) {
	b, err := os.ReadFile(s.path(job))
	if err != nil {
		return nil, fmt.Errorf("read state of %s: %w", job, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read state of %s: %s: %w", job, s.path(job), err)
	}
	if r.Job != job {
		return nil, fmt.Errorf("read state of %s: %s is the record of job %q", job, s.path(job), r.Job)
	}
	return &r, nil
}

// LoadAll reads every record in the directory, keyed by job. A missing
// directory is no jobs run yet; unreadable records are left out of the map
// and named in the error, so one bad file does not hide the others.
func (s *Store) LoadAll() (map[string]*Record, error) {
	ents, err := os.ReadDir(s.dir())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state directory: %w", err)
	}
	out := map[string]*Record{}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		job, ok := strings.CutSuffix(name, ".json")
		if !ok || strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
			continue // temp files, the lock, whatever else lives here
		}
		if _, err := JobName(job); err != nil {
			continue
		}
		r, err := s.load(job)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[job] = r
	}
	return out, errors.Join(errs...)
}

// Jobs lists the keys of recs in order, for stable output.
func Jobs(recs map[string]*Record) []string {
	jobs := make([]string, 0, len(recs))
	for j := range recs {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	return jobs
}

// writeFileAtomic replaces path so that readers see the old or the new
// content, never a mix. host.WriteFile does the same but keeps the previous
// content as path.borgkit-old, which a record rewritten twice per run and a
// textfile rewritten after every job do not want.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	// A dot name that does not end in .json or .prom: LoadAll and the
	// node_exporter textfile collector skip it.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename survives a power cut only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
