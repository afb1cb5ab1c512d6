package lab

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/config"
)

const cobraHelp = `Write, verify and use the offline recovery bundle

Usage:
  borgkit drill [flags] BUNDLE [MIRROR]

Available Commands:
  check-key   Check a keyfile opens a LUKS2 header
  write       Write the bundle to a directory

Flags:
      --bundle DIR   the bundle
  -h, --help         help for drill
      --json         print data as JSON
`

func TestHelpParsing(t *testing.T) {
	if got := commandsOf([]byte(cobraHelp)); !reflect.DeepEqual(got, []string{"check-key", "write"}) {
		t.Errorf("commandsOf = %q", got)
	}
	if got := flagsOf([]byte(cobraHelp)); !reflect.DeepEqual(got, []string{"--bundle", "--help", "--json"}) {
		t.Errorf("flagsOf = %q", got)
	}
	if got := usageArgs([]byte(cobraHelp)); !reflect.DeepEqual(got, []string{"BUNDLE", "MIRROR"}) {
		t.Errorf("usageArgs = %q", got)
	}
}

func TestParsePlan(t *testing.T) {
	out := []byte("Plan for pi (ssh 10.231.0.2:22, role offsite):\n  = packages\n" +
		"Plan: 0 to create, 0 to change, 21 unchanged, 0 conflicting, 1 skipped.\npi: no changes.\n")
	got := parsePlan("pi", out)
	want := PlanCounts{Unchanged: 21, Skip: 1, NoChanges: true}
	if got != want {
		t.Errorf("parsePlan = %+v, want %+v", got, want)
	}
	if c := parsePlan("john-ai", []byte("Plan: 3 to create, 2 to change, 1 unchanged, 0 conflicting, 0 skipped.\n")); c.Changes() != 5 || c.NoChanges {
		t.Errorf("parsePlan = %+v", c)
	}
}

func TestDiffTrees(t *testing.T) {
	a := map[string]string{"data": dirEntry, "data/1": "aa", "config": "cc", "lock": "-> x"}
	b := map[string]string{"data": dirEntry, "data/1": "ab", "config": "cc", "extra": "ee"}
	want := []string{"data/1 (differs)", "extra (extra)", "lock (missing)"}
	if got := DiffTrees(a, b); !reflect.DeepEqual(got, want) {
		t.Errorf("DiffTrees = %q, want %q", got, want)
	}
	if got := DiffTrees(a, a); len(got) != 0 {
		t.Errorf("DiffTrees(a, a) = %q", got)
	}
}

// The generated config passes config.Parse with the lab's choices: the
// NAS as a disk, the Pi's disk without LUKS, both host keys pinned.
func TestConfig(t *testing.T) {
	l := &Lab{ID: "0123abcd"}
	for _, h := range []*Host{l.newHost(Server, ServerAddr), l.newHost(Offsite, OffsiteAddr)} {
		if err := h.writeHostKey(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct{ host, name, uuid string }{
		{Server, DiskUSB, "3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f"},
		{Server, DiskNAS, "0b6e1f0a-5c3d-4e8f-a1b2-c3d4e5f60718"},
		{Offsite, DiskPi, "b6e1f0a2-5c3d-4e8f-a1b2-c3d4e5f60719"},
	} {
		l.disks = append(l.disks, &Disk{Name: d.name, Host: d.host, UUID: d.uuid})
	}
	raw, cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := cfg.Host(Server)
	pi, _ := cfg.Host(Offsite)
	if srv.Role != config.RoleServer || pi.Role != config.RoleOffsite || len(srv.Repos) != 2 || len(srv.Mirrors) != 2 {
		t.Errorf("hosts: %+v %+v", srv, pi)
	}
	if d := pi.BackupDisk(); d == nil || d.LUKS != nil || d.UUID != "b6e1f0a2-5c3d-4e8f-a1b2-c3d4e5f60719" {
		t.Errorf("pi's disk: %+v", d)
	}
	if srv.SSH.HostPublicKey != l.Host(Server).HostPublicKey || pi.SSH.HostPublicKey != l.Host(Offsite).HostPublicKey {
		t.Error("host keys not pinned")
	}
	if !strings.Contains(string(raw), "path: "+NASPath) || len(srv.Shares) != 0 {
		t.Errorf("NAS mirror:\n%s", raw)
	}
}

func TestPingErrs(t *testing.T) {
	healthy := func() *Report {
		r := &Report{Textfile: "# TYPE borgkit_last_exit_code gauge\n"}
		for _, j := range pingedJobs {
			r.Pings = append(r.Pings, "/"+PingKey+"/"+j+"/start", "/"+PingKey+"/"+j+"/0")
			if job, ok := strings.CutPrefix(j, Server+"-"); ok {
				r.Textfile += `borgkit_last_exit_code{job="` + job + `"} 0` + "\n"
			}
		}
		return r
	}
	if errs := healthy().pingErrs(); len(errs) != 0 {
		t.Fatalf("a healthy run: %v", errs)
	}
	retried := healthy()
	retried.Pings = append([]string{retried.Pings[0]}, retried.Pings...) // the first start sent twice
	if errs := retried.pingErrs(); len(errs) != 0 {
		t.Fatalf("a retried ping: %v", errs)
	}
	for name, tc := range map[string]struct {
		spoil func(r *Report)
		want  string
	}{
		"a job that never ended": {func(r *Report) { r.Pings = r.Pings[:len(r.Pings)-1] }, "did not get start, then 0"},
		"a failure":              {func(r *Report) { r.Pings[1] = "/" + PingKey + "/" + pingedJobs[0] + "/1" }, "out of turn"},
		"an end before a start":  {func(r *Report) { r.Pings[0], r.Pings[1] = r.Pings[1], r.Pings[0] }, "out of turn"},
		"no textfile":            {func(r *Report) { r.Textfile = "" }, "textfile does not show nightly"},
		"a second start":         {func(r *Report) { r.Pings = append(r.Pings, r.Pings[0]) }, "out of turn"},
	} {
		r := healthy()
		tc.spoil(r)
		errs := r.pingErrs()
		if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", name, errs, tc.want)
		}
	}
}
