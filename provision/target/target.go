// Package target learns what a host is before its plan is made: the
// Debian architecture of its userland, its kernel's machine and its
// release, in one round trip.
package target

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/release"
	"github.com/borgkit/borgkit/provision/tools"
)

// Facts are what the probe found.
type Facts struct {
	// Arch is dpkg's architecture: the userland's, which is what a program
	// must be built for. A Raspberry Pi 4 with the 32-bit image runs an
	// aarch64 kernel (Machine) under an armhf userland (Arch).
	Arch    string
	Machine string
	// Package is the installed borgkit package's version ("" without it).
	Package   string
	OSRelease release.OSRelease
	Release   release.Release
	// Warning says the release is not in the table and which row stands in.
	Warning string
}

// probe is the one program the probe runs: a fixed script, no value of
// ours in it. Each fact is a line "key=value"; os-release follows its
// marker line as it is. dpkg missing leaves dpkg= empty, which is how a
// non-Debian host shows.
const probe = `printf 'dpkg='; dpkg --print-architecture 2>/dev/null || echo
printf 'machine='; uname -m
printf 'package='; dpkg-query -W -f='${db:Status-Abbrev}${Version}' borgkit 2>/dev/null | sed -n 's/^ii *//p'; echo
echo '--- os-release'
cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release
`

// osReleaseMarker separates the facts from the os-release text.
const osReleaseMarker = "--- os-release\n"

// Probe runs the probe on h and resolves its release. A non-Debian host
// is an error that says so; an unknown Debian release is not (see
// Facts.Warning).
func Probe(ctx context.Context, h host.Host) (*Facts, error) {
	res, err := h.Run(ctx, host.Command(tools.Sh, "-c", probe))
	if err != nil {
		return nil, fmt.Errorf("learn what %s is (architecture, release): %w", h.Name(), err)
	}
	f, err := Parse(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.Name(), err)
	}
	return f, nil
}

// Parse reads the probe's output.
func Parse(out []byte) (*Facts, error) {
	head, osr, ok := bytes.Cut(out, []byte(osReleaseMarker))
	if !ok {
		return nil, errors.New("the probe's output has no os-release part")
	}
	f := &Facts{}
	for _, line := range strings.Split(string(head), "\n") {
		k, v, _ := strings.Cut(line, "=")
		v = strings.TrimSpace(v)
		switch k {
		case "dpkg":
			f.Arch = v
		case "machine":
			f.Machine = v
		case "package":
			f.Package = v
		}
	}
	var err error
	if f.OSRelease, err = release.ParseOSRelease(osr); err != nil {
		return nil, err
	}
	if f.Release, f.Warning, err = release.Resolve(osr); err != nil {
		return nil, err
	}
	if f.Arch == "" {
		return nil, fmt.Errorf("%s has no dpkg: borgkit provisions Debian-family systems, with apt", f.OSRelease.Pretty())
	}
	return f, nil
}

// String is the one line a plan's header shows.
func (f *Facts) String() string {
	s := fmt.Sprintf("%s, %s", f.Release.Name, f.Arch)
	if f.Machine != "" && f.Machine != machineOf[f.Arch] {
		s += " (kernel " + f.Machine + ")"
	}
	return s
}

// machineOf is the kernel machine a userland usually runs on; anything
// else is worth showing (armhf on aarch64: the 32-bit Pi image).
var machineOf = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l"}
