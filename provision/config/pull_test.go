package config

import (
	"slices"
	"strings"
	"testing"
)

// archiveHost pulls from host (line 18 holds it) after the server of
// lines 7-13; extra lines follow line 21.
func archiveHost(host string, extra ...string) string {
	return withHeader(append(append(slices.Clone(server),
		"  - name: arc",             // 14
		"    role: archive",         // 15
		"    address: 100.64.0.3",   // 16
		"    pull:",                 // 17
		"      host: "+host,         // 18
		"      source: tank/data",   // 19
		"      target: tank/backup", // 20
		"    ssh: {port: 2222}"),    // 21
		extra...)...)
}

func TestPullServerResolution(t *testing.T) {
	tests := []struct {
		name, host string
		server     string // "" when pull.host is only an address
		addr       string
		port       int
	}{
		{"named server host", "srv", "srv", "100.64.0.1", 22},
		{"an address", "100.64.0.10", "", "100.64.0.10", 22},
		{"a name outside the file", "live.lan", "", "live.lan", 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("ok.yaml", []byte(archiveHost(tt.host)))
			if err != nil {
				t.Fatal(err)
			}
			a, _ := c.Host("arc")
			srv, _ := c.Host("srv")
			s, ok := c.PullServer(a)
			if got := map[bool]string{true: "srv", false: ""}[ok]; got != tt.server || ok && s != srv {
				t.Errorf("PullServer = %v %v, want %q", s, ok, tt.server)
			}
			if got := c.PullAddress(a); got != tt.addr {
				t.Errorf("PullAddress = %q, want %q", got, tt.addr)
			}
			if got := c.PullPort(a); got != tt.port {
				t.Errorf("PullPort = %d, want %d", got, tt.port)
			}
			pullers := c.Pullers(srv)
			if (tt.server != "") != (len(pullers) == 1 && pullers[0] == a) {
				t.Errorf("Pullers(srv) = %v", pullers)
			}
			if _, ok := c.PullServer(srv); ok || len(c.Pullers(a)) != 0 {
				t.Errorf("a server has no pull and an archive no pullers")
			}
		})
	}
	// The named server's port is the one syncoid uses.
	c, err := Parse("ok.yaml", []byte(strings.Replace(archiveHost("srv"), "    repos:", "    ssh: {port: 2200}\n    repos:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Host("arc")
	if c.PullPort(a) != 2200 {
		t.Errorf("PullPort = %d, want the server's 2200", c.PullPort(a))
	}
}

func TestPullProblems(t *testing.T) {
	offsite := []string{
		"  - name: pi",            // 22
		"    role: offsite",       // 23
		"    address: 100.64.0.2", // 24
	}
	tests := []struct {
		name      string
		src       string
		sentinel  error
		line, col int
		msg       string
	}{
		{"pulls from itself", archiveHost("arc"), ErrBadValue, 18, 13, "cannot pull from itself"},
		{"pulls from an offsite host", archiveHost("pi", offsite...), ErrRoleMismatch, 18, 13, `pull host "pi" has role "offsite"`},
		{"not root on a named server", strings.Replace(archiveHost("srv"), "tank/backup\n", "tank/backup\n      user: backup\n", 1),
			ErrBadValue, 21, 13, `user "backup": the pull key is authorized in root's authorized_keys on srv`},
		{"bad source dataset", strings.Replace(archiveHost("srv"), "source: tank/data", "source: tank/data;rm", 1),
			ErrBadName, 19, 15, "not a ZFS dataset name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tt.src))
			if err == nil {
				t.Fatal("parsed without error")
			}
			p := problemFor(t, err, tt.sentinel)
			if p.Line != tt.line || p.Col != tt.col || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("got %d:%d %q, want %d:%d containing %q", p.Line, p.Col, p.Msg, tt.line, tt.col, tt.msg)
			}
			if !strings.Contains(err.Error(), "bad.yaml:") {
				t.Errorf("no FILE:LINE:COL in %v", err)
			}
		})
	}
}
