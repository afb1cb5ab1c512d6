package jobs_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/testing/recorder"
	"github.com/borgkit/borgkit/testing/smtpsink"
)

// archiveEnv runs the archive host's jobs against scripted zpool, smartctl
// and syncoid (there is no pool or SMART disk here) and the real msmtp.
// edits are pairs of replacements in the example config.
func archiveEnv(t *testing.T, reply func([]string) (host.Result, error), edits ...string) (*jobs.Env, *recorder.Host, *smtpsink.Sink) {
	t.Helper()
	need(t, "msmtp")
	cfg, err := config.Parse("example.yaml", []byte(strings.NewReplacer(edits...).Replace(string(config.Example()))))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := cfg.Host("archive")
	sink := smtpsink.Start(t)
	m := alert.ForHost(cfg, h)
	m.Sendmail = []string{"/usr/bin/msmtp", "-C", sink.MsmtpConfig(t), "--read-envelope-from", "-t"}
	rec := recorder.New(host.NewLocal("archive"), reply)
	e := &jobs.Env{Cfg: cfg, Host: h, Mailer: m, Exec: rec, Store: &state.Store{Dir: t.TempDir(), Host: "archive"},
		LockPath: filepath.Join(t.TempDir(), "lock")}
	e.Defaults()
	return e, rec, sink
}

func argvs(calls [][]string) string {
	var s []string
	for _, c := range calls {
		s = append(s, strings.Join(c, " "))
	}
	return strings.Join(s, "\n")
}

func TestArchiveJobs(t *testing.T) {
	healthy := func(argv []string) (host.Result, error) {
		switch strings.Join(argv[:2], " ") {
		case "zpool status":
			return host.Result{Stdout: []byte("pool 'tank' is healthy\n")}, nil
		case "smartctl --scan":
			return host.Result{Stdout: []byte("/dev/sda -d sat # /dev/sda [SAT], ATA device\n")}, nil
		case "smartctl -H":
			return host.Result{Stdout: []byte("SMART overall-health self-assessment test result: PASSED\n")}, nil
		}
		return host.Result{}, nil
	}
	const pullFlags = "--no-sync-snap --no-resume --compress=none --no-privilege-elevation --sshkey /root/.ssh/borgkit_ed25519 --sshoption=BatchMode=yes"
	pull := func(e *jobs.Env) error { return jobs.Pull(ctx(), e, "/root/.ssh/borgkit_ed25519") }
	tests := []struct {
		name  string
		run   func(*jobs.Env) error
		reply func([]string) (host.Result, error)
		argv  string
		mail  string
		edits []string
	}{
		{"scrub", func(e *jobs.Env) error { return jobs.Scrub(ctx(), e) }, healthy,
			"zpool status -x tank\nzpool scrub tank", "", nil},
		{"degraded pool is reported, not scrubbed", func(e *jobs.Env) error { return jobs.Scrub(ctx(), e) },
			func(argv []string) (host.Result, error) {
				return host.Result{Stdout: []byte("  pool: tank\n state: DEGRADED\n")}, nil
			}, "zpool status -x tank", "[BACKUP] archive SCRUB FAILED", nil},
		{"smart short", func(e *jobs.Env) error { return jobs.SmartTest(ctx(), e, false) }, healthy,
			"smartctl --scan\nsmartctl -H /dev/sda\nsmartctl -t short /dev/sda", "", nil},
		{"smart health failing", func(e *jobs.Env) error { return jobs.SmartTest(ctx(), e, true) },
			func(argv []string) (host.Result, error) {
				if argv[1] == "--scan" {
					return host.Result{Stdout: []byte("/dev/sdb -d sat\n")}, nil
				}
				return host.Result{ExitCode: 8, Stdout: []byte("SMART overall-health self-assessment test result: FAILED!\n")}, errors.New("exit 8")
			}, "smartctl --scan\nsmartctl -H /dev/sdb", "[BACKUP] archive SMART LONG FAILED", nil},
		{"pull", pull, healthy,
			"syncoid " + pullFlags + " root@100.64.0.10:tank/data tank/Secure/backup", "", nil},
		// A live server named in the file: its address and SSH port.
		{"pull from a server host", pull, healthy,
			"syncoid " + pullFlags + " --sshport 2222 root@100.64.0.1:tank/data tank/Secure/backup", "",
			[]string{"      host: 100.64.0.10\n", "      host: john-ai\n", "    ssh:\n      # john-ai's host key", "    ssh:\n      port: 2222\n      # john-ai's host key"}},
		{"pull failing", pull,
			func(argv []string) (host.Result, error) {
				return host.Result{ExitCode: 2, Stderr: []byte("CRITICAL ERROR: ssh connection echo test failed\n")}, errors.New("exit 2")
			}, "syncoid " + pullFlags + " root@100.64.0.10:tank/data tank/Secure/backup", "[BACKUP] archive PULL FAILED", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, rec, sink := archiveEnv(t, tt.reply, tt.edits...)
			err := tt.run(e)
			if got := argvs(rec.Calls()); got != tt.argv {
				t.Errorf("ran\n%s\nwant\n%s", got, tt.argv)
			}
			if tt.mail == "" {
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(200 * time.Millisecond)
				if m := sink.Messages(); len(m) != 0 {
					t.Fatalf("mail on success: %q", m[0].Subject)
				}
				return
			}
			if err == nil {
				t.Fatal("a failure was not reported")
			}
			m, werr := sink.WaitFor(1, 10*time.Second)
			if werr != nil || m[0].Subject != tt.mail {
				t.Fatalf("mail: %v %v", werr, m)
			}
		})
	}
}
