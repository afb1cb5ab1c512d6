package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/recovery/bundle"
)

// The archive host's recovery stick and the hostids that make the rescue
// machine a different machine to ZFS: the pool records the hostid of the
// host that imported it, and zpool refuses an import from another hostid
// of a pool never exported.
const (
	archiveStickSerial = "borgkit-zfs-stick" // virtio-blk keeps 20 bytes of a serial
	archiveHostID      = "0xa2c41e01"
	rescueHostID       = "0x5e5c0e01"
	zfsRescueIndex     = 5
	zfsRescueAddress   = "10.232.0.5/24"
)

// archiveRunbook holds the runbook's shell blocks a restore of the archive
// host runs, each as written.
type archiveRunbook struct {
	check, pools, setup, restore, done string
}

// runbookBlocks is every ```sh block of a runbook, as written.
func runbookBlocks(t *testing.T, md string) []string {
	t.Helper()
	var blocks []string
	for _, part := range strings.Split(md, "```sh\n")[1:] {
		end := strings.Index(part, "```")
		if end < 0 {
			t.Fatalf("an unterminated shell block in the runbook: %.200s", part)
		}
		blocks = append(blocks, part[:end])
	}
	return blocks
}

// parseArchiveRunbook picks, out of every ```sh block of the runbook, the
// ones a restore of archive/backup-repo from its pool runs; each must be
// there once.
func parseArchiveRunbook(t *testing.T, md string) *archiveRunbook {
	t.Helper()
	blocks := runbookBlocks(t, md)
	pick := func(what string, subs ...string) string {
		t.Helper()
		var found []string
	next:
		for _, b := range blocks {
			for _, s := range subs {
				if !strings.Contains(b, s) {
					continue next
				}
			}
			found = append(found, b)
		}
		if len(found) != 1 {
			t.Fatalf("the runbook has %d blocks that %s, want 1:\n%s", len(found), what, strings.Join(found, "\n---\n"))
		}
		return found[0]
	}
	return &archiveRunbook{
		check:   pick("check the bundle", "sha256sum -c MANIFEST.sha256"),
		pools:   pick("open the datasets", "zpool import", "zfs load-key -L file://"),
		setup:   pick("set up borg for backup-repo", "export BORG_PASSCOMMAND", "/backup-repo.pass'", `borg list --bypass-lock "$REPO"`),
		restore: pick("restore backup-repo", "ARCHIVE=$(borg list", "/srv/restore/backup-repo &&"),
		done:    pick("close up", "zpool export"),
	}
}

// script is the restore as one shell session (the blocks share B and
// REPO): the stick is plugged in and mounted, the person works in the
// bundle's directory, and each block runs as written, with a timestamp
// line before it. The bundle's install step is not run: it is apt-get
// from Debian's mirror (the offline kit carries no ZFS), and the ZFS image
// has zfsutils-linux and borgbackup already.
func (rb *archiveRunbook) script() string {
	var b strings.Builder
	b.WriteString("set -e\nmkdir -p /mnt/stick\nmountpoint -q /mnt/stick || mount -o ro,noload /dev/disk/by-id/virtio-" + archiveStickSerial + " /mnt/stick\ncd /mnt/stick/borgkit-recovery\n")
	for _, s := range []struct{ name, body string }{
		{"check", rb.check}, {"pools", rb.pools}, {"setup", rb.setup}, {"restore", rb.restore}, {"done", rb.done},
	} {
		fmt.Fprintf(&b, "echo \"@@ %s $(date +%%s.%%N)\" >&2\n%s", s.name, s.body)
	}
	b.WriteString("echo \"@@ end $(date +%s.%N)\" >&2\n")
	return b.String()
}

