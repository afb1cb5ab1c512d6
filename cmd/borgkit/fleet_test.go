package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/borgkit/borgkit/provision/config"
)

// TestFleetErr: the exit status of a run over several hosts says whether
// none, some or all failed.
func TestFleetErr(t *testing.T) {
	boom := errors.New("unreachable")
	for _, tc := range []struct {
		name string
		errs []error
		want int
	}{
		{"all ok", []error{nil, nil}, exitOK},
		{"one pending", []error{nil, errPending}, exitPending},
		{"one failed", []error{nil, boom, errPending}, exitSomeFailed},
		{"all failed", []error{boom, boom}, exitFailed},
		{"one host failed", []error{boom}, exitFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res []*fleetHost
			for i, e := range tc.errs {
				res = append(res, &fleetHost{Name: fmt.Sprint("h", i), Err: e})
			}
			if got := exitCode(fleetErr(res)); got != tc.want {
				t.Errorf("exit %d, want %d", got, tc.want)
			}
		})
	}
}

// TestRunFleetBounded: never more than parallel hosts at once, every host
// run even after one fails, sections whole.
func TestRunFleetBounded(t *testing.T) {
	var now, most atomic.Int32
	names := []string{"a", "b", "c", "d", "e", "f", "g"}
	var out strings.Builder
	res := runFleet(context.Background(), names, nil, 3, &out, textSection, func(_ context.Context, name string, w, _ io.Writer) error {
		n := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		for i := 0; i < 50; i++ {
			fmt.Fprintf(w, "%s line %d\n", name, i)
		}
		if name == "b" {
			return errors.New("b is down")
		}
		return nil
	})
	if most.Load() > 3 {
		t.Errorf("%d hosts at once, want at most 3", most.Load())
	}
	for i, h := range res {
		if h.Name != names[i] {
			t.Errorf("result %d is %s, want %s", i, h.Name, names[i])
		}
	}
	// Each section is one run of lines of its own host.
	cur := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "==== ") {
			cur = strings.Trim(l, "= ")
			continue
		}
		if l != "" && !strings.HasPrefix(l, cur+" line") && !strings.HasPrefix(l, "borgkit: "+cur) {
			t.Fatalf("line %q in the section of %s", l, cur)
		}
	}
	if got := exitCode(fleetErr(res)); got != exitSomeFailed {
		t.Errorf("exit %d, want %d", got, exitSomeFailed)
	}
	if !strings.Contains(out.String(), "borgkit: b: b is down") {
		t.Errorf("b's error is not in its section:\n%s", out.String())
	}
}

// TestRunFleetAfter: a host starts only after the hosts it waits for have
// finished, failed or not, also with one slot (waiting holds none); the
// others do not wait.
func TestRunFleetAfter(t *testing.T) {
	for _, parallel := range []int{1, 3, 8} {
		var mu sync.Mutex
		var log []string
		note := func(n string) { mu.Lock(); log = append(log, n); mu.Unlock() }
		names := []string{"c1", "c2", "vault", "c3", "free"}
		after := map[string][]string{"c1": {"vault"}, "c2": {"vault"}, "c3": {"vault", "gone"}}
		freeRan := make(chan struct{})
		runFleet(context.Background(), names, after, parallel, io.Discard, nil, func(_ context.Context, name string, _, _ io.Writer) error {
			switch name {
			case "vault":
				// vault ends only after free ran (which waits for
				// nothing): the clients would have started by then
				// were they not waiting. One slot runs them in turn.
				if parallel > 1 {
					<-freeRan
				}
				note(name) // at its end
				return errors.New("vault failed")
			case "free":
				close(freeRan)
			}
			note(name) // at its start
			return nil
		})
		at := func(n string) int { return slices.Index(log, n) }
		if len(log) != len(names) {
			t.Fatalf("parallel %d: ran %v, want all of %v", parallel, log, names)
		}
		for _, c := range []string{"c1", "c2", "c3"} {
			if at(c) < at("vault") {
				t.Errorf("parallel %d: %s started before vault finished: %v", parallel, c, log)
			}
		}
	}
}

