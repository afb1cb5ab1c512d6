package vm

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// skipUnlessVM skips a VM test, saying why, unless BORGKIT_VM=1 (make vm
// sets it): the VM lab takes minutes and needs root and qemu.
func skipUnlessVM(t *testing.T) {
	t.Helper()
	if os.Getenv("BORGKIT_VM") != "1" {
		t.Skip("VM lab: set BORGKIT_VM=1 to run (needs root, qemu-system-x86, qemu-utils, debootstrap, e2fsprogs; minutes under TCG)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("BORGKIT_VM=1 but not root: debootstrap and the image build need root")
	}
}

// onceImage is an image built once per test process: the first test to
// ask pays for the build, the others wait for it.
type onceImage struct {
	once sync.Once
	img  *Image
	err  error
}

// get builds with build, bounded by timeout and logging to buildLog, on
// the first call, and prints the build's time as what.
func (o *onceImage) get(t *testing.T, what string, timeout time.Duration, build func(context.Context, io.Writer) (*Image, error)) *Image {
	t.Helper()
	o.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		log, err := os.OpenFile(buildLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			o.err = err
			return
		}
		defer log.Close()
		o.img, o.err = build(ctx, log)
		if o.err == nil && o.img.Built > 0 {
			timing(what, o.img.Built)
		}
	})
	if o.err != nil {
		t.Fatalf("%s (build log %s): %v", what, buildLog(), o.err)
	}
	return o.img
}

var plainImage onceImage

// labImage builds (or finds in the cache) the image every test boots.
func labImage(t *testing.T) *Image {
	t.Helper()
	return plainImage.get(t, "image build", 20*time.Minute, func(ctx context.Context, log io.Writer) (*Image, error) {
		return Build(ctx, cacheDir(), labRecipe(), log)
	})
}

var (
	arm64Image  onceImage
	trixieImage onceImage
)

// piArm64Image is the Raspberry Pi's arm64 image: debootstrap's second
// stage runs under qemu-user-static, so it takes several times the plain
// image's build.
func piArm64Image(t *testing.T) *Image {
	t.Helper()
	return arm64Image.get(t, "image build (arm64)", 180*time.Minute, func(ctx context.Context, log io.Writer) (*Image, error) {
		return Build(ctx, cacheDir(), mirrored(Arm64Recipe()), log)
	})
}

// debian13Image is the Debian 13 (trixie) amd64 image.
func debian13Image(t *testing.T) *Image {
	t.Helper()
	return trixieImage.get(t, "image build (trixie)", 30*time.Minute, func(ctx context.Context, log io.Writer) (*Image, error) {
		return Build(ctx, cacheDir(), mirrored(TrixieRecipe()), log)
	})
}

var bareImage onceImage

// rescueImage is a bare Debian 12 (RescueRecipe): nothing to restore with.
func rescueImage(t *testing.T) *Image {
	t.Helper()
	return bareImage.get(t, "image build (rescue)", 30*time.Minute, func(ctx context.Context, log io.Writer) (*Image, error) {
		return Build(ctx, cacheDir(), mirrored(RescueRecipe()), log)
	})
}

// cacheDir is BORGKIT_VM_CACHE, or DefaultCacheDir.
func cacheDir() string {
	if c := os.Getenv("BORGKIT_VM_CACHE"); c != "" {
		return c
	}
	return DefaultCacheDir
}

// labRecipe is DefaultRecipe with BORGKIT_VM_MIRROR, when set.
func labRecipe() Recipe { return mirrored(DefaultRecipe()) }

// mirrored is r with BORGKIT_VM_MIRROR, when set.
func mirrored(r Recipe) Recipe {
	if m := os.Getenv("BORGKIT_VM_MIRROR"); m != "" {
		r.Mirror = m
	}
	return r
}

// buildLog is where image builds log, appended run after run.
func buildLog() string { return filepath.Join(os.TempDir(), "borgkit-vm-build.log") }