// offlineRunbook is the day the archive host is gone, with the runbook as
// the test. The archive host writes its recovery bundle onto a stick and
// loses power (its pool never exported). A second machine from the ZFS
// image, with another hostid, no network and no key of the archive host,
// gets the pool's disk (write-protected) and the stick, and runs the
// runbook's own blocks, taken from the stick, in order and as written:
// check the bundle, import the pool read-only, load the dataset key from
// the bundle, mount, set up borg with the bundle's passphrase, extract the
// newest archive; the files must be those the archive host backed up. The
// runbook with a step broken (the import without -f, as it was) must fail.
func (a *archiveLab) offlineRunbook(ctx context.Context, t *testing.T, img *Image, key *Key, tank, stick Disk, want map[string]string) {
	t.Helper()
	g := a.g
	step(t, "recovery-bundle onto a stick, then the archive host loses power", func() {
		must(ctx, t, g, "mkfs.ext4", "-q", "-L", "BORGKIT", stick.ByID())
		must(ctx, t, g, "mkdir", "-p", "/mnt/stick")
		must(ctx, t, g, "mount", stick.ByID(), "/mnt/stick")
		out := must(ctx, t, g, labBinary, "--config", labConfig, "recovery-bundle", "--host", ArchiveName, "--to", "/mnt/stick/borgkit-recovery")
		saveOutput(t, a.dir, "recovery-bundle-archive.txt", out)
		md := must(ctx, t, g, "cat", "/mnt/stick/borgkit-recovery/"+bundle.RunbookMD)
		saveOutput(t, a.dir, "runbook-archive.md", md)
		t.Logf("bundle: %s", must(ctx, t, g, "du", "-sh", "/mnt/stick/borgkit-recovery"))
		must(ctx, t, g, "umount", "/mnt/stick")
		// The power cord: no zpool export, as when the house burns down.
		g.Kill()
	})
	md, err := os.ReadFile(filepath.Join(a.dir, "runbook-archive.md"))
	if err != nil {
		t.Fatal(err)
	}
	rb := parseArchiveRunbook(t, string(md))

	tank.ReadOnly, stick.ReadOnly = true, true
	r := newGuest(t, Config{Name: "zfs-rescue", Image: img, Dir: filepath.Join(a.dir, "zfs-rescue"), Index: zfsRescueIndex,
		LabAddress: zfsRescueAddress, Disks: []Disk{tank, stick}, LoginKey: key, MemoryMB: 1536})
	step(t, "rescue: boot a ZFS machine with no network and none of the archive host's keys", func() {
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.WaitSSH(ctx, archiveBootTimeout); err != nil {
			t.Fatal(err)
		}
		if route := must(ctx, t, r, "ip", "route", "show", "default"); route != "" {
			t.Fatalf("the rescue machine has a way out: %s", route)
		}
		if out, err := r.Output(ctx, "sh", "-c", "ls /etc/borgkit/keys"); err == nil && strings.TrimSpace(out) != "" {
			t.Fatalf("the rescue machine has keys of its own: %s", out)
		}
		must(ctx, t, r, "zgenhostid", "-f", rescueHostID)
		if out, err := r.Output(ctx, "zpool", "list", "-H", "-o", "name"); err == nil && strings.TrimSpace(out) != "" {
			t.Fatalf("the rescue machine imported %q at boot: the runbook's import would not be tested", out)
		}
	})
	run := func(name, script string) (string, error) {
		if err := os.WriteFile(filepath.Join(a.dir, "runbook-archive-"+name+".sh"), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := r.RunCmd(ctx, host.Cmd{Argv: []string{"sh", "-c", script}})
		res := string(out.Stdout) + string(out.Stderr)
		saveOutput(t, a.dir, "runbook-archive-"+name+".txt", res)
		return res, err
	}

	// The import as it was before this test found it wanting: the pool of
	// a host that never exported it, imported without -f, stops the run.
	step(t, "rescue: a runbook step that does not work fails the run", func() {
		broken := *rb
		broken.pools = strings.Replace(rb.pools, "zpool import -f ", "zpool import ", 1)
		if broken.pools == rb.pools {
			t.Fatalf("no 'zpool import -f' in the pools block:\n%s", rb.pools)
		}
		res, err := run("broken", broken.script())
		if err == nil {
			t.Fatalf("the runbook with the import without -f ran through:\n%s", lastLines([]byte(res), 20))
		}
		if !strings.Contains(res, "@@ pools") || strings.Contains(res, "@@ setup") {
			t.Fatalf("the broken run failed, but not at the import (%v):\n%s", err, lastLines([]byte(res), 20))
		}
		t.Logf("the broken runbook failed as it should: %v%s", err, lastLines([]byte(res), 3))
	})

	step(t, "rescue: the runbook, as written", func() {
		res, err := run("offline", rb.script())
		if err != nil {
			t.Fatalf("the runbook failed (%v); its output:\n%s", err, lastLines([]byte(res), 60))
		}
		for _, want := range []string{secureDataset + "\tkeystatus\tavailable", secureDataset + "\tmounted\tyes"} {
			if !strings.Contains(res, want) {
				t.Errorf("the runbook's zfs get does not show %q", want)
			}
		}
		if out := must(ctx, t, r, "sh", "-c", "zpool list -H -o name; true"); strings.TrimSpace(out) != "" {
			t.Errorf("the pool is still imported after the runbook's last block: %q", out)
		}
		got := treeHashes(ctx, t, r, "/srv/restore/backup-repo")
		sameTree(t, "the files restored on the rescue machine and those the archive host backed up", want, got)
		t.Logf("%d files restored offline and compared; %s", len(got), stepTimes(res))
	})
	if err := r.Stop(ctx, 2*time.Minute); err != nil {
		t.Error(err)
	}
}

// TestArchiveRunbookBlocks runs without a VM: the blocks the offline
// restore picks are found in the second seed's golden runbook, each once,
// with the site's real values, and the script runs them in the runbook's
// order.
func TestArchiveRunbookBlocks(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("..", "..", "recovery", "bundle", "testdata", "runbook-seed2.md.golden"))
	if err != nil {
		t.Fatal(err)
	}
	rb := parseArchiveRunbook(t, string(md))
	script := rb.script()
	last := -1
	for _, want := range []string{
		"sha256sum -c MANIFEST.sha256",
		"zpool import -f -N -o readonly=on tank",
		`zfs load-key -L file://"$B/zfs/archive-tank-Secure.key" tank/Secure`,
		"REPO=/tank/Secure/Borg/backup-repo",
		`borg extract --bypass-lock --list "$REPO::$ARCHIVE"`,
		"zpool export tank",
	} {
		i := strings.Index(script, want)
		if i < 0 {
			t.Fatalf("the script lacks %q:\n%s", want, script)
		}
		if i < last {
			t.Errorf("%q runs out of the runbook's order", want)
		}
		last = i
	}
}
