package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// The archive scenario's machine: the second seed's ZFS backup server with
// its pool on one extra disk, laid out as the seed has it.
const (
	ArchiveName    = "archive"
	archiveAddress = "10.232.0.4"
	// TankSerial is the pool's disk; the user makes the pool on it before
	// provisioning, as the seed's admin did.
	TankSerial    = "borgkit-tank"
	tankPool      = "tank"
	secureDataset = "tank/Secure" // the encryption root, with a keyfile
	backupDataset = "tank/Secure/backup"
	borgDataset   = "tank/Secure/Borg"
	archiveRepo   = "/tank/Secure/Borg/backup-repo"
	archiveData   = "/tank/Secure/backup"
	zfsKeyfile    = "/etc/borgkit/keys/tank-Secure.key"
	// archiveBootTimeout bounds a boot or reboot: the ZFS units add to
	// it, and a reboot on a busy host took nearly 5 minutes.
	archiveBootTimeout = 10 * time.Minute
)

// archiveConfig is the archive host of the example config, with what the
// seed encrypts: tank/Secure is the encryption root (keyfile, raw), the
// borg dataset has the seed's properties, and the repo is archived from a
// snapshot of tank/Secure/backup. No pull: there is no live server to pull
// from, so borgkit makes tank/Secure/backup itself. Schedules are off and
// alerts go to LabMail, as in SiteConfig.
func archiveConfig() []byte {
	return fmt.Appendf(nil, `%[1]shosts:
  - name: %[2]s
    role: archive
    address: %[3]s
    datasets:
      - name: %[4]s
        properties:
          encryption: aes-256-gcm
          keyformat: raw
          keylocation: file://%[5]s
      - name: %[6]s
      - name: %[7]s
        properties:
          compression: zstd
          atime: "off"
          recordsize: 1M
        mode: "0700"
    repos:
      - name: backup-repo
        path: %[8]s
        sources: [%[9]s]
        snapshot: %[6]s
        compression: zstd
        encryption: repokey-blake2
    schedules:
      pull: "off"
      nightly: "off"
      check: "off"
      verify: "off"
      scrub: "off"
      smart_short: "off"
      smart_long: "off"
      stale: "off"
      summary: "off"
`, LabHeader(), ArchiveName, archiveAddress, secureDataset, zfsKeyfile, backupDataset, borgDataset, archiveRepo, archiveData)
}

// zfsRecipe is DefaultZFSRecipe on labRecipe.
func zfsRecipe() ZFSRecipe {
	z := DefaultZFSRecipe()
	z.Base = labRecipe()
	return z
}

// skipUnlessZFS keeps the ZFS build out of a run that did not ask for it:
// BORGKIT_VM_ZFS=1 builds the ZFS image when the cache lacks it (minutes of
// compiling on the host), =0 skips, and unset runs the scenario only when
// the image is cached already.
func skipUnlessZFS(t *testing.T) {
	t.Helper()
	switch os.Getenv("BORGKIT_VM_ZFS") {
	case "1":
		return
	case "0":
		t.Skip("BORGKIT_VM_ZFS=0: the ZFS scenario runs with make vm-zfs (its module build alone takes about 16 minutes)")
	}
	if !ZFSCached(cacheDir(), zfsRecipe()) {
		t.Skipf("the ZFS image %s is not in %s: BORGKIT_VM_ZFS=1 builds it (zfs-dkms compiled on the host, once)",
			zfsRecipe().Hash(), ZFSCacheDir(cacheDir()))
	}
}

var zfsLayer onceImage

// zfsImage builds (or finds in the cache) the ZFS image and prints what its
// build measured.
func zfsImage(t *testing.T) *Image {
	t.Helper()
	img := zfsLayer.get(t, "zfs image build", 90*time.Minute, func(ctx context.Context, log io.Writer) (*Image, error) {
		return BuildZFS(ctx, cacheDir(), zfsRecipe(), log)
	})
	zb, err := ReadZFSBuild(img)
	if err != nil {
		t.Fatalf("ZFS image without its build record: %v", err)
	}
	how := "cached"
	if img.Built > 0 {
		how = "built now"
		timing("zfs layer: apt-get in the chroot", zb.Packages)
		timing("zfs layer: dkms autoinstall (native)", zb.ModuleBuild)
	}
	t.Logf("ZFS image %s (%s): %s; vermagic %s; packages %s, dkms autoinstall -k %s %s",
		filepath.Base(img.Dir), how, zb.Module, zb.Vermagic, zb.Packages.Round(time.Second), zb.Kernel, zb.ModuleBuild.Round(time.Second))
	return img
}