// accel is the accelerator the guests use: tcg unless BORGKIT_VM_ACCEL says.
func accel() string {
	if a := os.Getenv("BORGKIT_VM_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

var timingMu sync.Mutex

// timing prints a measured duration in one recognisable form, so a run's
// times can be collected with grep '^vm-time'.
func timing(what string, d time.Duration) {
	timingMu.Lock()
	defer timingMu.Unlock()
	fmt.Fprintf(os.Stderr, "vm-time %-40s %s\n", what, d.Round(100*time.Millisecond))
}

// runDir is a test's directory for overlays, keys and logs. It is removed
// after a passing test unless BORGKIT_VM_KEEP=1; a failing test keeps it and
// says where, since the serial logs are the post-mortem.
func runDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "borgkit-vm-"+strings.ToLower(strings.TrimPrefix(t.Name(), "TestVM"))+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || keepEnv() {
			t.Logf("run directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// testLog writes the harness's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newGuest makes a guest whose qemu is killed and overlay removed when the
// test ends, however it ends.
func newGuest(t *testing.T, cfg Config) *Guest {
	t.Helper()
	if cfg.Accel == "" {
		cfg.Accel = accel()
	}
	if cfg.Log == nil {
		cfg.Log = testLog{t}
	}
	g, err := NewGuest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keep := t.Failed() || keepEnv()
		if err := g.Close(keep); err != nil {
			t.Logf("vm %s: %v", g.Name(), err)
		}
	})
	return g
}

// TestVMLab checks the lab itself, so a scenario failing says something
// about borgkit: each guest is who it should be, the two reach each other
// on the lab link and nothing else, and the disks have their stable names.
func TestVMLab(t *testing.T) {
	skipUnlessVM(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	l := newLab(ctx, t, false)
	connect := func(g *Guest, addr string) error {
		// python3 comes with borg; it is the one tool in the image that can
		// open a TCP connection without a shell.
		_, err := g.Run(ctx, "python3", "-c", "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)", addr, "22")
		return err
	}
	for _, c := range []struct {
		g                *Guest
		name, peer, disk string
	}{{l.Server, ServerName, OffsiteAddress, l.USB.ByID()}, {l.Offsite, OffsiteName, ServerAddress, l.PiDisk.ByID()}} {
		if got := must(ctx, t, c.g, "hostname"); got != c.name {
			t.Errorf("hostname %q, want %q", got, c.name)
		}
		must(ctx, t, c.g, "test", "-b", c.disk)
		if err := connect(c.g, c.peer); err != nil {
			t.Errorf("%s cannot reach %s:22 on the lab link: %v", c.name, c.peer, err)
		}
		// No way out: no default route, and restrict=on keeps even qemu's
		// own gateway (the host) out of reach.
		for _, addr := range []string{"10.0.2.2", "1.1.1.1"} {
			if err := connect(c.g, addr); err == nil {
				t.Errorf("%s reaches %s: the lab is not isolated", c.name, addr)
			}
		}
	}
	if l.Restored() {
		// A resumed guest's clock was set from the host's.
		out := must(ctx, t, l.Server, "date", "+%s")
		if d := time.Since(time.Unix(mustInt(t, out), 0)); d < -time.Minute || d > time.Minute {
			t.Errorf("john-ai's clock is %s off after the resume", d)
		}
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// keepEnv says whether BORGKIT_VM_KEEP=1 asks to keep run directories.
func keepEnv() bool { return os.Getenv("BORGKIT_VM_KEEP") == "1" }

// snapshotCache is where pair snapshots are kept: beside the image, so a
// new image never resumes an old snapshot. BORGKIT_VM_SNAPSHOT=0 boots
// every pair for real.
func snapshotCache(img *Image) string {
	if os.Getenv("BORGKIT_VM_SNAPSHOT") == "0" {
		return ""
	}
	return img.Dir
}

// bootKind names how a pair comes up, for the timings.
func bootKind(p *Pair) string {
	if p.Restored() {
		return "resumed from snapshot"
	}
	return "cold boot"
}
