package target

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
)

// TestProbeThisMachine runs the real probe here and compares it with
// what dpkg and uname say when asked one by one.
func TestProbeThisMachine(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("no dpkg on this machine: the probe is for Debian-family hosts")
	}
	f, err := Probe(context.Background(), host.NewLocal("here"))
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := exec.Command("dpkg", "--print-architecture").Output()
	mach, _ := exec.Command("uname", "-m").Output()
	if f.Arch != strings.TrimSpace(string(arch)) || f.Machine != strings.TrimSpace(string(mach)) {
		t.Errorf("probe says %s/%s, dpkg and uname say %s/%s", f.Arch, f.Machine, arch, mach)
	}
	osr, _ := os.ReadFile("/etc/os-release")
	if !strings.Contains(string(osr), f.OSRelease["PRETTY_NAME"]) || f.Release.Name == "" {
		t.Errorf("release %q (%q) from os-release:\n%s", f.Release.Name, f.OSRelease.Pretty(), osr)
	}
}

func TestParse(t *testing.T) {
	const raspbian = "PRETTY_NAME=\"Raspbian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=raspbian\nID_LIKE=debian\n"
	for _, c := range []struct {
		name, out, want, err string
	}{
		// The 32-bit Pi image on a Pi 4: armhf userland, aarch64 kernel.
		{"armhf on aarch64", "dpkg=armhf\nmachine=aarch64\npackage=\n--- os-release\n" + raspbian,
			"Raspberry Pi OS 12 (bookworm, 32-bit), armhf (kernel aarch64)", ""},
		{"with the package", "dpkg=arm64\nmachine=aarch64\npackage=1.0-1\n--- os-release\nID=debian\nVERSION_ID=\"12\"\n",
			"Debian 12 (bookworm), arm64", ""},
		{"no dpkg", "dpkg=\nmachine=x86_64\npackage=\n--- os-release\nPRETTY_NAME=\"Some Linux\"\nID=debian\n",
			"", "Some Linux has no dpkg"},
		{"not debian", "dpkg=\nmachine=x86_64\n--- os-release\nPRETTY_NAME=\"Arch Linux\"\nID=arch\n",
			"", "Arch Linux (ID=arch) is not a Debian-family system"},
		{"truncated", "dpkg=amd64\n", "", "no os-release part"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse([]byte(c.out))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.String() != c.want {
				t.Errorf("%q, want %q", f.String(), c.want)
			}
		})
	}
}
