package jobs_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/steps"
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

// zfsRecorded runs every program for real except zfs, which the recorder
// answers (there is no ZFS here), and keeps the order of all of them.
type zfsRecorded struct {
	host.Host
	zfs   *recorder.Host
	mu    sync.Mutex
	calls []string
}

func (h *zfsRecorded) Run(ctx context.Context, c host.Cmd) (host.Result, error) {
	call := strings.Join(c.Argv, " ")
	if c.Argv[0] == "borg" {
		// borg's own arguments vary (archive names with the time); what
		// matters here is which borg command ran, and from where.
		call = "borg " + c.Argv[1]
		if c.Dir != "" {
			call += " in " + c.Dir
		}
	}
	h.mu.Lock()
	h.calls = append(h.calls, call)
	h.mu.Unlock()
	if c.Argv[0] == "zfs" {
		return h.zfs.Run(ctx, c)
	}
	return h.Host.Run(ctx, c)
}

// snapshotLab is the archive host's nightly with real borg on a repo in a
// temporary directory and a recorded zfs whose snapshot is a frozen copy
// of the dataset's directory under .zfs/snapshot, holding one file the live
// directory does not have.
type snapshotLab struct {
	env  *jobs.Env
	h    *zfsRecorded
	live string // the dataset's mountpoint
	repo string
	pass string
	mail string // what the job mailed
}

