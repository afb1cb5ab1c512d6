// Package release is the one table of what differs between the operating
// system releases borgkit provisions — where rrsync lives, which borg,
// systemd and cryptsetup they ship — and the resolution of a host's
// /etc/os-release to its row.
package release

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Release is one row of the table.
type Release struct {
	// Name is how messages name the release.
	Name string
	// ID and VersionID match os-release's ID and VERSION_ID.
	ID, VersionID string
	Codename      string
	// Rrsync is the restricted-rsync wrapper the offsite host's
	// authorized_keys line runs.
	Rrsync string
	// RrsyncFrom, when set, says the release ships rrsync only as
	// documentation: provisioning installs Rrsync from the first of these
	// that exists (a .gz is decompressed).
	RrsyncFrom []string
	// Borg, Systemd and Cryptsetup are the versions the release ships.
	Borg       string
	Systemd    int
	Cryptsetup string
	// Universe names the packages borgkit installs that come from Ubuntu's
	// universe component, which must be enabled.
	Universe []string
}

// BorgSeries is the borg release series, "1.2" or "1.4".
func (r Release) BorgSeries() string {
	parts := strings.SplitN(r.Borg, ".", 3)
	if len(parts) < 2 {
		return r.Borg
	}
	return parts[0] + "." + parts[1]
}

// rrsyncDoc is where rsync 3.2.3's Debian packaging leaves rrsync: a
// script among the documentation, compressed or not, never on the PATH.
var rrsyncDoc = []string{"/usr/share/doc/rsync/scripts/rrsync", "/usr/share/doc/rsync/scripts/rrsync.gz"}

// Table is every release borgkit knows, newest of each family last.
// Raspberry Pi OS 64-bit is Debian's own arm64 userland with Debian's
// os-release, so its row is Debian 12's; the 32-bit image says raspbian.
var Table = []Release{
	{Name: "Debian 12 (bookworm)", ID: "debian", VersionID: "12", Codename: "bookworm",
		Rrsync: "/usr/bin/rrsync", Borg: "1.2.4", Systemd: 252, Cryptsetup: "2.6.1"},
	{Name: "Debian 13 (trixie)", ID: "debian", VersionID: "13", Codename: "trixie",
		Rrsync: "/usr/bin/rrsync", Borg: "1.4.0", Systemd: 257, Cryptsetup: "2.7.5"},
	{Name: "Raspberry Pi OS 12 (bookworm, 32-bit)", ID: "raspbian", VersionID: "12", Codename: "bookworm",
		Rrsync: "/usr/bin/rrsync", Borg: "1.2.4", Systemd: 252, Cryptsetup: "2.6.1"},
	// rsync 3.2.3 before its packaging installed rrsync as a program.
	{Name: "Ubuntu 22.04 (jammy)", ID: "ubuntu", VersionID: "22.04", Codename: "jammy",
		Rrsync: "/usr/local/bin/rrsync", RrsyncFrom: rrsyncDoc, Borg: "1.2.0", Systemd: 249, Cryptsetup: "2.4.3",
		Universe: []string{"borgbackup", "msmtp"}},
	{Name: "Ubuntu 24.04 (noble)", ID: "ubuntu", VersionID: "24.04", Codename: "noble",
		Rrsync: "/usr/bin/rrsync", Borg: "1.2.8", Systemd: 255, Cryptsetup: "2.7.0",
		Universe: []string{"borgbackup", "msmtp"}},
}

// OSRelease is /etc/os-release, parsed (os-release(5): KEY=VALUE lines,
// the value optionally quoted).
type OSRelease map[string]string

// ParseOSRelease reads os-release text; a line it cannot read is an error
// naming the line.
func ParseOSRelease(b []byte) (OSRelease, error) {
	o := OSRelease{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("os-release line %d: not KEY=VALUE: %q", n, line)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
			if line[len(k)+1] == '"' {
				v = shellUnescape.Replace(v)
			}
		}
		o[k] = v
	}
	return o, sc.Err()
}

// shellUnescape undoes the backslash escapes os-release(5) allows inside
// double quotes.
var shellUnescape = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`")

// Pretty is the release's own name for itself.
func (o OSRelease) Pretty() string {
	if p := o["PRETTY_NAME"]; p != "" {
		return p
	}
	return strings.TrimSpace(o["NAME"] + " " + o["VERSION_ID"])
}

// family is ID and ID_LIKE together.
func (o OSRelease) family() []string {
	return append([]string{o["ID"]}, strings.Fields(o["ID_LIKE"])...)
}

// Resolve finds the row for a host's os-release. A Debian-family release
// that is not in the table (Debian testing, Linux Mint, an older Debian)
// gets the newest row of its family with a warning that says so; anything
// else is refused: borgkit installs packages with apt and dpkg.
func Resolve(osRelease []byte) (r Release, warning string, err error) {
	o, err := ParseOSRelease(osRelease)
	if err != nil {
		return Release{}, "", err
	}
	for _, row := range Table {
		if o["ID"] == row.ID && o["VERSION_ID"] == row.VersionID {
			return row, "", nil
		}
	}
	fam := o.family()
	var like string
	switch {
	case slices.Contains(fam, "ubuntu"):
		like = "ubuntu"
	case slices.Contains(fam, "debian") || slices.Contains(fam, "raspbian"):
		like = "debian"
	default:
		return Release{}, "", fmt.Errorf("%s (ID=%s) is not a Debian-family system: borgkit provisions Debian, Ubuntu and Raspberry Pi OS, with apt", o.Pretty(), o["ID"])
	}
	for i := len(Table) - 1; i >= 0; i-- {
		if Table[i].ID == like {
			r = Table[i]
			break
		}
	}
	return r, fmt.Sprintf("%s is not a release borgkit knows; proceeding as on %s (rrsync %s, borg %s)", o.Pretty(), r.Name, r.Rrsync, r.BorgSeries()), nil
}

// Default is the row used where no host was asked (a --root tree made on
// a machine without /etc/os-release): Debian 12, the lab's release.
func Default() Release { return Table[0] }