// TestBorgServersFirst: a client waits for the borg-server host its repo
// URL names, by address or by name, once; nothing else waits.
func TestBorgServersFirst(t *testing.T) {
	cfg := &config.Config{Hosts: []config.Host{
		{Name: "vault", Role: config.RoleBorgServer, Address: "10.0.0.9"},
		{Name: "laptop", Role: config.RoleServer, Repos: []config.Repo{
			{Name: "a", Path: "ssh://borg@10.0.0.9:22/srv/borg/laptop/a"},
			{Name: "b", Path: "borg@10.0.0.9:/srv/borg/laptop/b"},
		}},
		{Name: "desk", Role: config.RoleServer, Repos: []config.Repo{{Name: "d", Path: "ssh://borg@vault/srv/borg/desk/d"}}},
		{Name: "hosted", Role: config.RoleServer, Repos: []config.Repo{{Name: "h", Path: "ssh://u1@u1.example.net:23/./borg"}}},
		{Name: "home", Role: config.RoleServer, Repos: []config.Repo{{Name: "l", Path: "/mnt/backup/l"}}},
	}}
	got := borgServersFirst(cfg)
	want := map[string][]string{"laptop": {"vault"}, "desk": {"vault"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("borgServersFirst = %v, want %v", got, want)
	}
}

// TestPlanAllRoot: plan --all over the example config, each host under
// --root DIR/HOST. The Pi's plan conflicts without the server's keys; the
// others go on, and the exit status is 5.
func TestPlanAllRoot(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "borgkit.yaml")
	if err := os.WriteFile(cfgFile, config.Example(), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runSplit(t, "plan", "--all", "--parallel", "2", "--config", cfgFile, "--root", filepath.Join(dir, "root"))
	if code != exitSomeFailed {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitSomeFailed, stdout, stderr)
	}
	for _, want := range []string{"==== john-ai ====", "==== pi ====", "==== archive ====", "Summary (3 hosts):", "1 of 3 hosts failed: pi"} {
		if strings.Count(stdout, want) != 1 {
			t.Errorf("stdout has %q %d times, want once", want, strings.Count(stdout, want))
		}
	}
	if _, _, code := runSplit(t, "plan", "john-ai", "archive", "--config", cfgFile, "--root", filepath.Join(dir, "root")); code != exitOK {
		t.Errorf("plan john-ai archive: exit %d, want 0", code)
	}
	for _, args := range [][]string{{"plan", "--all", "pi"}, {"plan", "pi", "nothere"}, {"plan", "pi", "pi"}, {"plan", "--all", "--parallel", "0"}, {"plan", "--all", "--local"}} {
		if _, _, code := runSplit(t, append(args, "--config", cfgFile, "--root", dir)...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestStatusAllUnreachable: status --all over hosts that refuse the
// connection: each is a failed section, the summary names both, exit 1
// (every host failed); --json is one document naming them.
func TestStatusAllUnreachable(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "borgkit.yaml")
	cfg := `version: 1
alerts: {to: me@example.com, from: me@example.com}
retention: {daily: 3, weekly: 2, monthly: 6}
hosts:
  - {name: one, role: server, address: 127.0.0.1, ssh: {port: 1}, repos: [{name: r, path: /srv/r, sources: [/home]}]}
  - {name: two, role: server, address: 127.0.0.1, ssh: {port: 1}, repos: [{name: r, path: /srv/r, sources: [/home]}]}
`
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runSplit(t, "status", "--all", "--config", cfgFile, "--known-hosts", filepath.Join(dir, "kh"), "--identity", filepath.Join(dir, "id"))
	if code != exitFailed || !strings.Contains(stdout, "==== one ====") || !strings.Contains(stdout, "2 of 2 hosts failed: one two") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, _, _ = runSplit(t, "status", "--hosts", "two", "--json", "--config", cfgFile, "--known-hosts", filepath.Join(dir, "kh"), "--identity", filepath.Join(dir, "id"))
	if !strings.Contains(stdout, `"failed": [`) || !strings.Contains(stdout, `"host": "two"`) || strings.Contains(stdout, `"host": "one"`) {
		t.Errorf("--json:\n%s", stdout)
	}
	if _, _, code := runSplit(t, "status", "--all", "--hosts", "one", "--config", cfgFile); code != exitUsage {
		t.Errorf("--all with --hosts: exit %d, want 2", code)
	}
}
