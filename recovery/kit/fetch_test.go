package kit

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needMirror skips a test that fetches from Debian's mirror when it cannot
// be reached (a machine without network); BORGKIT_KIT_CACHE keeps the
// fetched packages between runs.
func needMirror(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"apt-get", "apt-cache"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed: the kit is fetched with Debian's apt", p)
		}
	}
	if _, err := os.Stat(DefaultKeyring); err != nil {
		t.Skipf("no Debian archive keyring to check the mirror with: %v", err)
	}
	c, err := net.DialTimeout("tcp", "deb.debian.org:80", 5*time.Second)
	if err != nil {
		t.Skipf("Debian's mirror cannot be reached from here: %v", err)
	}
	c.Close()
	if d := os.Getenv("BORGKIT_KIT_CACHE"); d != "" {
		return d
	}
	return t.TempDir()
}

// The closure is apt's: for each architecture it holds borgbackup,
// cryptsetup-bin and python3, which a minbase system lacks, and nothing
// minbase has (libc6, dpkg, apt); every file matches its pin.
func TestFetchDebian(t *testing.T) {
	cache := needMirror(t)
	for _, arch := range Arches {
		t.Run(arch, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			start := time.Now()
			r, err := Fetch(ctx, Options{Cache: cache, Arch: arch, Status: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			if r.Stale != "" {
				t.Fatalf("stale with the mirror reachable: %s", r.Stale)
			}
			var size int64
			for _, name := range []string{"borgbackup", "cryptsetup-bin", "python3", "libcryptsetup12"} {
				if _, ok := r.Deb(name); !ok {
					t.Errorf("%s is not in the kit: %+v", name, r.Debs)
				}
			}
			for _, name := range []string{"libc6", "dpkg", "apt", "bash"} {
				if _, ok := r.Deb(name); ok {
					t.Errorf("%s is in the kit, but minbase has it", name)
				}
			}
			for _, d := range r.Debs {
				if d.Arch != arch && d.Arch != "all" {
					t.Errorf("%s is for %s", d.File, d.Arch)
				}
				if err := checkFile(filepath.Join(r.Path, d.File), d); err != nil {
					t.Error(err)
				}
				size += d.Size
			}
			if _, err := r.Index(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d packages, %.1f MB, in %s", arch, len(r.Debs), float64(size)/1e6, time.Since(start).Round(time.Second))

			// Without the mirror, the same cache gives the same pins, marked
			// stale with the reason.
			again, err := Fetch(ctx, Options{Cache: cache, Arch: arch, Mirror: deadMirror, Security: deadMirror})
			if err != nil {
				t.Fatalf("offline with a cache: %v", err)
			}
			if again.Stale == "" || !strings.Contains(again.Stale, "fetched on") || len(again.Debs) != len(r.Debs) {
				t.Fatalf("offline with a cache: stale %q, %d packages", again.Stale, len(again.Debs))
			}
		})
	}
}
