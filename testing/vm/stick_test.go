package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
)

// runIn runs argv on g with stdin, for what a person would type.
func runIn(ctx context.Context, g *Guest, stdin string, argv ...string) (host.Result, error) {
	return g.RunCmd(ctx, host.Cmd{Argv: argv, Stdin: strings.NewReader(stdin)})
}

// stickSerial names the stick inside the guest.
const stickSerial = "borgkit-stick"

// TestVMEncryptedStick writes the recovery bundle onto an encrypted stick
// with a real device-mapper: a used stick (it carries an ext4 filesystem)
// is wiped only because --wipe names it, laid out as a GPT with the
// unencrypted BORGKIT-KIT partition and a LUKS2 partition with a
// passphrase given as a person types it, the bundle is written, verified
// and the stick closed. Then the runbook's steps that mount the kit
// partition and open the stick, taken from the runbook on the stick and
// run as written with the passphrase typed on stdin, open and mount it,
// and the bundle on it passes sha256sum -c and borgkit's verify, the kit
// partition included.
func TestVMEncryptedStick(t *testing.T) {
	skipUnlessVM(t)
	t.Parallel()
	img := labImage(t)
	site := bundletest.Shared(t) // a provisioned server's tree, built on the host
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	bin := borgkitBinary(t)
	dir := runDir(t)

	tarball := filepath.Join(dir, "site.tar")
	if out, err := exec.Command("tar", "-C", site.Root, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	siteTar, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	stickImg := filepath.Join(dir, "stick.img")
	if err := sparseFile(stickImg, 256<<20); err != nil {
		t.Fatal(err)
	}
	stick := Disk{Path: stickImg, Serial: stickSerial}
	key, err := NewKey("borgkit-vm-lab")
	if err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, Config{Name: "stick", Image: img, Dir: filepath.Join(dir, "stick"), Index: 6,
		LabAddress: "10.232.0.6/24", Disks: []Disk{stick}, LoginKey: key})
	const pass = "a stick passphrase typed by hand"
	step(t, "boot, push borgkit and the server's tree", func() {
		bootWithSite(ctx, t, g, bin, siteTar, site.ConfigYAML, "/root/site")
		// A used stick: it carries a filesystem.
		must(ctx, t, g, "mkfs.ext4", "-q", "-F", stick.ByID())
	})

	base := []string{labBinary, "recovery-bundle", "--config", labConfig, "--root", "/root/site", "--host", "john-ai", "--encrypt", stick.ByID()}
	step(t, "refused without --wipe", func() {
		res, err := runIn(ctx, g, pass+"\n", base...)
		if err == nil || !strings.Contains(string(res.Stderr), "--wipe "+stick.ByID()) {
			t.Fatalf("a used stick without --wipe: %v\n%s%s", err, res.Stdout, res.Stderr)
		}
		if got := must(ctx, t, g, "blkid", "-p", "-o", "value", "-s", "TYPE", stick.ByID()); got != "ext4" {
			t.Fatalf("the refused stick now carries %q", got)
		}
	})
	var out string
	step(t, "recovery-bundle --encrypt --wipe", func() {
		res, err := runIn(ctx, g, pass+"\n", append(base, "--wipe", stick.ByID())...)
		out = string(res.Stdout) + string(res.Stderr)
		if err := os.WriteFile(filepath.Join(dir, "recovery-bundle.txt"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatalf("recovery-bundle --encrypt: %v\n%s", err, out)
		}
		if strings.Contains(out, pass) {
			t.Fatal("the output holds the passphrase")
		}
		if !strings.Contains(out, "onto the encrypted stick "+stick.ByID()) {
			t.Fatalf("output:\n%s", out)
		}
	})
	step(t, "the stick's layout: the kit partition and the LUKS2 partition", func() {
		got := must(ctx, t, g, "lsblk", "--noheadings", "--raw", "--output", "TYPE,FSTYPE,LABEL", stick.ByID())
		lines := strings.Split(got, "\n")
		if len(lines) != 3 || strings.TrimSpace(lines[1]) != "part ext4 BORGKIT-KIT" || strings.TrimSpace(lines[2]) != "part crypto_LUKS" {
			t.Errorf("lsblk says\n%s\nwant the disk, part ext4 BORGKIT-KIT, part crypto_LUKS", got)
		}
	})
	step(t, "the stick is closed and unmounted", func() {
		if res, err := g.Run(ctx, "cryptsetup", "status", "borgkit-stick"); err == nil {
			t.Fatalf("still open: %s", res.Stdout)
		}
		if left := must(ctx, t, g, "sh", "-c", "ls -d /run/borgkit-stick.* 2>/dev/null || true"); left != "" {
			t.Fatalf("mountpoint left behind: %s", left)
		}
	})

	// The runbook is on the stick: read it once (open, mount, read, close)
	// to take its first shell block, the one that opens the stick.
	var kitStep, first string
	step(t, "read the runbook's first steps off the stick", func() {
		mustIn(ctx, t, g, []byte(pass+"\n"), "cryptsetup", "open", "--readonly", stick.ByID()+"-part2", "peek")
		must(ctx, t, g, "mkdir", "-p", "/mnt/peek")
		must(ctx, t, g, "mount", "-o", "ro", "/dev/mapper/peek", "/mnt/peek")
		md := must(ctx, t, g, "cat", "/mnt/peek/borgkit-recovery/runbook.md")
		must(ctx, t, g, "umount", "/mnt/peek")
		must(ctx, t, g, "cryptsetup", "close", "peek")
		block := func(after string) string {
			i := strings.Index(md, after)
			if i < 0 {
				t.Fatalf("the runbook has no %q:\n%s", after, md)
			}
			rest := md[i:]
			a := strings.Index(rest, "```sh\n")
			b := strings.Index(rest[a+6:], "```")
			if a < 0 || b < 0 {
				t.Fatalf("no shell block after %q:\n%s", after, rest)
			}
			return rest[a+6 : a+6+b]
		}
		kitStep = block("Mount the kit partition read-only")
		first = block("**Open the stick.**")
		if err := os.WriteFile(filepath.Join(dir, "runbook.md"), []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	step(t, "the runbook's first step, as written, with the passphrase typed", func() {
		// cryptsetup reads a typed passphrase up to the line end from stdin
		// when it is not a terminal: the line is what a person types.
		script := "set -e\n" + kitStep + first + "sha256sum -c MANIFEST.sha256 >/dev/null\n" + labBinary + " recovery-bundle verify --kit-dir \"$KIT\" \"$(pwd)\"\n"
		res, err := runIn(ctx, g, pass+"\n", "sh", "-c", script)
		if err != nil {
			t.Fatalf("the runbook's step:\n%s\n%v\n%s%s", first, err, res.Stdout, res.Stderr)
		}
		t.Logf("runbook step ran:\n%s\nverify:\n%s", first, res.Stdout)
		must(ctx, t, g, "umount", "/mnt/borgkit-stick", "/mnt/borgkit-kit")
		must(ctx, t, g, "cryptsetup", "close", "borgkit-stick")
	})
	step(t, "a wrong passphrase does not open it", func() {
		if res, err := runIn(ctx, g, "not the passphrase at all\n", "cryptsetup", "open", "--test-passphrase", stick.ByID()+"-part2"); err == nil {
			t.Fatalf("a wrong passphrase opened the stick: %s", res.Stdout)
		}
	})
}
