package kit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Release and Suite name the Debian release the packages are for.
const (
	Release = "debian-12"
	Suite   = "bookworm"
)

// Base says what the closure is relative to, for the manifest and the
// runbook.
const Base = "debootstrap --variant=minbase (every Priority: required package and apt)"

// Wanted are the packages a restore needs; the kit is their closure.
var Wanted = []string{"borgbackup", "cryptsetup-bin"}

// Arches are the architectures the packages are fetched for: a rescue
// machine is a PC or a 64-bit Raspberry Pi.
var Arches = []string{"amd64", "arm64"}

// Dir is a repo's directory in the bundle.
func Dir(arch string) string { return "kit/" + Release + "-" + arch }

// Deb is one pinned package.
type Deb struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	// File is the package's file name, as in Debian's pool.
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Repo is one architecture's packages: what the bundle pins.
type Repo struct {
	Arch    string    `json:"arch"`
	Suite   string    `json:"suite"`
	Base    string    `json:"base"`
	Mirror  string    `json:"mirror"`
	Fetched time.Time `json:"fetched"`
	Wanted  []string  `json:"wanted"`
	// Debs are in the order apt would install them on a minbase system.
	Debs []Deb `json:"debs"`
	// Stanzas are the packages' Debian control records, as the mirror's
	// signed index has them, by name: the flat repository's index.
	Stanzas map[string]string `json:"stanzas,omitempty"`
	// Stale says why this is an earlier fetch from the cache ("" when it
	// was fetched now).
	Stale string `json:"stale,omitempty"`
	// Path is where the .deb files are on this machine (the cache).
	Path string `json:"-"`
}

// Deb finds a pinned package by name.
func (r *Repo) Deb(name string) (*Deb, bool) {
	for i := range r.Debs {
		if r.Debs[i].Name == name {
			return &r.Debs[i], true
		}
	}
	return nil, false
}

// Index renders the repo's Packages file: each pinned package's stanza with
// Filename pointing beside the index ("./FILE"), so `deb [trusted=yes]
// file:DIR ./` finds them. Trust comes from the bundle's checksums, which
// pin the very files Debian's signed index named.
func (r *Repo) Index() ([]byte, error) {
	var b bytes.Buffer
	for _, d := range r.Debs {
		st, ok := r.Stanzas[d.Name]
		if !ok {
			return nil, fmt.Errorf("index of %s: no control record for %s", r.Arch, d.Name)
		}
		f := ParseStanza(st)
		if f["Package"] != d.Name || f["Version"] != d.Version || f["SHA256"] != d.SHA256 {
			return nil, fmt.Errorf("index of %s: the control record of %s is of %s %s (sha256 %s), the pin is %s (sha256 %s)",
				r.Arch, d.Name, f["Package"], f["Version"], f["SHA256"], d.Version, d.SHA256)
		}
		for _, line := range strings.Split(strings.TrimRight(st, "\n"), "\n") {
			if strings.HasPrefix(line, "Filename:") {
				line = "Filename: ./" + d.File
			}
			b.WriteString(line + "\n")
		}
		b.WriteString("\n")
	}
	return b.Bytes(), nil
}

// ReleaseFile is the flat repository's Release: it tells apt which index
// there is, so apt asks for nothing else (no compressed variants to try and
// report as errors).
func ReleaseFile(arch string, date time.Time, index []byte) []byte {
	return fmt.Appendf(nil, "Origin: borgkit\nLabel: borgkit recovery kit\nSuite: %s\nArchitectures: %s\nDate: %s\nSHA256:\n %s %d Packages\n",
		Suite, arch, date.UTC().Format(time.RFC1123Z), sha256Hex(index), len(index))
}

// ParseStanza reads one deb822 record into its fields; continuation lines
// are kept, joined with newlines.
func ParseStanza(s string) map[string]string {
	f := map[string]string{}
	last := ""
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			f[last] += "\n" + line
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = k
		f[k] = strings.TrimSpace(v)
	}
	return f
}

// Stanzas splits deb822 text (apt-cache show, a Packages file) into its
// records, calling fn with each; fn returning false stops.
func Stanzas(r io.Reader, fn func(stanza string) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var cur strings.Builder
	flush := func() bool {
		if cur.Len() == 0 {
			return true
		}
		s := cur.String()
		cur.Reset()
		return fn(s)
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if !flush() {
				return nil
			}
			continue
		}
		cur.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		return err
	}
	flush()
	return nil
}

// instLine is one package apt's simulation would unpack:
// "Inst NAME [OLD] (VERSION ORIGINS [ARCH])".
var instLine = regexp.MustCompile(`^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([a-z0-9]+)\]\)`)

// Planned is a package of apt's plan.
type Planned struct{ Name, Version, Arch string }

// ParsePlan reads `apt-get install -s` output: the packages apt would
// unpack, in its order.
func ParsePlan(out []byte) ([]Planned, error) {
	var p []Planned
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "Inst ") {
			continue
		}
		m := instLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("apt-get's plan line %q is not Inst NAME (VERSION ... [ARCH])", line)
		}
		p = append(p, Planned{Name: m[1], Version: m[2], Arch: m[3]})
	}
	return p, nil
}

// debFromStanza pins a package from its control record.
func debFromStanza(st string) (Deb, error) {
	f := ParseStanza(st)
	d := Deb{Name: f["Package"], Version: f["Version"], Arch: f["Architecture"], SHA256: f["SHA256"]}
	size, err := strconv.ParseInt(f["Size"], 10, 64)
	if err != nil || d.Name == "" || d.Version == "" || d.Arch == "" || len(d.SHA256) != 64 || f["Filename"] == "" {
		return Deb{}, fmt.Errorf("control record of %q lacks Package, Version, Architecture, Filename, Size or SHA256", d.Name)
	}
	d.Size = size
	d.File = f["Filename"][strings.LastIndex(f["Filename"], "/")+1:]
	if !debFile.MatchString(d.File) {
		return Deb{}, fmt.Errorf("package %s: file name %q is not NAME_VERSION_ARCH.deb", d.Name, d.File)
	}
	return d, nil
}

// debFile is what a pool file name may be: it becomes a bundle path.
var debFile = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]*_[A-Za-z0-9.+~-]+_[a-z0-9]+\.deb$`)
