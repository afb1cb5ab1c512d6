package adopt

import (
	"testing"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/legacy"
)

// Jobs are told apart by what they run and, failing that, by the words of
// their names, never by an option: Debian's own /etc/crontab (run-parts
// --report) is no summary job of the old setup's.
func TestClassifyServerByName(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"17 * * * * root cd / && run-parts --report /etc/cron.hourly", ""},
		{"47 6 * * 7 root test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }", ""},
		{"0 8 * * 1 root /usr/local/bin/backup-status --email >> /var/log/backup-summary.log 2>&1", layout.JobSummary},
		{"0 8 * * 1 root /usr/local/bin/weekly-report.sh", layout.JobSummary},
		{"0 */6 * * * root /usr/local/bin/backup-stale-check.sh", layout.JobStale},
	} {
		es := legacy.CronFile("/etc/crontab", []byte(tc.line+"\n"), true)
		if len(es) != 1 {
			t.Fatalf("%q: %d entries", tc.line, len(es))
		}
		j := &legacy.Job{Entry: es[0], Scripts: []*legacy.Script{legacy.ParseShell(es[0].File, []byte(es[0].Command), nil)}}
		if got, _ := classifyServer(j); got != tc.want {
			t.Errorf("%q: classified %q, want %q", tc.line, got, tc.want)
		}
	}
}