func newSnapshotLab(t *testing.T, reply func(l *snapshotLab, argv []string) (host.Result, error)) *snapshotLab {
	t.Helper()
	need(t, "borg")
	dir := t.TempDir()
	l := &snapshotLab{live: filepath.Join(dir, "tank/Secure/backup"), repo: filepath.Join(dir, "backup-repo"), pass: filepath.Join(dir, "backup-repo.pass")}
	os.MkdirAll(l.live, 0o700)
	os.WriteFile(filepath.Join(l.live, "data.txt"), []byte("live data\n"), 0o600)
	p, _ := steps.Passphrase()
	os.WriteFile(l.pass, p, 0o600)
	src := strings.NewReplacer(
		"path: /tank/Secure/Borg/backup-repo", "path: "+l.repo,
		"sources: [/tank/Secure/backup]", "sources: ['"+l.live+"']",
		"        snapshot: tank/Secure/backup", "        passphrase_file: "+l.pass+"\n        snapshot: tank/Secure/backup",
	).Replace(string(config.Example()))
	cfg, err := config.Parse("example.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command("borg", "init", "--encryption=repokey-blake2", l.repo)
	c.Env = append(host.Environ(borg.Inherited...), borg.OnHost(host.NewLocal("t"), l.pass).Vars()...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("borg init: %v\n%s", err, out)
	}
	a, _ := cfg.Host("archive")
	l.h = &zfsRecorded{Host: host.NewLocal("archive")}
	l.h.zfs = recorder.New(l.h.Host, func(argv []string) (host.Result, error) { return reply(l, argv) })
	l.env = &jobs.Env{Cfg: cfg, Host: a, Exec: l.h, Store: &state.Store{Dir: filepath.Join(dir, "state"), Host: "archive"},
		LockPath: filepath.Join(dir, "lock")}
	l.env.Defaults()
	// The alert mail, kept whole: what failed is in its sections.
	l.mail = filepath.Join(dir, "mail")
	l.env.Mailer.Sendmail = []string{"/bin/sh", "-c", `cat >> "$0"`, l.mail}
	return l
}

func (l *snapshotLab) snapDir() string {
	return filepath.Join(l.live, ".zfs/snapshot", layout.NightlySnapshot)
}

// zfsWorks answers as a healthy pool would.
func zfsWorks(l *snapshotLab, argv []string) (host.Result, error) {
	switch argv[1] {
	case "get":
		return host.Result{Stdout: []byte(l.live + "\n")}, nil
	case "snapshot":
		os.MkdirAll(l.snapDir(), 0o700)
		os.WriteFile(filepath.Join(l.snapDir(), "data.txt"), []byte("live data\n"), 0o600)
		os.WriteFile(filepath.Join(l.snapDir(), "frozen.txt"), []byte("only in the snapshot\n"), 0o600)
		return host.Result{}, nil
	case "destroy":
		if _, err := os.Stat(l.snapDir()); err != nil {
			return host.Result{ExitCode: 1, Stderr: []byte("could not find any snapshots to destroy; check snapshot names.\n")}, &host.ExitError{Argv: argv, ExitCode: 1}
		}
		os.RemoveAll(l.snapDir())
	}
	return host.Result{}, nil
}

func TestNightlyArchivesFromTheSnapshot(t *testing.T) {
	const ds = "tank/Secure/backup"
	snap := ds + "@" + layout.NightlySnapshot
	// The mountpoint is read first, then a snapshot a killed run left is
	// replaced by a new one.
	prefix := []string{"zfs get -H -p -o value mountpoint " + ds, "zfs destroy " + snap, "zfs snapshot " + snap}
	tests := []struct {
		name  string
		reply func(l *snapshotLab, argv []string) (host.Result, error)
		setup func(l *snapshotLab)
		want  func(l *snapshotLab) []string // every program run, in order
		fails string                        // part of the failed section; "" when the run is good
	}{
		{"snapshot then create from it then prune then destroy it", zfsWorks, nil,
			func(l *snapshotLab) []string {
				return append(slices.Clone(prefix), "borg create in "+l.snapDir(), "borg prune", "zfs destroy "+snap)
			}, ""},
		{"borg create fails: the snapshot is still destroyed and nothing pruned", zfsWorks,
			func(l *snapshotLab) { os.WriteFile(l.pass, []byte("not the passphrase\n"), 0o600) },
			func(l *snapshotLab) []string {
				return append(slices.Clone(prefix), "borg create in "+l.snapDir(), "zfs destroy "+snap)
			}, "Backup: backup-repo"},
		{"snapshot fails: no create and nothing destroyed after", func(l *snapshotLab, argv []string) (host.Result, error) {
			if argv[1] == "snapshot" {
				return host.Result{ExitCode: 1, Stderr: []byte("cannot create snapshot: out of space\n")}, &host.ExitError{Argv: argv, ExitCode: 1}
			}
			return zfsWorks(l, argv)
		}, nil, func(*snapshotLab) []string { return prefix }, "out of space"},
		{"no mountpoint: nothing snapshotted", func(l *snapshotLab, argv []string) (host.Result, error) {
			return host.Result{Stdout: []byte("legacy\n")}, nil
		}, nil, func(*snapshotLab) []string { return prefix[:1] }, "has mountpoint=legacy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newSnapshotLab(t, tt.reply)
			if tt.setup != nil {
				tt.setup(l)
			}
			err := jobs.Nightly(ctx(), l.env)
			var got []string
			for _, c := range l.h.calls {
				if c != "borg compact" { // compaction runs on its own weekdays
					got = append(got, c)
				}
			}
			if want := tt.want(l); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if _, serr := os.Stat(l.snapDir()); serr == nil {
				t.Errorf("the snapshot is left behind")
			}
			rec, _ := l.env.Store.Load("nightly")
			if tt.fails == "" {
				if err != nil || rec.Status != state.OK {
					t.Fatalf("%v %s", err, rec.Status)
				}
				// borg read the frozen copy: the file only the snapshot has
				// is in the archive, under the dataset's own layout.
				c := exec.Command("borg", "list", "--short", l.repo+"::"+strings.TrimSpace(lastArchive(t, l)))
				c.Env = append(host.Environ(borg.Inherited...), borg.OnHost(host.NewLocal("t"), l.pass).Vars()...)
				out, lerr := c.CombinedOutput()
				if lerr != nil || !strings.Contains(string(out), "frozen.txt\n") || strings.Contains(string(out), "/") {
					t.Fatalf("archive holds %v\n%s", lerr, out)
				}
				return
			}
			mail, _ := os.ReadFile(l.mail)
			if err == nil || rec.Status != state.Failed || !strings.Contains(string(mail), "NIGHTLY BACKUP FAILED") || !strings.Contains(string(mail), tt.fails) {
				t.Fatalf("a failure was not reported: %v %s\n%s", err, rec.Status, mail)
			}
		})
	}
}

func lastArchive(t *testing.T, l *snapshotLab) string {
	t.Helper()
	c := exec.Command("borg", "list", "--short", "--last", "1", l.repo)
	c.Env = append(host.Environ(borg.Inherited...), borg.OnHost(host.NewLocal("t"), l.pass).Vars()...)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("borg list: %v\n%s", err, out)
	}
	return string(out)
}
