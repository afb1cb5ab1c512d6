package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/builds"
	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
	"github.com/borgkit/borgkit/recovery/kit"
)

// offlineStick is the stick's serial in the guests.
const offlineStick = "borgkit-kit-stick"

// offlinePass is the stick's passphrase, typed on stdin.
const offlinePass = "the house burned down, the stick did not"

// TestVMOfflineRunbook is the day the house burned down, with the runbook
// as the test. A lab machine writes the recovery bundle with its offline
// kit onto an encrypted stick (the packages fetched here, on the host,
// beforehand: the guests have no network): the kit on its unencrypted
// BORGKIT-KIT partition, the bundle on its LUKS2 partition. The Pi's LUKS2
// disk holds the mirror. Then a bare Debian 12 (RescueRecipe: no borg, no
// python3, no cryptsetup), whose only NIC leads nowhere, gets the stick and
// the Pi's disk and runs the runbook's own command blocks, taken from the
// runbook on the stick, in order and as written: mount the kit partition,
// install from it, open the stick with its passphrase typed on stdin,
// check the bundle, find and unlock the disk, mount it read-only, set up
// borg, extract the newest archive.
// First with the disk's LUKS header zeroed (the plain open must fail, the
// open with the bundle's header backup must work), then, after a reboot,
// with the disk intact; each time the extracted files must be those john-ai
// backed up. A runbook step that no longer works fails the test.
func TestVMOfflineRunbook(t *testing.T) {
	skipUnlessVM(t)
	if os.Getenv("BORGKIT_VM_OFFLINE") == "0" {
		t.Skip("BORGKIT_VM_OFFLINE=0: the offline restore boots two machines and installs python under TCG, longer than make vm's share; make vm-offline runs it")
	}
	t.Parallel()
	labImg := labImage(t)
	bare := rescueImage(t)
	site := bundletest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Minute)
	defer cancel()
	bin := borgkitBinary(t)
	dir := runDir(t)

	// The packages come from Debian's mirror, as on a server with a
	// network; the cache beside the images keeps them between runs.
	kitCache := filepath.Join(cacheDir(), "kit")
	var repos []*kit.Repo
	step(t, "fetch the kit's packages on the host", func() {
		for _, arch := range kit.Arches {
			r, err := kit.Fetch(ctx, kit.Options{Cache: kitCache, Arch: arch, Status: t.Logf})
			if err != nil {
				t.Fatalf("the offline kit needs Debian's mirror on the host, as the image build does: %v", err)
			}
			repos = append(repos, r)
		}
	})
	otherBuilds := kitBuildFiles(t)

	piDisk := Disk{Path: filepath.Join(dir, "pi-backup.img"), Serial: PiDiskSerial}
	stickDisk := Disk{Path: filepath.Join(dir, "stick.img"), Serial: offlineStick}
	for _, d := range []struct {
		p    string
		size int64
	}{{piDisk.Path, 128 << 20}, {stickDisk.Path, 512 << 20}} {
		if err := sparseFile(d.p, d.size); err != nil {
			t.Fatal(err)
		}
	}
	cfgYAML := strings.Replace(string(site.ConfigYAML), "/dev/disk/by-id/usb-test", piDisk.ByID(), 1)
	lay, err := bundle.Layout(site.Cfg, site.Server, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	piLayout, ok := lay.Disk("pi/backup")
	if !ok {
		t.Fatalf("no pi/backup disk in the bundle layout: %+v", lay.Disks)
	}
	tarball := filepath.Join(dir, "site.tar")
	if out, err := exec.Command("tar", "-C", site.Root, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	siteTar, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewKey("borgkit-vm-lab")
	if err != nil {
		t.Fatal(err)
	}

	// The writer: a lab machine with the site's tree, the Pi's disk and
	// the stick.
	w := newGuest(t, Config{Name: "writer", Image: labImg, Dir: filepath.Join(dir, "writer"), Index: 7,
		LabAddress: "10.232.0.7/24", Disks: []Disk{piDisk, stickDisk}, LoginKey: key})
	const siteRoot = "/root/site"
	keyFile := siteRoot + "/etc/borgkit/keys/pi-backup.key"
	headerBackup := siteRoot + "/etc/borgkit/keys/pi-backup-header.img"
	var dataOffset int64
	step(t, "writer: boot, push borgkit, the site, the kit cache and the builds", func() {
		bootWithSite(ctx, t, w, bin, siteTar, []byte(cfgYAML), siteRoot)
		// WriteFile wants the directory there.
		for _, r := range repos {
			must(ctx, t, w, "mkdir", "-p", path.Join("/root/kitcache", kit.Release+"-"+r.Arch, "archives"))
		}
		for arch := range otherBuilds {
			must(ctx, t, w, "mkdir", "-p", path.Join("/root/builds", arch))
		}
		for _, r := range repos {
			cdir := path.Join("/root/kitcache", kit.Release+"-"+r.Arch)
			b, err := os.ReadFile(filepath.Join(kitCache, kit.Release+"-"+r.Arch, "repo.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteFile(ctx, path.Join(cdir, "repo.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, d := range r.Debs {
				b, err := os.ReadFile(filepath.Join(r.Path, d.File))
				if err != nil {
					t.Fatal(err)
				}
				if err := w.WriteFile(ctx, path.Join(cdir, "archives", d.File), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		for arch, b := range otherBuilds {
			if err := w.WriteFile(ctx, path.Join("/root/builds", arch, "borgkit"), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	})
	step(t, "writer: the Pi's LUKS2 disk with the mirror on it", func() {
		// The site's own keyfile; the header backup is made again from
		// this disk, where provisioning with --format keeps it.
		must(ctx, t, w, "cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--pbkdf", "pbkdf2",
			"--pbkdf-force-iterations", "1000", "--key-file", keyFile, piDisk.ByID())
		must(ctx, t, w, "rm", "-f", headerBackup)
		must(ctx, t, w, "cryptsetup", "luksHeaderBackup", piDisk.ByID(), "--header-backup-file", headerBackup)
		dump := must(ctx, t, w, "cryptsetup", "luksDump", piDisk.ByID())
		m := regexp.MustCompile(`(?m)^\s+offset:\s+(\d+) \[bytes\]`).FindStringSubmatch(dump[strings.Index(dump, "Data segments:"):])
		if m == nil {
			t.Fatalf("no data segment offset in luksDump:\n%s", dump)
		}
		dataOffset, _ = strconv.ParseInt(m[1], 10, 64)
		must(ctx, t, w, "cryptsetup", "open", "--key-file", keyFile, piDisk.ByID(), "pi-backup")
		must(ctx, t, w, "mkfs.ext4", "-q", "-U", piLayout.FSUUID, "/dev/mapper/pi-backup")
		must(ctx, t, w, "mkdir", "-p", "/mnt/pi")
		must(ctx, t, w, "mount", "/dev/mapper/pi-backup", "/mnt/pi")
		mirror := path.Join("/mnt/pi", piLayout.ReposDir)
		must(ctx, t, w, "mkdir", "-p", mirror)
		for _, r := range site.Repos {
			must(ctx, t, w, "cp", "-a", path.Join(siteRoot, "mnt/backup", r), mirror+"/")
		}
		must(ctx, t, w, "umount", "/mnt/pi")
		must(ctx, t, w, "cryptsetup", "close", "pi-backup")
	})
	var sizes string
	step(t, "writer: recovery-bundle --encrypt --kit onto the stick", func() {
		// No network in the lab: the packages come from the cache, as on a
		// server whose mirror is down.
		dead := "http://127.0.0.1:9/debian"
		start := time.Now()
		res, err := runIn(ctx, w, offlinePass+"\n", labBinary, "recovery-bundle", "--config", labConfig, "--root", siteRoot, "--host", "john-ai",
			"--encrypt", stickDisk.ByID(), "--kit", "--kit-cache", "/root/kitcache", "--kit-mirror", dead,
			"--kit-security", dead, "--builds", "/root/builds")
		out := string(res.Stdout) + string(res.Stderr)
		if werr := os.WriteFile(filepath.Join(dir, "recovery-bundle.txt"), []byte(out), 0o644); werr != nil {
			t.Fatal(werr)
		}
		if err != nil {
			t.Fatalf("recovery-bundle --encrypt --kit: %v\n%s", err, out)
		}
		if strings.Contains(out, offlinePass) {
			t.Fatal("the output holds the stick's passphrase")
		}
		t.Logf("recovery-bundle --encrypt --kit took %s", time.Since(start).Round(time.Second))
		// What the stick holds, partition by partition: the kit partition
		// must hold no secret, the LUKS partition the bundle.
		must(ctx, t, w, "mkdir", "-p", "/mnt/kit", "/mnt/stick")
		must(ctx, t, w, "mount", "-o", "ro", "/dev/disk/by-label/BORGKIT-KIT", "/mnt/kit")
		kitFiles := must(ctx, t, w, "find", "/mnt/kit", "-type", "f", "-printf", "%P\n")
		for _, f := range strings.Fields(kitFiles) {
			if !strings.HasPrefix(f, "kit/") && f != bundle.KitReadme && f != bundle.KitManifest {
				t.Errorf("the unencrypted kit partition holds %s", f)
			}
		}
		mustIn(ctx, t, w, []byte(offlinePass+"\n"), "cryptsetup", "open", "--readonly", stickDisk.ByID()+"-part2", "peek")
		must(ctx, t, w, "mount", "-o", "ro", "/dev/mapper/peek", "/mnt/stick")
		if kitIn := must(ctx, t, w, "sh", "-c", "ls /mnt/stick/borgkit-recovery/kit 2>/dev/null || true"); kitIn != "" {
			t.Errorf("the kit is in the LUKS partition too: %s", kitIn)
		}
		sizes = must(ctx, t, w, "sh", "-c", "lsblk -b -o NAME,SIZE,LABEL,FSTYPE "+stickDisk.ByID()+"; df -B1 /mnt/kit /mnt/stick; du -s -B1 /mnt/kit/kit/debian-12-amd64 /mnt/kit/kit/debian-12-arm64 /mnt/kit/kit/borgkit /mnt/kit /mnt/stick/borgkit-recovery")
		t.Logf("stick, bytes:\n%s", sizes)
		md := must(ctx, t, w, "cat", "/mnt/stick/borgkit-recovery/"+bundle.RunbookMD)
		if err := os.WriteFile(filepath.Join(dir, "runbook.md"), []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
		readme := must(ctx, t, w, "cat", "/mnt/kit/"+bundle.KitReadme)
		if err := os.WriteFile(filepath.Join(dir, "kit-README.md"), []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		must(ctx, t, w, labBinary, "recovery-bundle", "verify", "--kit-dir", "/mnt/kit", "/mnt/stick/borgkit-recovery")
		must(ctx, t, w, "umount", "/mnt/stick", "/mnt/kit")
		must(ctx, t, w, "cryptsetup", "close", "peek")
		if err := w.Stop(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	})

	// The Pi's disk with its LUKS header zeroed, as a failing disk or a
	// slip with dd leaves it: only the bundle's header backup opens it.
	zeroed := Disk{Path: filepath.Join(dir, "pi-backup-zeroed.img"), Serial: PiDiskSerial, ReadOnly: true}
	step(t, "zero the LUKS header of a copy of the Pi's disk", func() {
		if out, err := exec.Command("cp", "--sparse=always", piDisk.Path, zeroed.Path).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		if dataOffset < 1<<20 {
			t.Fatalf("data offset %d", dataOffset)
		}
		f, err := os.OpenFile(zeroed.Path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(make([]byte, dataOffset), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	})

	md, err := os.ReadFile(filepath.Join(dir, "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	rb := parseRunbook(t, string(md))
	want := hostTree(t, site.Real("/srv/data"), "cache/")

	stickRO := stickDisk
	stickRO.ReadOnly = true
	r := newGuest(t, Config{Name: "rescue", Image: bare, Dir: filepath.Join(dir, "rescue"), Index: 8,
		LabAddress: "10.232.0.8/24", Disks: []Disk{stickRO, zeroed}, LoginKey: key})
	step(t, "rescue: boot a bare Debian 12 with no network", func() {
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.WaitSSH(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
		for _, prog := range []string{"borg", "cryptsetup", "python3", "borgkit"} {
			if p, err := r.Output(ctx, "sh", "-c", "command -v "+prog); err == nil {
				t.Fatalf("the bare machine has %s already (%s)", prog, p)
			}
		}
		if route := must(ctx, t, r, "ip", "route", "show", "default"); route != "" {
			t.Fatalf("the rescue machine has a way out: %s", route)
		}
	})
	var timings []string
	pass := func(name string, headerZeroed bool) {
		var res string
		step(t, "rescue: the runbook, "+name, func() {
			script := rb.script(headerZeroed)
			if err := os.WriteFile(filepath.Join(dir, "runbook-"+strings.Fields(name)[0]+".sh"), []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := runIn(ctx, r, offlinePass+"\n", "sh", "-c", script)
			res = string(out.Stdout) + string(out.Stderr)
			if werr := os.WriteFile(filepath.Join(dir, "runbook-"+strings.Fields(name)[0]+".txt"), []byte(res), 0o644); werr != nil {
				t.Fatal(werr)
			}
			if err != nil {
				t.Fatalf("the runbook failed (%v); its output:\n%s", err, lastLines([]byte(res), 60))
			}
		})
		got := treeHashes(ctx, t, r, "/srv/restore/john-ai/srv/data")
		sameTree(t, "the files restored "+name+" and those john-ai backed up", want, got)
		timings = append(timings, name+": "+stepTimes(res))
		t.Logf("%s: %d files restored and compared; %s", name, len(got), stepTimes(res))
	}
	pass("header-zeroed (open with the bundle's header backup)", true)
	step(t, "rescue: reboot with the intact disk", func() {
		if err := r.Stop(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		intact := piDisk
		intact.ReadOnly = true
		r.SetDisks([]Disk{stickRO, intact})
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.WaitSSH(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
		must(ctx, t, r, "rm", "-rf", "/srv/restore")
	})
	pass("intact (open with the disk's own header)", false)

	// The test fails when the runbook does: the restore block as it was
	// before this test found it wanting (its listing paged with less, which
	// a minimal Debian lacks) stops the run.
	step(t, "rescue: a runbook step that does not work fails the run", func() {
		broken := *rb
		broken.restore = strings.Replace(rb.restore, "| more", "| less", 1)
		if broken.restore == rb.restore {
			t.Fatalf("no '| more' in the restore block:\n%s", rb.restore)
		}
		must(ctx, t, r, "rm", "-rf", "/srv/restore")
		out, err := runIn(ctx, r, offlinePass+"\n", "sh", "-c", broken.script(false))
		res := string(out.Stdout) + string(out.Stderr)
		if err == nil {
			t.Fatalf("the runbook with a broken restore block ran through:\n%s", lastLines([]byte(res), 20))
		}
		if !strings.Contains(res, "less") {
			t.Fatalf("the broken run failed, but not at the broken step (%v):\n%s", err, lastLines([]byte(res), 20))
		}
		t.Logf("the broken runbook failed as it should: %v%s", err, lastLines([]byte(res), 3))
	})
	t.Logf("stick:\n%s\ntimes:\n%s", sizes, strings.Join(timings, "\n"))
}

// runbook holds the runbook's shell blocks the restore runs, each as
// written.
type runbook struct {
	kit, install, stick, check, find, open, openHeader, mount, setup, restore, done string
}

// parseRunbook takes every ```sh block of the runbook and picks the ones a
// restore of repo john-ai from the Pi's disk runs; each must be there once.
func parseRunbook(t *testing.T, md string) *runbook {
	t.Helper()
	blocks := runbookBlocks(t, md)
	pick := func(what string, match func(string) bool) string {
		t.Helper()
		var found []string
		for _, b := range blocks {
			if match(b) {
				found = append(found, b)
			}
		}
		if len(found) != 1 {
			t.Fatalf("the runbook has %d blocks that %s, want 1:\n%s", len(found), what, strings.Join(found, "\n---\n"))
		}
		return found[0]
	}
	has := func(subs ...string) func(string) bool {
		return func(b string) bool {
			for _, s := range subs {
				if !strings.Contains(b, s) {
					return false
				}
			}
			return true
		}
	}
	return &runbook{
		kit:        pick("mount the kit partition", has("mount -o ro,noload /dev/disk/by-uuid/", "sha256sum -c KIT.sha256")),
		stick:      pick("open the stick", has("cryptsetup open --readonly /dev/disk/by-uuid/", "cd /mnt/borgkit-stick/")),
		check:      pick("check the bundle", has("sha256sum -c MANIFEST.sha256")),
		install:    pick("install from the kit", has("apt-get $APT install")),
		find:       pick("find the disk", has("cryptsetup luksUUID")),
		open:       pick("open with the keyfile", func(b string) bool { return strings.HasPrefix(b, "cryptsetup open --readonly --key-file") }),
		openHeader: pick("open with the header backup", func(b string) bool { return strings.HasPrefix(b, "cryptsetup open --readonly --header") }),
		mount: pick("mount the disk", func(b string) bool {
			return strings.Contains(b, "mount -o ro,noload /dev/mapper/") && !strings.Contains(b, "cryptsetup open")
		}),
		setup:   pick("set up borg for john-ai", has("export BORG_PASSCOMMAND", "/john-ai.pass'", `borg list --bypass-lock "$REPO"`)),
		restore: pick("restore john-ai", has("ARCHIVE=$(borg list", "/srv/restore/john-ai &&")),
		done:    pick("close up", has("cryptsetup close")),
	}
}

// script is the restore as one shell session (the blocks share KIT, B,
// DEV, REPO): the stick is plugged in, and each block runs as written,
// with a timestamp line before it. The session's stdin is the stick's
// passphrase as a person types it; only the block that opens the stick
// reads it (the others get /dev/null). With the header zeroed, the plain
// open must fail first, as the runbook expects, before the open with the
// header backup. A run starts from a closed stick: an earlier run in the
// same boot leaves it open.
func (rb *runbook) script(headerZeroed bool) string {
	var b strings.Builder
	b.WriteString("set -e\nexec 3<&0 </dev/null\n" +
		"umount /mnt/borgkit-stick 2>/dev/null || true\ncryptsetup close borgkit-stick 2>/dev/null || true\numount /mnt/borgkit-kit 2>/dev/null || true\n")
	blk := func(name, body string) {
		fmt.Fprintf(&b, "echo \"@@ %s $(date +%%s.%%N)\" >&2\n%s", name, body)
	}
	blk("kit", rb.kit)
	blk("install", rb.install)
	blk("stick", "{\n"+rb.stick+"} <&3\n")
	blk("check", rb.check)
	if headerZeroed {
		// luksUUID finds no header to read: a person reads its complaint
		// and goes on to the open, as the runbook says.
		blk("find", "set +e\n"+rb.find+"set -e\n")
		fmt.Fprintf(&b, "if ( %s ) >/tmp/open.out 2>&1; then echo 'the disk with a zeroed header opened with its own header' >&2; exit 1; fi\ncat /tmp/open.out >&2\n", strings.TrimSpace(rb.open))
		blk("open-header", rb.openHeader)
	} else {
		blk("find", rb.find)
		blk("open", rb.open)
	}
	blk("mount", rb.mount)
	blk("setup", rb.setup)
	blk("restore", rb.restore)
	blk("done", rb.done)
	b.WriteString("echo \"@@ end $(date +%s.%N)\" >&2\n")
	return b.String()
}

var stepLine = regexp.MustCompile(`(?m)^@@ (\S+) (\d+\.\d+)$`)

// stepTimes says how long each block of a script run took.
func stepTimes(out string) string {
	ms := stepLine.FindAllStringSubmatch(out, -1)
	var parts []string
	var restore float64
	for i := 0; i+1 < len(ms); i++ {
		a, _ := strconv.ParseFloat(ms[i][2], 64)
		b, _ := strconv.ParseFloat(ms[i+1][2], 64)
		parts = append(parts, fmt.Sprintf("%s %.1fs", ms[i][1], b-a))
		if ms[i][1] != "kit" && ms[i][1] != "install" && ms[i][1] != "stick" && ms[i][1] != "check" {
			restore += b - a
		}
	}
	return strings.Join(parts, ", ") + fmt.Sprintf("; unlock to extracted and closed %.1fs", restore)
}

// hostTree hashes the files under dir on this machine, without those under
// skip (relative, as excluded from the backup).
func hostTree(t *testing.T, dir, skip string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(rel, skip) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(b)
		m[filepath.ToSlash(rel)] = hex.EncodeToString(s[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// kitBuildFiles are borgkit's builds for the architectures other than the
// lab's.
func kitBuildFiles(t *testing.T) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, arch := range builds.Arches() {
		if arch != "amd64" {
			m[arch] = archBuild(t, arch)
		}
	}
	return m
}
