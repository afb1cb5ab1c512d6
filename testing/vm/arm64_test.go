package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/builds"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Bounds for the arm64 pi under TCG: every instruction is translated, so
// its boot and its argon2id unlock take several times an amd64 guest's.
const (
	arm64BootTimeout   = 20 * time.Minute
	arm64UnlockTimeout = 12 * time.Minute
)

// arm64Build is the arm64 borgkit provisioning must install on the pi.
func arm64Build(t *testing.T) []byte { return archBuild(t, "arm64") }

var (
	archBuildsMu sync.Mutex
	archBuilds   = map[string]*archBuildOnce{}
)

type archBuildOnce struct {
	once sync.Once
	data []byte
	err  error
}

// archBuild is borgkit built for the Debian architecture arch:
// BORGKIT_VM_BUILDS/ARCH/borgkit (make vm sets it to bin/builds), else
// built here, once per test process.
func archBuild(t *testing.T, arch string) []byte {
	t.Helper()
	archBuildsMu.Lock()
	b, ok := archBuilds[arch]
	if !ok {
		b = &archBuildOnce{}
		archBuilds[arch] = b
	}
	archBuildsMu.Unlock()
	b.once.Do(func() {
		if d := os.Getenv("BORGKIT_VM_BUILDS"); d != "" {
			b.data, b.err = os.ReadFile(filepath.Join(d, arch, "borgkit"))
			return
		}
		dir, err := os.MkdirTemp("", "borgkit-vm-"+arch+"-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(dir)
		goarch, goarm, _ := builds.GoTarget(arch)
		out := filepath.Join(dir, "borgkit")
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/borgkit/borgkit/cmd/borgkit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build borgkit for %s: %v\n%s", arch, err, out)
			return
		}
		b.data, b.err = os.ReadFile(out)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.data
}

// TestVMPiArm64 is the first seed's appliance with its real offsite
// machine: an arm64 pi (Debian 12 arm64, as Raspberry Pi OS 64-bit is)
// provisioned over SSH from an amd64 john-ai. john-ai holds the arm64
// build where the borgkit package puts it; provisioning must install that
// build on the pi, never itself, and run it there. Then the LUKS disk is
// formatted, the pi reboots, the unlock at boot fetches the key and
// mounts the disk, a sync lands and the watchdog runs. It measures the
// pi's boot and the peak memory of the watchdog and unlock jobs there.
func TestVMPiArm64(t *testing.T) {
	skipUnlessVM(t)
	if os.Getenv("BORGKIT_VM_ARM64") == "0" {
		t.Skip("BORGKIT_VM_ARM64=0: the arm64 pi takes most of an hour under TCG; make vm-arm64 runs it")
	}
	t.Parallel()
	// The images first: a cold arm64 build (over an hour under TCG) has its
	// own timeout and must not eat the scenario's.
	server := labImage(t)
	pi := piArm64Image(t)
	build := arm64Build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Minute)
	defer cancel()
	l := newLabWith(ctx, t, labSpec{server: server, offsite: pi})
	s, p := l.Server, l.Offsite

	step(t, "the pi is arm64", func() {
		if got := must(ctx, t, p, "dpkg", "--print-architecture"); got != "arm64" {
			t.Fatalf("dpkg --print-architecture on the pi: %s", got)
		}
		if got := must(ctx, t, p, "uname", "-m"); got != "aarch64" {
			t.Fatalf("uname -m on the pi: %s", got)
		}
	})
	step(t, "the arm64 build where the package keeps it", func() {
		dst := filepath.Join(builds.PackageDir, "arm64", "borgkit")
		must(ctx, t, s, "mkdir", "-p", filepath.Dir(dst))
		if err := s.WriteFile(ctx, dst, build, 0o755); err != nil {
			t.Fatal(err)
		}
	})
	l.provisionServer(ctx, t)
	l.provisionOffsite(ctx, t)

	step(t, "the pi runs the arm64 build", func() {
		var v struct{ Version, Platform string }
		if err := json.Unmarshal([]byte(must(ctx, t, p, layout.Binary, "version", "--json")), &v); err != nil {
			t.Fatal(err)
		}
		if v.Platform != "linux/arm64" {
			t.Fatalf("%s on the pi says platform %s", layout.Binary, v.Platform)
		}
		out, err := os.ReadFile(filepath.Join(l.dir, "provision-pi.txt"))
		if err != nil || !strings.Contains(string(out), "Debian 12 (bookworm), arm64") {
			t.Errorf("the pi's plan does not name its release and architecture (%v):\n%s", err, out)
		}
	})
	l.nightlyAndSync(ctx, t)

	step(t, "reboot pi: the timer unlocks", func() {
		start := time.Now()
		if err := p.Reboot(ctx, arm64BootTimeout); err != nil {
			t.Fatal(err)
		}
		timing("PiArm64: boot (reboot to ssh)", time.Since(start))
		d := l.waitUnlocked(ctx, t, arm64UnlockTimeout)
		timing("PiArm64: unlock after ssh answered", d)
		l.assertUnlocked(ctx, t)
		log := must(ctx, t, p, "cat", "/var/log/borgkit/unlock.log")
		if !strings.Contains(log, "fetched the key from "+ServerName) {
			t.Fatalf("unlock.log does not say the key was fetched:\n%s", log)
		}
		sameTree(t, "mirror on the pi after reboot", l.mirrored, treeHashes(ctx, t, p, l.mirror()))
	})
	step(t, "sync again, watchdog on the pi", func() {
		l.job(ctx, t, s, "sync")
		must(ctx, t, p, "test", "-s", l.heartbeat())
		rss := peakRSS(ctx, t, p, "watchdog")
		t.Logf("job watchdog on the arm64 pi: %s", rss)
		if rec := record(ctx, t, p, "watchdog"); rec.Status != state.OK {
			t.Fatalf("watchdog record: %s (%s)", rec.Status, rec.Message)
		}
	})
	step(t, "job unlock from a closed disk, measured", func() {
		// The timer's retries would race the measured run.
		must(ctx, t, p, "systemctl", "stop", "borgkit-unlock.timer")
		must(ctx, t, p, "umount", l.piDisk.Mountpoint)
		must(ctx, t, p, "cryptsetup", "close", l.piDisk.LUKS.MapperName(l.piDisk))
		rss := peakRSS(ctx, t, p, "unlock")
		t.Logf("job unlock on the arm64 pi: %s", rss)
		l.assertUnlocked(ctx, t)
		must(ctx, t, p, "systemctl", "start", "borgkit-unlock.timer")
	})
	if os.Getenv("BORGKIT_VM_DEBS") == "" {
		t.Log("BORGKIT_VM_DEBS is not set: the arm64 package is not installed on the pi (make vm sets it)")
		return
	}
	step(t, "the arm64 package on the pi; provisioning links to it", func() {
		installDeb(ctx, t, p, "arm64")
		argv := []string{layout.Binary, "provision", OffsiteName, "--detailed-exitcode"}
		res, err := s.Run(ctx, argv...)
		var ee *host.ExitError
		if !errors.As(err, &ee) || ee.ExitCode != 3 || !strings.Contains(string(res.Stdout), "symlink to the borgkit package's "+builds.PackageBinary) {
			t.Fatalf("provision pi with the package there: %v\n%s%s", err, res.Stdout, res.Stderr)
		}
		if res, err := s.Run(ctx, argv...); err != nil {
			t.Fatalf("provision pi again: %v\n%s", err, planErrors(string(res.Stdout)))
		}
		if got := must(ctx, t, p, "readlink", layout.Binary); got != builds.PackageBinary {
			t.Fatalf("%s -> %s", layout.Binary, got)
		}
		runJob(ctx, t, p, "watchdog")
	})
}

// peakRSS runs `borgkit job NAME` on g and measures its peak memory two
// ways: borgkit's own (VmHWM of its process, the high-water mark, read
// every 50 ms while it runs) and GNU time's maximum resident set size,
// which is the largest of the job and the programs it waited for
// (cryptsetup's argon2id for the unlock). Both land in the vm-time lines.
func peakRSS(ctx context.Context, t *testing.T, g *Guest, job string) string {
	t.Helper()
	// The job runs under GNU time in the background; the loop keeps the
	// last VmHWM it saw of the borgkit process (time's child) until it
	// exits; /proc/PID/status has a tab after "VmHWM:", which a pattern of
	// spaces missed (every reading was 0). time's child is found through
	// the kernel's children list, not pgrep's name match (which found
	// nothing on the arm64 guest). Lab instrumentation, run by the harness
	// only.
	script := `out=$(mktemp); /usr/bin/time -v -o "$out" "$1" job "$2" & tp=$!
hwm=0; while kill -0 $tp 2>/dev/null; do
  p=$(cut -d' ' -f1 /proc/$tp/task/$tp/children 2>/dev/null); [ -n "$p" ] || p=$(pgrep -P $tp | head -n1)
  if [ -n "$p" ]; then v=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$p/status 2>/dev/null); [ -n "$v" ] && hwm=$v; fi
  sleep 0.05
done
wait $tp; rc=$?
echo "own_kb=$hwm"; sed -n 's/.*Maximum resident set size (kbytes): */tree_kb=/p; s/.*Elapsed (wall clock) time.*: */wall=/p' "$out"; rm -f "$out"; exit $rc`
	out := must(ctx, t, g, "sh", "-c", script, "sh", layout.Binary, job)
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	own, _ := strconv.Atoi(kv["own_kb"])
	tree, _ := strconv.Atoi(kv["tree_kb"])
	if tree == 0 || own == 0 {
		t.Fatalf("no peak memory read (borgkit's VmHWM and GNU time's maximum RSS):\n%s", out)
	}
	res := fmt.Sprintf("borgkit VmHWM %.1f MiB, with children (GNU time) %.1f MiB, wall %s", float64(own)/1024, float64(tree)/1024, kv["wall"])
	fmt.Fprintf(os.Stderr, "vm-mem %-40s %s\n", "PiArm64: job "+job, res)
	return res
}
