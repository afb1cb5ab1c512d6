package state

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
)

type metric struct {
	name, help string
	// value is the job's sample; ok false leaves the job out.
	value func(r *Record) (v float64, ok bool)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// metrics: exit code and duration describe a finished run, so a running
// job has none (its borgkit_running is 1); last_success is 0 for a job
// that never succeeded, so "time() - x > threshold" alerts on it too.
var metrics = []metric{
	{"borgkit_last_success_timestamp_seconds", "Unix time the job last ended ok or with a warning (0: never).",
		func(r *Record) (float64, bool) {
			if r.LastSuccess.IsZero() {
				return 0, true
			}
			return unixSeconds(r.LastSuccess), true
		}},
	{"borgkit_last_run_timestamp_seconds", "Unix time the job's last run started.",
		func(r *Record) (float64, bool) { return unixSeconds(r.Started), true }},
	{"borgkit_last_exit_code", "Exit code of the job's last finished run (128+N: killed by signal N; -1: vanished).",
		func(r *Record) (float64, bool) { return float64(r.ExitCode), r.Status != Running }},
	{"borgkit_last_duration_seconds", "How long the job's last finished run took.",
		func(r *Record) (float64, bool) {
			return r.Duration.Seconds(), r.Status != Running && !r.Finished.IsZero()
		}},
	{"borgkit_running", "1 while the job's record says it is running.",
		func(r *Record) (float64, bool) {
			if r.Status == Running {
				return 1, true
			}
			return 0, true
		}},
}

// Textfile renders recs in the Prometheus text exposition format, jobs in
// name order.
func Textfile(recs map[string]*Record) []byte {
	var b bytes.Buffer
	jobs := Jobs(recs)
	for _, m := range metrics {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", m.name, m.help, m.name)
		for _, j := range jobs {
			if v, ok := m.value(recs[j]); ok {
				fmt.Fprintf(&b, "%s{job=\"%s\"} %s\n", m.name, labelValue(layout.JobCLI(j)), strconv.FormatFloat(v, 'f', -1, 64))
			}
		}
	}
	return b.Bytes()
}

// labelValue escapes as the exposition format asks; job names are plain
// words today, but the escaping keeps a future one from breaking the file.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// WriteTextfile writes dir/borgkit.prom atomically, so the collector never
// reads half a file.
func WriteTextfile(dir string, recs map[string]*Record) error {
	path := filepath.Join(dir, layout.TextfileName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := writeFileAtomic(path, Textfile(recs), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteTextfile rewrites dir/borgkit.prom from every record in the store.
// The store's lock is held from reading to writing, so two jobs ending at
// once cannot leave the older view of the two in the file.
func (s *Store) WriteTextfile(dir string) error {
	l, err := s.lockDir()
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, layout.TextfileName), err)
	}
	defer l.Unlock()
	recs, err := s.LoadAll()
	if err != nil {
		return err
	}
	return WriteTextfile(dir, recs)
}