// archiveLab is the booted archive host and what the test knows of it.
type archiveLab struct {
	g   *Guest
	dir string
	cfg *config.Config
	// history is how many lines of `zpool history` the test has seen.
	history int
}

// TestVMArchiveZFS proves the archive role and its jobs on a real pool:
// provisioning makes the seed's datasets with their properties under a
// keyfile-encrypted root and the borg repo on them, changes nothing the
// second time and only the one property set back by hand the third; the
// nightly job archives a snapshot of the data dataset and destroys it; the
// scrub job scrubs. Then the datasets locked: the nightly job must fail
// without writing anything, provisioning must not plan a second repo where
// the real one is not mounted, and a reboot must bring the key, the
// mounts and the repo back by themselves. Every assertion reads real
// state — zfs get, zpool history (the pool's own log of every command that
// changed it), borg list and extract, file hashes — not exit codes alone.
// Last, the offline restore from the recovery bundle on a second machine
// (offlineRunbook).
func TestVMArchiveZFS(t *testing.T) {
	skipUnlessVM(t)
	skipUnlessZFS(t)
	t.Parallel()
	img := zfsImage(t) // before the scenario's clock starts: a cold build has its own timeout
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Minute)
	defer cancel()
	bin := borgkitBinary(t)
	dir := runDir(t)
	tank := Disk{Path: filepath.Join(dir, "tank.raw"), Serial: TankSerial}
	if err := sparseFile(tank.Path, 2<<30); err != nil {
		t.Fatal(err)
	}
	key, err := NewKey("borgkit-vm-lab")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("archive.yaml", archiveConfig())
	if err != nil {
		t.Fatalf("the scenario's config does not parse: %v\n%s", err, archiveConfig())
	}
	// The stick the recovery bundle goes onto, for the offline restore.
	stick := Disk{Path: filepath.Join(dir, "archive-stick.img"), Serial: archiveStickSerial}
	if err := sparseFile(stick.Path, 64<<20); err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, Config{Name: ArchiveName, Image: img, Dir: filepath.Join(dir, ArchiveName), Index: 4,
		LabAddress: archiveAddress + "/24", Disks: []Disk{tank, stick}, LoginKey: key, MemoryMB: 1536})
	a := &archiveLab{g: g, dir: dir, cfg: cfg}
	repo := cfg.Hosts[0].Repos[0]

	step(t, "boot the archive host (cold boot)", func() {
		if err := g.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := g.WaitSSH(ctx, archiveBootTimeout); err != nil {
			t.Fatal(err)
		}
		// The module the host built, loaded by the guest's own kernel.
		must(ctx, t, g, "modprobe", "zfs")
		ver := must(ctx, t, g, "cat", "/sys/module/zfs/version")
		t.Logf("zfs module %s on kernel %s; %s", ver, must(ctx, t, g, "uname", "-r"),
			strings.ReplaceAll(must(ctx, t, g, "zfs", "version"), "\n", ", "))
	})

	step(t, "zpool create on the extra disk", func() {
		waitFor(ctx, t, "udev names the pool's disk", time.Minute, time.Second, func() (bool, string) {
			_, err := g.Run(ctx, "test", "-b", tank.ByID())
			return err == nil, fmt.Sprint(err)
		})
		// A hostid of its own, recorded in the pool: the rescue machine
		// of the offline restore has another, as a real one would.
		must(ctx, t, g, "zgenhostid", "-f", archiveHostID)
		must(ctx, t, g, "zpool", "create", "-o", "ashift=12", tankPool, tank.ByID())
		if got := must(ctx, t, g, "zpool", "list", "-H", "-o", "name,health", tankPool); got != tankPool+"\tONLINE" {
			t.Fatalf("zpool list: %q", got)
		}
		a.newHistory(ctx, t)
		if err := Parallel(func() error { return g.WriteFile(ctx, labBinary, bin, 0o755) },
			func() error { return g.WriteFile(ctx, labConfig, archiveConfig(), 0o600) }); err != nil {
			t.Fatal(err)
		}
	})

	step(t, "provision archive --local", func() {
		out := must(ctx, t, g, labBinary, "--config", labConfig, "provision", ArchiveName, "--local")
		saveOutput(t, dir, "provision-archive.txt", out)
		made := a.newHistory(ctx, t)
		t.Logf("zpool history of the first provisioning:\n%s", strings.Join(made, "\n"))
		// What the pool logged is exactly the three creates, parents first,
		// each with the configured properties.
		want := []string{
			"zfs create -p -o encryption=aes-256-gcm -o keyformat=raw -o keylocation=file://" + zfsKeyfile + " " + secureDataset,
			"zfs create -p " + backupDataset,
			"zfs create -p -o atime=off -o compression=zstd -o recordsize=1M " + borgDataset,
		}
		if !slices.Equal(made, want) {
			t.Errorf("zpool history of the provisioning:\n%s\nwant:\n%s", strings.Join(made, "\n"), strings.Join(want, "\n"))
		}
		a.assertBorgProps(ctx, t, map[string]string{"compression": "zstd", "atime": "off", "recordsize": "1048576"})
		a.assertEncrypted(ctx, t)
		a.assertRepo(ctx, t, repo)
	})

	step(t, "provision again: no changes, the pool untouched", func() {
		a.provision(ctx, t, "provision-archive-2.txt", 0)
		if made := a.newHistory(ctx, t); len(made) > 0 {
			t.Errorf("a provisioning with nothing to do changed the pool:\n%s", strings.Join(made, "\n"))
		}
	})

	step(t, "zfs set atime=on by hand: provisioning sets back that one property", func() {
		must(ctx, t, g, "zfs", "set", "atime=on", borgDataset)
		a.newHistory(ctx, t)
		plan := a.provision(ctx, t, "plan-drift.txt", 3, "--dry-run")
		if !strings.Contains(plan, "Plan: 0 to create, 1 to change,") {
			t.Errorf("plan after zfs set atime=on: want exactly one change:\n%s", planErrors(plan)+"\n"+changedLines(plan))
		}
		if ch := changedLines(plan); !strings.Contains(ch, "zfs."+borgDataset) || !strings.Contains(ch, "zfs set atime=off;") {
			t.Errorf("the change planned is not atime=off on %s:\n%s", borgDataset, ch)
		}
		a.provision(ctx, t, "provision-drift.txt", 3)
		if made, want := a.newHistory(ctx, t), []string{"zfs set atime=off " + borgDataset}; !slices.Equal(made, want) {
			t.Errorf("zpool history of the provisioning after the drift: %q, want %q", made, want)
		}
		a.assertBorgProps(ctx, t, map[string]string{"compression": "zstd", "atime": "off", "recordsize": "1048576"})
		a.provision(ctx, t, "provision-archive-3.txt", 0)
	})

	var data map[string]string
	var first string
	step(t, "job nightly: an archive of the snapshot, the snapshot destroyed", func() {
		data = seedData(ctx, t, g, archiveData, 6, 256<<10)
		for k, v := range seedData(ctx, t, g, archiveData+"/sub", 2, 64<<10) {
			data["sub/"+k] = v
		}
		runJob(ctx, t, g, "nightly", []string{"zfs", "list", "-t", "all", "-r", tankPool})
		if rec := record(ctx, t, g, "nightly"); rec.Status != state.OK {
			t.Fatalf("nightly record: %q (%s)", rec.Status, rec.Message)
		}
		made := a.newHistory(ctx, t)
		snap := backupDataset + "@" + layout.NightlySnapshot
		if want := []string{"zfs snapshot " + snap, "zfs destroy " + snap}; !slices.Equal(made, want) {
			t.Errorf("zpool history of the nightly run: %q, want %q", made, want)
		}
		a.assertNoSnapshots(ctx, t)
		archives := a.archives(ctx, t, repo)
		if len(archives) != 1 || !strings.HasPrefix(archives[0], layout.ArchivePrefix) {
			t.Fatalf("archives after one nightly run: %v", archives)
		}
		first = archives[0]
		a.assertArchive(ctx, t, repo, first, data)
	})

	step(t, "job nightly over a snapshot left by a killed run", func() {
		// A run killed between snapshot and destroy leaves the snapshot;
		// the next run must replace it, not archive its stale content.
		must(ctx, t, g, "zfs", "snapshot", backupDataset+"@"+layout.NightlySnapshot)
		for k, v := range seedData(ctx, t, g, archiveData+"/later", 1, 32<<10) {
			data["later/"+k] = v
		}
		a.newHistory(ctx, t)
		runJob(ctx, t, g, "nightly", []string{"zfs", "list", "-t", "all", "-r", tankPool})
		snap := backupDataset + "@" + layout.NightlySnapshot
		if made, want := a.newHistory(ctx, t), []string{"zfs destroy " + snap, "zfs snapshot " + snap, "zfs destroy " + snap}; !slices.Equal(made, want) {
			t.Errorf("zpool history of the nightly run over a stale snapshot: %q, want %q", made, want)
		}
		a.assertNoSnapshots(ctx, t)
		archives := a.archives(ctx, t, repo)
		if len(archives) != 2 || archives[0] != first {
			t.Fatalf("archives after the second nightly run: %v", archives)
		}
		a.assertArchive(ctx, t, repo, archives[1], data)
	})

	step(t, "job scrub: a real scrub of the pool", func() {
		runJob(ctx, t, g, "scrub", []string{"zpool", "status", tankPool})
		if rec := record(ctx, t, g, "scrub"); rec.Status != state.OK {
			t.Fatalf("scrub record: %q (%s)", rec.Status, rec.Message)
		}
		if made, want := a.newHistory(ctx, t), []string{"zpool scrub " + tankPool}; !slices.Equal(made, want) {
			t.Errorf("zpool history of the scrub job: %q, want %q", made, want)
		}
		var scan string
		waitFor(ctx, t, "the scrub finishes", 5*time.Minute, 2*time.Second, func() (bool, string) {
			out, _ := g.Output(ctx, "zpool", "status", tankPool)
			scan = grepLines(out, "scan:")
			return strings.Contains(scan, "scrub repaired"), out
		})
		if !strings.Contains(scan, "with 0 errors") {
			t.Errorf("scrub result: %s", scan)
		}
		t.Logf("zpool status after the job:%s", scan)
	})

	step(t, "datasets locked (key unloaded): nothing written where they are not mounted", func() {
		// What a reboot leaves when nothing loads the key, made here on
		// purpose so the safety does not depend on how the boot went.
		before := a.archives(ctx, t, repo)
		a.lock(ctx, t)
		plan := a.provisionPlan(ctx, t, "plan-locked.txt")
		// The plan must stop on the locked dataset (a conflict: nothing
		// of it is applied) and never plan a repo on the parent.
		if !strings.Contains(plan, secureDataset+" is locked (keystatus unavailable)") {
			t.Errorf("the plan with %s locked does not stop on it:\n%s", secureDataset, plan)
		}
		var wrong []string
		for _, line := range strings.Split(changedLines(plan), "\n") {
			if strings.HasPrefix(line, "+ repo.") {
				wrong = append(wrong, line)
			}
		}
		if len(wrong) > 0 {
			t.Errorf("with %s locked and unmounted (zfs get keystatus,mounted: %v), provisioning plans a second repo where the real one "+
				"is not mounted, on the pool's unencrypted root dataset:\n%s", secureDataset,
				a.zfsGet(ctx, t, borgDataset, "keystatus", "mounted"), strings.Join(wrong, "\n"))
		}
		res, err := g.Run(ctx, layout.Binary, "job", "nightly")
		var ee *host.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("job nightly with the repo's dataset locked: want a failure, got %v\n%s%s", err, res.Stdout, res.Stderr)
		}
		if rec := record(ctx, t, g, "nightly"); rec.Status == state.OK {
			t.Errorf("nightly record with the dataset locked: %q (%s)", rec.Status, rec.Message)
		} else {
			t.Logf("nightly with the dataset locked: %s, %s", rec.Status, rec.Message)
		}
		if mail, err := g.ReadFile(ctx, LabMail); err != nil || !strings.Contains(string(mail), alert.SubjectNightlyFailed) {
			t.Errorf("no %q mail in %s (%v)", alert.SubjectNightlyFailed, LabMail, err)
		}
		// The pool's root dataset holds only the empty mountpoint.
		if out := must(ctx, t, g, "find", "/"+secureDataset, "-mindepth", "1"); out != "" {
			t.Errorf("written under the unmounted /%s:\n%s", secureDataset, out)
		}
		a.assertNoSnapshots(ctx, t)
		must(ctx, t, g, "zfs", "load-key", secureDataset)
		must(ctx, t, g, "zfs", "mount", "-a")
		if after := a.archives(ctx, t, repo); !slices.Equal(after, before) {
			t.Errorf("archives before the locked run %v, after %v", before, after)
		}
		a.newHistory(ctx, t)
	})

	step(t, "reboot: the pool, its key and the repo come back by themselves", func() {
		before := a.archives(ctx, t, repo)
		if err := g.Reboot(ctx, archiveBootTimeout); err != nil {
			t.Fatal(err)
		}
		if got := must(ctx, t, g, "zpool", "list", "-H", "-o", "name,health", tankPool); got != tankPool+"\tONLINE" {
			t.Fatalf("zpool list after the reboot: %q", got)
		}
		st := a.zfsGet(ctx, t, borgDataset, "keystatus", "mounted")
		if zfsValue(st["keystatus"]) != "available" || zfsValue(st["mounted"]) != "yes" {
			// An archive host is unattended: its keyfile is there so that
			// the datasets open at boot without anyone typing.
			t.Errorf("after a reboot %s has keystatus %q, mounted %q: nothing loaded the key from %s; units:\n%s", borgDataset,
				st["keystatus"], st["mounted"], zfsKeyfile, zfsUnits(ctx, g))
		}
		// Whatever the boot did, provisioning must find the host as it left
		// it, and never make a new repo where the real one is not mounted.
		plan := a.provisionPlan(ctx, t, "plan-after-reboot.txt")
		if ch := changedLines(plan); ch != "" {
			t.Errorf("provisioning after the reboot plans changes:\n%s", ch)
		}
		if t.Failed() {
			return
		}
		if after := a.archives(ctx, t, repo); !slices.Equal(after, before) {
			t.Errorf("archives before the reboot %v, after %v", before, after)
		}
	})

	a.offlineRunbook(ctx, t, img, key, tank, stick, data)
}

