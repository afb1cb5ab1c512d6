package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Bounds under TCG on a busy two-core host, where a boot takes 45–120 s
// and a reboot (shutdown included) up to 6 minutes with five guests
// running (measured: 5m43s).
const (
	bootTimeout = 10 * time.Minute
	// unlockTimeout covers the timer's OnBootSec=30s, a slow userspace that
	// reaches timers.target late, and an argon2id open under emulation.
	unlockTimeout = 4 * time.Minute
)

// Where the lab puts things on john-ai.
const (
	labBinary = "/root/borgkit"
	labConfig = "/root/borgkit.yaml"
	dataDir   = "/srv/data"
	repoPath  = "/mnt/backup/data"
)

// labSetup is a pair of booted guests with the lab's config, and the steps
// that provision them the way a user would: john-ai from its own console
// (--local), the pi from john-ai over SSH with --format naming its disk.
type labSetup struct {
	*Pair
	dir      string
	site     []byte
	cfg      *config.Config
	piDisk   *config.Disk
	data     map[string]string // /srv/data on john-ai, by name
	mirrored map[string]string // repo data on john-ai after the last sync, by path
}

// newLab boots a pair (john-ai alone with serverOnly) and copies borgkit
// into every guest and the config onto john-ai.
func newLab(ctx context.Context, t *testing.T, serverOnly bool) *labSetup {
	t.Helper()
	img := labImage(t)
	return newLabWith(ctx, t, labSpec{server: img, serverOnly: serverOnly, snapshots: snapshotCache(img), binaryEverywhere: true})
}

// labSpec says which images a lab boots and what it copies in.
type labSpec struct {
	server, offsite *Image // offsite nil: the server's image
	serverOnly      bool
	snapshots       string // the pair snapshot cache, "" to boot
	// binaryEverywhere copies this machine's borgkit into the pi too; a pi
	// of another architecture gets its build from provisioning instead.
	binaryEverywhere bool
	// site edits the lab's config before it is parsed and copied in (nil:
	// the config as SiteConfig makes it).
	site func([]byte) []byte
}

