package release

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolve resolves the real /etc/os-release of each release (under
// testdata, as those systems ship them) to its row.
func TestResolve(t *testing.T) {
	for _, c := range []struct {
		file                      string
		name, rrsync, borg, warns string
		rrsyncFromDocs            bool
		systemd                   int
	}{
		{file: "debian-12", name: "Debian 12 (bookworm)", rrsync: "/usr/bin/rrsync", borg: "1.2", systemd: 252},
		{file: "debian-13", name: "Debian 13 (trixie)", rrsync: "/usr/bin/rrsync", borg: "1.4", systemd: 257},
		{file: "raspios-12-arm64", name: "Debian 12 (bookworm)", rrsync: "/usr/bin/rrsync", borg: "1.2", systemd: 252},
		{file: "raspios-12-armhf", name: "Raspberry Pi OS 12 (bookworm, 32-bit)", rrsync: "/usr/bin/rrsync", borg: "1.2", systemd: 252},
		{file: "ubuntu-22.04", name: "Ubuntu 22.04 (jammy)", rrsync: "/usr/local/bin/rrsync", rrsyncFromDocs: true, borg: "1.2", systemd: 249},
		{file: "ubuntu-24.04", name: "Ubuntu 24.04 (noble)", rrsync: "/usr/bin/rrsync", borg: "1.2", systemd: 255},
		// Not in the table, but Debian: the newest Debian row, and a warning.
		{file: "debian-11", name: "Debian 13 (trixie)", rrsync: "/usr/bin/rrsync", borg: "1.4", systemd: 257,
			warns: "Debian GNU/Linux 11 (bullseye) is not a release borgkit knows; proceeding as on Debian 13 (trixie)"},
	} {
		t.Run(c.file, func(t *testing.T) {
			r, warning, err := Resolve(readTestdata(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if r.Name != c.name || r.Rrsync != c.rrsync || r.BorgSeries() != c.borg || r.Systemd != c.systemd {
				t.Errorf("got %s, rrsync %s, borg %s, systemd %d; want %s, %s, %s, %d", r.Name, r.Rrsync, r.BorgSeries(), r.Systemd,
					c.name, c.rrsync, c.borg, c.systemd)
			}
			if got := len(r.RrsyncFrom) > 0; got != c.rrsyncFromDocs {
				t.Errorf("rrsync installed from the docs: %v, want %v", got, c.rrsyncFromDocs)
			}
			if !strings.HasPrefix(warning, c.warns) || (c.warns == "") != (warning == "") {
				t.Errorf("warning %q, want %q", warning, c.warns)
			}
		})
	}
}

// TestResolveRefusesNonDebian: a system without apt is refused by name.
func TestResolveRefusesNonDebian(t *testing.T) {
	_, _, err := Resolve(readTestdata(t, "fedora-40"))
	if err == nil || !strings.Contains(err.Error(), "Fedora Linux 40 (Server Edition) (ID=fedora) is not a Debian-family system") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseOSRelease(t *testing.T) {
	o, err := ParseOSRelease([]byte("# comment\nNAME=\"A \\\"quoted\\\" \\$name\"\nID=plain\nX='single'\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if o["NAME"] != `A "quoted" $name` || o["ID"] != "plain" || o["X"] != "single" {
		t.Errorf("parsed %q", o)
	}
	if _, err := ParseOSRelease([]byte("ID=debian\nnot a pair\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a line without = : err %v", err)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".os-release"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