// provisionPlan is provision --dry-run --detailed-exitcode, whatever its
// exit status, kept in the run directory.
func (a *archiveLab) provisionPlan(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	res, err := a.g.Run(ctx, layout.Binary, "provision", ArchiveName, "--local", "--dry-run", "--detailed-exitcode")
	var ee *host.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	saveOutput(t, a.dir, name, string(res.Stdout))
	return string(res.Stdout)
}

// zfsUnits is the state of the zfs units of the boot, for a message.
func zfsUnits(ctx context.Context, g *Guest) string {
	out, _ := g.Output(ctx, "systemctl", "list-units", "--all", "--no-legend", "--no-pager", "zfs*")
	en, _ := g.Output(ctx, "systemctl", "is-enabled", "zfs-load-key.service", "zfs-mount.service", "zfs-import-cache.service")
	return out + "\nis-enabled zfs-load-key, zfs-mount, zfs-import-cache: " + strings.ReplaceAll(en, "\n", " ") + "\n" +
		journal(ctx, g, "zfs-mount.service")
}

// provision runs the installed borgkit's provision --local
// --detailed-exitcode with extra flags, keeps its output in the run
// directory, and fails unless it exits with want (0 nothing to do, 3
// changes).
func (a *archiveLab) provision(ctx context.Context, t *testing.T, name string, want int, extra ...string) string {
	t.Helper()
	argv := append([]string{layout.Binary, "provision", ArchiveName, "--local", "--detailed-exitcode"}, extra...)
	res, err := a.g.Run(ctx, argv...)
	out := string(res.Stdout)
	saveOutput(t, a.dir, name, out)
	code := 0
	var ee *host.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode
	} else if err != nil {
		t.Fatalf("%s: %v", host.QuoteArgv(argv), err)
	}
	if code != want {
		t.Fatalf("%s: exit %d, want %d\n%s\n%s\n%s", host.QuoteArgv(argv), code, want, planErrors(out), changedLines(out), res.Stderr)
	}
	return out
}

