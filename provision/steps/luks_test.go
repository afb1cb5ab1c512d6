package steps_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/testing/loopdev"
)

// cheapKDF keeps luksFormat fast where the KDF is not what is tested.
var cheapKDF = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha256"}

func luksStep(dev string, allowed bool, key []byte, header *[]byte) *steps.LUKSFormat {
	return &steps.LUKSFormat{Device: dev, Allowed: allowed, FormatArgs: cheapKDF,
		Key: func(context.Context) ([]byte, error) { return key, nil }, KeyFrom: "john-ai:/root/.luks/offsite-backup.key",
		HeaderBackup: func(_ context.Context, img []byte) error {
			*header = img
			return nil
		}}
}

func TestLUKSFormatGuard(t *testing.T) {
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Skip("cryptsetup is not installed (make deps installs cryptsetup-bin)")
	}
	key := bytes.Repeat([]byte{0x5a}, 64)
	other := bytes.Repeat([]byte{0xa5}, 64)
	keyFile := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(keyFile, other, 0o600)
	tests := []struct {
		name    string
		prepare func(t *testing.T, d *loopdev.Device)
		allowed bool
		want    plan.Action
		reason  string
	}{
		{"blank, not named by --format", func(*testing.T, *loopdev.Device) {}, false, plan.Conflict, "pass --format"},
		{"ext4 signature", func(t *testing.T, d *loopdev.Device) { d.Run(t, "mkfs.ext4", "-q", "-F", d.Path) }, true, plan.Conflict, "TYPE=ext4"},
		{"foreign LUKS header", func(t *testing.T, d *loopdev.Device) {
			d.Run(t, append(append([]string{"cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--key-file", keyFile}, cheapKDF...), d.Path)...)
		}, true, plan.Conflict, "does not open (the keyfile john-ai:/root/.luks/offsite-backup.key)"},
		{"partition table", func(t *testing.T, d *loopdev.Device) {
			c := exec.Command("sfdisk", "--quiet", d.Path)
			c.Stdin = strings.NewReader("label: gpt\n,10M\n")
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v %s", err, out)
			}
		}, true, plan.Conflict, "signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := loopdev.New(t, 24<<20)
			tt.prepare(t, d)
			before := d.Hash(t)
			var header []byte
			s := luksStep(d.Path, tt.allowed, key, &header)
			c := check(t, host.NewLocal("pi"), s)
			if c.Action != tt.want || !strings.Contains(c.Reason, tt.reason) {
				t.Fatalf("got %v %q, want %v %q", c.Action, c.Reason, tt.want, tt.reason)
			}
			// Even a direct Apply, bypassing the plan, must refuse.
			if err := s.Apply(context.Background(), host.NewLocal("pi")); err == nil {
				t.Fatal("apply formatted a refused device")
			}
			if after := d.Hash(t); after != before {
				t.Fatal("device changed")
			}
		})
	}
	t.Run("blank and named", func(t *testing.T) {
		d := loopdev.New(t, 24<<20)
		var header []byte
		s := luksStep(d.Path, true, key, &header)
		h := host.NewLocal("pi")
		if c := check(t, h, s); c.Action != plan.Create {
			t.Fatalf("%+v", c)
		}
		converge(t, h, s)
		if !bytes.HasPrefix(header, []byte("LUKS\xba\xbe\x00\x02")) || len(header) < 16<<10 {
			t.Fatalf("header backup: %d bytes, starts %q", len(header), header[:min(8, len(header))])
		}
		// The key opens the header backup, as the recovery bundle needs.
		hb := filepath.Join(t.TempDir(), "header.img")
		os.WriteFile(hb, header, 0o600)
		kf := filepath.Join(t.TempDir(), "key")
		os.WriteFile(kf, key, 0o600)
		d.Run(t, "cryptsetup", "open", "--test-passphrase", "--key-file", kf, hb)
		// No header copy is left behind on the host.
		if left, _ := filepath.Glob("/run/borgkit-header.*"); len(left) > 0 {
			t.Fatalf("left behind: %v", left)
		}
	})
	// A device named twice, to format and to wipe (a stick's filesystem,
	// a foreign LUKS header), is wiped and formatted; the signature is
	// gone and the key opens the new header.
	for name, prepare := range map[string]func(d *loopdev.Device){
		"ext4": func(d *loopdev.Device) { d.Run(t, "mkfs.ext4", "-q", "-F", d.Path) },
		"foreign LUKS": func(d *loopdev.Device) {
			d.Run(t, append(append([]string{"cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--key-file", keyFile}, cheapKDF...), d.Path)...)
		},
	} {
		t.Run(name+", named to wipe", func(t *testing.T) {
			d := loopdev.New(t, 24<<20)
			prepare(d)
			var header []byte
			s := luksStep(d.Path, true, key, &header)
			s.Wipe = true
			h := host.NewLocal("pi")
			if c := check(t, h, s); c.Action != plan.Create || !strings.Contains(c.Summary, "wipefs --all") {
				t.Fatalf("%+v", c)
			}
			converge(t, h, s)
			kf := filepath.Join(t.TempDir(), "key")
			os.WriteFile(kf, key, 0o600)
			d.Run(t, "cryptsetup", "open", "--test-passphrase", "--key-file", kf, d.Path)
			if out, _ := exec.Command("blkid", "-p", "-o", "value", "-s", "TYPE", d.Path).Output(); strings.TrimSpace(string(out)) != "crypto_LUKS" {
				t.Fatalf("after the wipe blkid says %q", out)
			}
		})
	}
}