// newLabWith boots the pair spec describes and copies borgkit and the
// config onto john-ai.
func newLabWith(ctx context.Context, t *testing.T, spec labSpec) *labSetup {
	t.Helper()
	bin := borgkitBinary(t)
	dir := runDir(t)
	var p *Pair
	// The first pair of a run with an empty cache boots and saves the
	// snapshot here; the others wait for it.
	step(t, "prepare the pair (disks, keys, snapshot)", func() {
		var err error
		p, err = NewPair(ctx, PairConfig{Image: spec.server, OffsiteImage: spec.offsite, Dir: dir, Accel: accel(), Log: testLog{t},
			SnapshotCache: spec.snapshots, ServerOnly: spec.serverOnly})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { _ = p.Close(t.Failed() || keepEnv()) })
	site := p.SiteConfig()
	if spec.site != nil {
		site = spec.site(site)
	}
	cfg, err := config.Parse("vm-lab.yaml", site)
	if err != nil {
		t.Fatalf("the lab's own config does not parse: %v\n%s", err, site)
	}
	pi, _ := cfg.Host(OffsiteName)
	l := &labSetup{Pair: p, cfg: cfg, piDisk: pi.BackupDisk(), dir: dir, site: site}

	step(t, fmt.Sprintf("start %d guests (%s)", len(p.Guests()), bootKind(p)), func() {
		if err := p.Boot(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
	})
	step(t, "copy borgkit and the config", func() {
		to := p.Guests()
		if !spec.binaryEverywhere {
			to = []*Guest{p.Server}
		}
		if err := Parallel(func() error { return copyIn(ctx, to, labBinary, bin, 0o755) },
			func() error { return p.Server.WriteFile(ctx, labConfig, site, 0o600) }); err != nil {
			t.Fatal(err)
		}
	})
	return l
}

func copyIn(ctx context.Context, gs []*Guest, path string, data []byte, mode os.FileMode) error {
	var fns []func() error
	for _, g := range gs {
		fns = append(fns, func() error { return g.WriteFile(ctx, path, data, mode) })
	}
	return Parallel(fns...)
}

// provisionServer provisions john-ai from its own console, twice: the
// second run must change nothing.
func (l *labSetup) provisionServer(ctx context.Context, t *testing.T) {
	t.Helper()
	s := l.Server
	step(t, "provision john-ai --local", func() {
		// The USB disk is attached but not mounted: provisioning writes its
		// fstab line, mounts it and makes the repos on it, in one run.
		l.data = seedData(ctx, t, s, dataDir, 8, 256<<10)
		if err := s.WriteFile(ctx, filepath.Join(dataDir, "canary"), []byte("borgkit vm lab canary\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		l.saveOutput(t, "provision-john-ai.txt", must(ctx, t, s, labBinary, "--config", labConfig, "provision", ServerName, "--local"))
		l.assertServerDisk(ctx, t)
		must(ctx, t, s, "test", "-f", repoPath+"/config")
		must(ctx, t, s, layout.Binary, "provision", ServerName, "--local", "--detailed-exitcode")
	})
}

// provisionOffsite provisions the pi from john-ai with --format, checks
// the LUKS2 volume and its filesystem, and has the unlock open and mount it.
func (l *labSetup) provisionOffsite(ctx context.Context, t *testing.T) {
	t.Helper()
	s, pi := l.Server, l.Offsite
	step(t, "provision pi from john-ai with --format", func() {
		l.authorizeAdmin(ctx, t)
		argv := []string{layout.Binary, "provision", OffsiteName, "--format", l.piDisk.Device}
		res, err := s.Run(ctx, argv...)
		if err != nil {
			t.Fatalf("%v\n%s\n%s", err, res.Stdout, res.Stderr)
		}
		l.saveOutput(t, "provision-pi.txt", string(res.Stdout))
		must(ctx, t, pi, "cryptsetup", "isLuks", "--type", "luks2", l.piDisk.Device)
		// The header backup is kept on john-ai, for the recovery bundle.
		must(ctx, t, s, "test", "-s", layout.HeaderBackup(OffsiteName, l.piDisk.Name))
	})
	step(t, "filesystem inside LUKS", func() {
		l.ensureFilesystem(ctx, t)
	})
	step(t, "first unlock, then provision pi again", func() {
		must(ctx, t, pi, "systemctl", "start", "borgkit-unlock.service")
		l.assertUnlocked(ctx, t)
		// What provisioning makes on the disk itself (the mirror root) waits
		// for the disk to be mounted: a run now may still have that to do
		// (exit 3), and then the run after must change nothing.
		argv := []string{layout.Binary, "provision", OffsiteName, "--detailed-exitcode"}
		res, err := s.Run(ctx, argv...)
		var ee *host.ExitError
		if errors.As(err, &ee) && ee.ExitCode == 3 {
			l.saveOutput(t, "provision-pi-2.txt", string(res.Stdout))
			res, err = s.Run(ctx, argv...)
		}
		if err != nil {
			t.Fatalf("provision pi after the unlock does not settle: %v\n%s", err, planErrors(string(res.Stdout)))
		}
	})
}

// authorizeAdmin makes the admin's own key on john-ai and authorizes it
// on the pi by hand, beside what the pi's authorized_keys already holds:
// how borgkit reaches a host it has not provisioned yet.
func (l *labSetup) authorizeAdmin(ctx context.Context, t *testing.T) {
	t.Helper()
	s, pi := l.Server, l.Offsite
	must(ctx, t, s, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin@john-ai", "-f", "/root/.ssh/id_ed25519")
	pub := must(ctx, t, s, "cat", "/root/.ssh/id_ed25519.pub")
	appendFile(ctx, t, pi, "/root/.ssh/authorized_keys", []byte(pub+"\n"), 0o600)
}

// appendFile adds data to the end of path on g, making it (and its
// directory, 0700) when it is not there.
func appendFile(ctx context.Context, t *testing.T, g *Guest, path string, data []byte, mode os.FileMode) {
	t.Helper()
	must(ctx, t, g, "install", "-d", "-m", "0700", filepath.Dir(path))
	old, err := g.ReadFile(ctx, path)
	if err != nil {
		if _, serr := g.Run(ctx, "test", "-e", path); serr == nil {
			t.Fatal(err)
		}
		old = nil
	}
	if err := g.WriteFile(ctx, path, append(old, data...), mode); err != nil {
		t.Fatal(err)
	}
}

// job runs `borgkit job NAME` on g; a failure shows the job's log and
// record, which say why far better than the exit status.
func (l *labSetup) job(ctx context.Context, t *testing.T, g *Guest, name string) {
	t.Helper()
	runJob(ctx, t, g, name, []string{"findmnt", "--mountpoint", "/mnt/backup"})
}

// runJob runs `borgkit job NAME` on g; on a failure the test shows the
// job's log, its record and the output of diag.
func runJob(ctx context.Context, t *testing.T, g *Guest, name string, diag ...[]string) {
	t.Helper()
	res, err := g.Run(ctx, layout.Binary, "job", name)
	if err != nil {
		t.Fatalf("%s: borgkit job %s: %v\n%s%s\n%s", g.Name(), name, err, res.Stdout, res.Stderr, jobDiag(ctx, g, name, diag...))
	}
}

func jobDiag(ctx context.Context, g *Guest, name string, diag ...[]string) string {
	var b strings.Builder
	for _, argv := range append([][]string{{"tail", "-n", "40", filepath.Join(layout.LogDir, strings.ReplaceAll(name, "_", "-")+".log")},
		{"cat", filepath.Join(layout.StateDir, strings.ReplaceAll(name, "-", "_")+".json")}}, diag...) {
		res, err := g.Run(ctx, argv...)
		fmt.Fprintf(&b, "$ %s (%v)\n%s%s\n", host.QuoteArgv(argv), err, res.Stdout, res.Stderr)
	}
	return b.String()
}

// record reads a job's state record on g.
func record(ctx context.Context, t *testing.T, g *Guest, job string) state.Record {
	t.Helper()
	b, err := g.ReadFile(ctx, filepath.Join(layout.StateDir, job+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r state.Record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s record: %v\n%s", job, err, b)
	}
	return r
}

// nightlyAndSync backs up and mirrors, then compares the pi's mirror with
// the repo byte for byte.
func (l *labSetup) nightlyAndSync(ctx context.Context, t *testing.T) {
	t.Helper()
	step(t, "job nightly and job sync on john-ai", func() {
		l.job(ctx, t, l.Server, "nightly")
		l.job(ctx, t, l.Server, "sync")
		l.mirrored = treeHashes(ctx, t, l.Server, repoPath)
		sameTree(t, "mirror on the pi vs repo on john-ai", l.mirrored, treeHashes(ctx, t, l.Offsite, l.mirror()))
		must(ctx, t, l.Offsite, "test", "-s", l.heartbeat())
	})
}

// heartbeat is the file john-ai's sync leaves on the pi.
func (l *labSetup) heartbeat() string {
	return filepath.Join(layout.MirrorRoot(l.piDisk.Mountpoint), layout.HeartbeatDir, layout.HeartbeatName(ServerName))
}

// mirror is where the pi keeps the copy of john-ai's repo "data".
func (l *labSetup) mirror() string {
	return filepath.Join(layout.MirrorRoot(l.piDisk.Mountpoint), "data")
}

// planErrors picks the failed and conflicting steps out of a plan.
func planErrors(plan string) string {
	var out []string
	for _, line := range strings.Split(plan, "\n") {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "E ") || strings.HasPrefix(t, "! ") || strings.HasPrefix(t, "Plan:") ||
			strings.HasPrefix(t, OffsiteName+":") || strings.HasPrefix(t, ServerName+":") {
			out = append(out, t)
		}
	}
	return strings.Join(out, "\n")
}

// ensureFilesystem makes sure the LUKS volume holds ext4 with the
// configured UUID. Provisioning does that itself now (LUKSFormat's mkfs);
// when it did not, the test makes it, as a user of an older borgkit had
// to, and says so: that is a gap. Enabling the unlock timer starts a run at
// once, so the volume may already be open, or open and mounted.
func (l *labSetup) ensureFilesystem(ctx context.Context, t *testing.T) {
	t.Helper()
	pi := l.Offsite
	waitFor(ctx, t, "borgkit-unlock.service idle", 2*time.Minute, time.Second, func() (bool, string) {
		st, _ := pi.Output(ctx, "systemctl", "show", "-P", "ActiveState", "borgkit-unlock.service")
		return st != "activating" && st != "deactivating", st
	})
	mapper, name := l.piDisk.MapperPath(), l.piDisk.LUKS.MapperName(l.piDisk)
	if got, _ := findmnt(ctx, pi, l.piDisk.Mountpoint); got == mapper+" ext4" {
		t.Logf("provisioning made the filesystem, and the unlock run the timer started on enabling mounted it")
		return
	}
	opened := false
	if _, err := pi.Run(ctx, "test", "-e", mapper); err != nil {
		key, err := l.Server.ReadFile(ctx, l.cfg.LUKSKeyfile(l.cfgHost(OffsiteName), l.piDisk))
		if err != nil {
			t.Fatal(err)
		}
		mustIn(ctx, t, pi, key, "cryptsetup", "open", "--key-file", "-", l.piDisk.Device, name)
		opened = true
	}
	fs, _ := pi.Output(ctx, "blkid", "-p", "-s", "UUID", "-o", "value", mapper)
	if fs != l.piDisk.UUID {
		t.Logf("GAP: provisioning left no filesystem in the LUKS volume (blkid: %q); making ext4 %s in the test", fs, l.piDisk.UUID)
		must(ctx, t, pi, "mkfs.ext4", "-q", "-U", l.piDisk.UUID, mapper)
	} else {
		t.Logf("provisioning made the filesystem inside LUKS")
	}
	if opened {
		must(ctx, t, pi, "cryptsetup", "close", name)
	}
}

// saveOutput keeps a command's full output in the run directory and logs
// its summary lines: a plan is long, and its diff is only needed when
// something went wrong.
func (l *labSetup) saveOutput(t *testing.T, name, out string) {
	t.Helper()
	saveOutput(t, l.dir, name, out)
}

// saveOutput is labSetup.saveOutput for a run directory dir.
func saveOutput(t *testing.T, dir, name, out string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(out+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Plan:") || strings.Contains(line, "applied") || strings.Contains(line, "conflict") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

func (l *labSetup) cfgHost(name string) *config.Host {
	h, _ := l.cfg.Host(name)
	return h
}

// assertUnlocked checks the pi's backup disk is open and mounted from its
// mapper, as the kernel's mount table says, and holds the configured
// filesystem.
func (l *labSetup) assertUnlocked(ctx context.Context, t *testing.T) {
	t.Helper()
	want := l.piDisk.MapperPath() + " ext4"
	got, err := findmnt(ctx, l.Offsite, l.piDisk.Mountpoint)
	if err != nil || got != want {
		t.Fatalf("findmnt %s = %q (%v), want %q\nunlock journal:\n%s", l.piDisk.Mountpoint, got, err, want,
			journal(ctx, l.Offsite, "borgkit-unlock.service"))
	}
	uuid := must(ctx, t, l.Offsite, "findmnt", "-n", "-o", "UUID", "--mountpoint", l.piDisk.Mountpoint)
	if uuid != l.piDisk.UUID {
		t.Fatalf("%s holds filesystem %s, want the configured %s", l.piDisk.Mountpoint, uuid, l.piDisk.UUID)
	}
}

// assertServerDisk checks john-ai's USB disk is mounted on /mnt/backup,
// by its UUID: what fstab does at boot.
func (l *labSetup) assertServerDisk(ctx context.Context, t *testing.T) {
	t.Helper()
	uuid, err := l.Server.Output(ctx, "findmnt", "-n", "-o", "UUID", "--mountpoint", "/mnt/backup")
	if err != nil || uuid != USBUUID {
		t.Fatalf("john-ai: /mnt/backup holds %q (%v), want the USB disk %s; console:%s", uuid, err, USBUUID,
			grepLines(l.Server.Console(), "mnt-backup", "by-uuid", "Timed out"))
	}
}

// grepLines keeps the lines of s that contain any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, strings.TrimSpace(line))
				break
			}
		}
	}
	return "\n" + strings.Join(out, "\n")
}

// waitUnlocked waits for the boot-time unlock to mount the disk.
func (l *labSetup) waitUnlocked(ctx context.Context, t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	want := l.piDisk.MapperPath() + " ext4"
	return waitFor(ctx, t, "the unlock timer mounts "+l.piDisk.Mountpoint, timeout, 3*time.Second, func() (bool, string) {
		got, err := findmnt(ctx, l.Offsite, l.piDisk.Mountpoint)
		if err != nil {
			return false, err.Error()
		}
		return got == want, "mounted: " + got + "\n" + journal(ctx, l.Offsite, "borgkit-unlock.service")
	})
}