// changedLines picks the steps a plan creates or changes.
func changedLines(plan string) string {
	var out []string
	for _, line := range strings.Split(plan, "\n") {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "+ ") || strings.HasPrefix(t, "~ ") {
			out = append(out, t)
		}
	}
	return strings.Join(out, "\n")
}

// newHistory returns the commands the pool logged since the last call:
// `zpool history` lists every command that changed the pool, so this is
// what really ran, whatever a program printed.
func (a *archiveLab) newHistory(ctx context.Context, t *testing.T) []string {
	t.Helper()
	var cmds []string
	for _, line := range strings.Split(must(ctx, t, a.g, "zpool", "history", tankPool), "\n") {
		// "2026-11-22.10:04:05 zfs create -p tank/Secure/backup"
		if _, cmd, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "History for") {
			cmds = append(cmds, cmd)
		}
	}
	if len(cmds) < a.history {
		t.Fatalf("zpool history shrank from %d to %d lines", a.history, len(cmds))
	}
	made := cmds[a.history:]
	a.history = len(cmds)
	return made
}

// zfsGet reads properties of name as zfs get -H -p prints them: property
// → "value source".
func (a *archiveLab) zfsGet(ctx context.Context, t *testing.T, name string, props ...string) map[string]string {
	t.Helper()
	out := must(ctx, t, a.g, "zfs", "get", "-H", "-p", "-o", "property,value,source", strings.Join(props, ","), name)
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, "\t"); len(f) == 3 {
			m[f[0]] = f[1] + " " + f[2]
		}
	}
	return m
}

