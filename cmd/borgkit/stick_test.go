package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
	"github.com/borgkit/borgkit/testing/loopdev"
)

// runIn is run with stdin.
func runIn(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := executeIn(t, context.Background(), strings.NewReader(stdin), &out, &out, args...)
	return out.String(), code
}

const stickPass = "correct horse battery staple"

// --encrypt formats only the device it names, and only when that device
// is blank or --wipe names it too: a stick with a filesystem, a mounted
// device and a short passphrase are refused with the device untouched.
func TestEncryptedStickGuard(t *testing.T) {
	s := bundletest.Shared(t)
	cfg := writeConfig(t, string(s.ConfigYAML))
	base := []string{"recovery-bundle", "--config", cfg, "--root", s.Root, "--host", "john-ai"}

	fat := loopdev.New(t, 32<<20)
	fat.Run(t, "mkfs.ext4", "-q", "-F", fat.Path)
	before := fat.Hash(t)
	out, code := runIn(t, stickPass+"\n", append(base, "--encrypt", fat.Path)...)
	if code != exitFailed || !strings.Contains(out, "TYPE=ext4") || !strings.Contains(out, "--wipe "+fat.Path) {
		t.Errorf("a stick with a filesystem: exit %d\n%s", code, out)
	}
	if fat.Hash(t) != before {
		t.Fatal("the refused device changed")
	}

	mnt := t.TempDir()
	if out, err := exec.Command("mount", fat.Path, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	out, code = runIn(t, stickPass+"\n", append(base, "--encrypt", fat.Path, "--wipe", fat.Path)...)
	if code != exitFailed || !strings.Contains(out, "is mounted at "+mnt) {
		t.Errorf("a mounted stick: exit %d\n%s", code, out)
	}

	blank := loopdev.New(t, 32<<20)
	before = blank.Hash(t)
	out, code = runIn(t, "short\n", append(base, "--encrypt", blank.Path)...)
	if code != exitFailed || !strings.Contains(out, "at least 12 characters") {
		t.Errorf("a short passphrase: exit %d\n%s", code, out)
	}
	out, code = runIn(t, "", append(base, "--encrypt", blank.Path)...)
	if code != exitUsage || !strings.Contains(out, "no passphrase for the stick") {
		t.Errorf("no passphrase: exit %d\n%s", code, out)
	}
	if blank.Hash(t) != before {
		t.Fatal("a refused run changed the blank device")
	}
}

// A stick named to be wiped gets the GPT layout: an ext4 BORGKIT-KIT
// partition and a LUKS2 partition that the passphrase, typed as a person
// types it (one line on stdin), opens. Where device-mapper works (the VM
// lab proves that path in full, TestVMEncryptedStick) the bundle is
// written and verified on it; here cryptsetup open cannot map it, and the
// command fails there, saying so, with the stick laid out and the
// passphrase nowhere in its output.
func TestEncryptedStickFormat(t *testing.T) {
	s := bundletest.Shared(t)
	cfg := writeConfig(t, string(s.ConfigYAML))
	d := loopdev.NewPartitioned(t, 64<<20)
	// A new stick comes with a partition table.
	label := exec.Command("sfdisk", "--quiet", d.Path)
	label.Stdin = strings.NewReader("label: dos\n,,c\n")
	if b, err := label.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v %s", err, b)
	}
	out, code := runIn(t, stickPass+"\n", "recovery-bundle", "--config", cfg, "--root", s.Root, "--host", "john-ai", "--encrypt", d.Path, "--wipe", d.Path)
	if strings.Contains(out, stickPass) {
		t.Fatal("the output holds the passphrase")
	}
	kit, luks := d.Path+"p1", d.Path+"p2"
	if b, err := exec.Command("blkid", "-p", "-o", "export", kit).CombinedOutput(); err != nil || !strings.Contains(string(b), "LABEL=BORGKIT-KIT") || !strings.Contains(string(b), "TYPE=ext4") {
		t.Fatalf("the kit partition: %v %s\n(borgkit: exit %d %s)", err, b, code, out)
	}
	c := exec.Command("cryptsetup", "open", "--test-passphrase", luks)
	c.Stdin = strings.NewReader(stickPass + "\n")
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("the typed passphrase does not open the stick's LUKS partition: %v %s\n(borgkit: exit %d %s)", err, b, code, out)
	}
	dump, err := exec.Command("cryptsetup", "luksDump", luks).CombinedOutput()
	if err != nil || !strings.Contains(string(dump), "Version:       \t2") {
		t.Fatalf("not LUKS2: %v %s", err, dump)
	}
	if code == exitOK {
		if !strings.Contains(out, "onto the encrypted stick "+d.Path) {
			t.Errorf("output: %s", out)
		}
		return
	}
	if _, err := os.Stat("/dev/mapper/control"); err == nil && os.Getenv("BORGKIT_REQUIRE_DM") != "" {
		t.Fatalf("device-mapper is required here and the stick was not written: exit %d\n%s", code, out)
	}
	if code != exitFailed || !strings.Contains(out, "open") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	t.Logf("no device-mapper here: laid out, formatted and refused at the open, as expected (%s)", strings.TrimSpace(out[strings.LastIndex(out, "error:"):]))
}
