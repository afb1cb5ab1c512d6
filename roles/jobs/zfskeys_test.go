package jobs_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/roles/jobs"
)

// zfsState answers `zfs get -H -o property,value PROPS NAME` from a table
// of datasets; load-key and mount succeed and change the table, as zfs
// would (a root's key opens the datasets below it). A dataset missing from the table does not exist.
func zfsState(datasets map[string]map[string]string) func([]string) (host.Result, error) {
	return func(argv []string) (host.Result, error) {
		name := argv[len(argv)-1]
		d, ok := datasets[name]
		if !ok {
			err := fmt.Sprintf("cannot open '%s': dataset does not exist\n", name)
			return host.Result{ExitCode: 1, Stderr: []byte(err)}, &host.ExitError{Argv: argv, ExitCode: 1}
		}
		switch argv[1] {
		case "get":
			var out strings.Builder
			for _, p := range strings.Split(argv[len(argv)-2], ",") {
				fmt.Fprintf(&out, "%s\t%s\n", p, d[p])
			}
			return host.Result{Stdout: []byte(out.String())}, nil
		case "load-key":
			if d["fail"] != "" {
				return host.Result{ExitCode: 255, Stderr: []byte("Key load error: " + d["fail"] + "\n")}, errors.New("exit 255")
			}
			// Datasets below an encryption root share its key.
			for n, c := range datasets {
				if n == name || strings.HasPrefix(n, name+"/") {
					c["keystatus"] = "available"
				}
			}
		case "mount":
			d["mounted"] = "yes"
		}
		return host.Result{}, nil
	}
}

// After a boot the archive host's encrypted datasets are locked and
// unmounted; the boot job loads the keyfile's key and mounts them, parents
// first, and leaves alone what it cannot or need not open.
func TestLoadZFSKeys(t *testing.T) {
	locked := func() map[string]map[string]string {
		return map[string]map[string]string{
			"tank/Secure":        {"keystatus": "unavailable", "mounted": "no", "canmount": "on"},
			"tank/Secure/backup": {"keystatus": "unavailable", "mounted": "no", "canmount": "on"},
			"tank/Secure/Borg":   {"keystatus": "unavailable", "mounted": "no", "canmount": "on"},
		}
	}
	tests := []struct {
		name     string
		datasets map[string]map[string]string
		changes  []string // the load-key and mount calls, in order
		mail     bool
	}{
		{"locked after a boot", locked(), []string{
			"zfs load-key tank/Secure",
			"zfs mount tank/Secure", "zfs mount tank/Secure/Borg", "zfs mount tank/Secure/backup"}, false},
		{"already open: nothing to do", map[string]map[string]string{
			"tank/Secure":        {"keystatus": "available", "mounted": "yes", "canmount": "on"},
			"tank/Secure/backup": {"keystatus": "available", "mounted": "yes", "canmount": "on"},
			"tank/Secure/Borg":   {"keystatus": "available", "mounted": "yes", "canmount": "on"},
		}, nil, false},
		{"pull target not received yet", func() map[string]map[string]string {
			d := locked()
			delete(d, "tank/Secure/backup")
			return d
		}(), []string{"zfs load-key tank/Secure", "zfs mount tank/Secure", "zfs mount tank/Secure/Borg"}, false},
		{"the keyfile does not open it: reported, nothing mounted", func() map[string]map[string]string {
			d := locked()
			d["tank/Secure"]["fail"] = "Incorrect key provided for 'tank/Secure'."
			return d
		}(), []string{"zfs load-key tank/Secure"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, rec, sink := archiveEnv(t, zfsState(tt.datasets))
			err := jobs.LoadZFSKeys(ctx(), e)
			if (err != nil) != tt.mail {
				t.Fatalf("LoadZFSKeys: %v", err)
			}
			var changes []string
			for _, c := range rec.Calls() {
				if c[1] == "load-key" || c[1] == "mount" {
					changes = append(changes, strings.Join(c, " "))
				}
			}
			if strings.Join(changes, "\n") != strings.Join(tt.changes, "\n") {
				t.Errorf("ran:\n%s\nwant:\n%s", strings.Join(changes, "\n"), strings.Join(tt.changes, "\n"))
			}
			if !tt.mail {
				if n := len(sink.Messages()); n != 0 {
					t.Errorf("%d mails", n)
				}
				return
			}
			msgs, err := sink.WaitFor(1, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(msgs[0].Text(), "Incorrect key provided") {
				t.Errorf("mail does not say why:\n%s", msgs[0].Text())
			}
		})
	}
}