// zfsValue is the value of a zfsGet entry, without its source.
func zfsValue(v string) string {
	val, _, _ := strings.Cut(v, " ")
	return val
}

// assertBorgProps checks the borg dataset's properties are set on it
// (source local), with the values want gives as zfs get -p prints them.
func (a *archiveLab) assertBorgProps(ctx context.Context, t *testing.T, want map[string]string) {
	t.Helper()
	var props []string
	for k := range want {
		props = append(props, k)
	}
	slices.Sort(props)
	got := a.zfsGet(ctx, t, borgDataset, props...)
	for _, k := range props {
		if got[k] != want[k]+" local" {
			t.Errorf("zfs get %s %s: %q, want %q", k, borgDataset, got[k], want[k]+" local")
		}
	}
}

// assertEncrypted checks tank/Secure is the encryption root of the
// datasets under it, keyed by the keyfile borgkit generated; then proves
// the file is the key: unload it, load it again from keylocation alone.
func (a *archiveLab) assertEncrypted(ctx context.Context, t *testing.T) {
	t.Helper()
	g := a.g
	root := a.zfsGet(ctx, t, secureDataset, "encryption", "keyformat", "keylocation", "encryptionroot", "keystatus")
	for k, v := range map[string]string{"encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": "file://" + zfsKeyfile,
		"encryptionroot": secureDataset, "keystatus": "available"} {
		if zfsValue(root[k]) != v {
			t.Errorf("zfs get %s %s: %q, want %q", k, secureDataset, root[k], v)
		}
	}
	for _, d := range []string{backupDataset, borgDataset} {
		got := a.zfsGet(ctx, t, d, "encryption", "encryptionroot")
		if zfsValue(got["encryption"]) != "aes-256-gcm" || zfsValue(got["encryptionroot"]) != secureDataset {
			t.Errorf("%s: encryption %q, encryptionroot %q; want aes-256-gcm under %s", d, got["encryption"], got["encryptionroot"], secureDataset)
		}
	}
	if st := must(ctx, t, g, "stat", "-c", "%a %U %s", zfsKeyfile); st != "400 root 32" {
		t.Errorf("keyfile %s: mode, owner, size %q, want 400 root 32", zfsKeyfile, st)
	}
	for _, d := range []string{secureDataset, backupDataset, borgDataset} {
		if st := must(ctx, t, g, "stat", "-c", "%a %U", "/"+d); st != "700 root" {
			t.Errorf("/%s: mode, owner %q, want 700 root", d, st)
		}
	}
	a.lock(ctx, t)
	if st := zfsValue(a.zfsGet(ctx, t, borgDataset, "keystatus")["keystatus"]); st != "unavailable" {
		t.Errorf("keystatus of %s after unload-key: %q", borgDataset, st)
	}
	must(ctx, t, g, "zfs", "load-key", secureDataset)
	must(ctx, t, g, "zfs", "mount", "-a")
	if st := a.zfsGet(ctx, t, borgDataset, "keystatus", "mounted"); zfsValue(st["keystatus"]) != "available" || zfsValue(st["mounted"]) != "yes" {
		t.Errorf("%s after load-key from the keyfile and mount: %v", borgDataset, st)
	}
	// Those were ours; the provisioning's history is what counts.
	a.newHistory(ctx, t)
}

// lock unmounts the datasets under the encryption root and unloads its key.
func (a *archiveLab) lock(ctx context.Context, t *testing.T) {
	t.Helper()
	for _, d := range []string{borgDataset, backupDataset, secureDataset} {
		must(ctx, t, a.g, "zfs", "unmount", d)
	}
	must(ctx, t, a.g, "zfs", "unload-key", secureDataset)
}

// assertRepo checks the borg repo is on the borg dataset and is encrypted
// with repokey-blake2, its passphrase and key export where borgkit keeps them.
func (a *archiveLab) assertRepo(ctx context.Context, t *testing.T, repo config.Repo) {
	t.Helper()
	g := a.g
	must(ctx, t, g, "test", "-s", archiveRepo+"/config")
	if got := must(ctx, t, g, "findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", archiveRepo); strings.Join(strings.Fields(got), " ") != borgDataset+" zfs" {
		t.Errorf("%s is on %q, want the dataset %s", archiveRepo, got, borgDataset)
	}
	res, err := g.RunCmd(ctx, host.Cmd{Argv: []string{"borg", "info", "--json", archiveRepo},
		Env: []string{"BORG_PASSCOMMAND=cat " + repo.PassphrasePath()}})
	if err != nil {
		t.Fatalf("borg info: %v\n%s", err, res.Stderr)
	}
	var info struct {
		Encryption struct {
			Mode string `json:"mode"`
		} `json:"encryption"`
	}
	if err := json.Unmarshal(res.Stdout, &info); err != nil || info.Encryption.Mode != "repokey-blake2" {
		t.Errorf("borg info: encryption %q (%v), want repokey-blake2", info.Encryption.Mode, err)
	}
	must(ctx, t, g, "test", "-s", layout.KeysDir+"/"+repo.Name+".borg-key")
}

// archives lists the repo's archives, oldest first.
func (a *archiveLab) archives(ctx context.Context, t *testing.T, repo config.Repo) []string {
	t.Helper()
	return strings.Fields(a.borg(ctx, t, repo, "", "list", "--short", repo.Path))
}

func (a *archiveLab) borg(ctx context.Context, t *testing.T, repo config.Repo, dir string, args ...string) string {
	t.Helper()
	res, err := a.g.RunCmd(ctx, host.Cmd{Argv: append([]string{"borg"}, args...), Dir: dir,
		Env: []string{"BORG_PASSCOMMAND=cat " + repo.PassphrasePath()}})
	if err != nil {
		t.Fatalf("borg %s: %v\n%s", strings.Join(args, " "), err, res.Stderr)
	}
	return string(res.Stdout)
}

// assertArchive checks the archive holds the data dataset's own layout
// (paths relative to its mountpoint, nothing of .zfs/snapshot) with the
// files' content: extracted and hashed.
func (a *archiveLab) assertArchive(ctx context.Context, t *testing.T, repo config.Repo, archive string, want map[string]string) {
	t.Helper()
	listing := a.borg(ctx, t, repo, "", "list", "--format", "{type} {path}{NL}", repo.Path+"::"+archive)
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		typ, p, _ := strings.Cut(line, " ")
		if strings.Contains(p, ".zfs") || strings.Contains(p, "tank/") {
			t.Errorf("archive %s holds %q: not the dataset's own layout", archive, p)
		}
		if typ == "-" {
			files = append(files, p)
		}
	}
	var wantFiles []string
	for p := range want {
		wantFiles = append(wantFiles, p)
	}
	slices.Sort(files)
	slices.Sort(wantFiles)
	if !slices.Equal(files, wantFiles) {
		t.Errorf("archive %s lists files %q, want %q", archive, files, wantFiles)
	}
	restore := "/root/restore-" + archive
	must(ctx, t, a.g, "mkdir", "-p", restore)
	a.borg(ctx, t, repo, restore, "extract", repo.Path+"::"+archive)
	sameTree(t, "files extracted from "+archive+" vs the data written", want, treeHashes(ctx, t, a.g, restore))
}

// assertNoSnapshots checks no snapshot is left anywhere in the pool.
func (a *archiveLab) assertNoSnapshots(ctx context.Context, t *testing.T) {
	t.Helper()
	if out := must(ctx, t, a.g, "zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", tankPool); out != "" {
		t.Errorf("snapshots left after the nightly run:\n%s", out)
	}
}
