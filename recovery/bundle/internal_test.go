package bundle

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fakeSys builds /sys/dev/block links the way the kernel lays them out.
func fakeSys(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(p, content string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(majmin, target string) {
		p := filepath.Join(root, "dev/block", majmin)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(filepath.Join(root, target), p); err != nil {
			t.Fatal(err)
		}
	}
	// sda: internal SATA disk, partition 1.
	mk("devices/pci0000:00/ata1/block/sda/removable", "0\n")
	mk("devices/pci0000:00/ata1/block/sda/sda1/partition", "1\n")
	link("8:1", "devices/pci0000:00/ata1/block/sda/sda1")
	// sdb: a card reader reporting removable=1, behind no USB path.
	mk("devices/platform/mmc/block/sdb/removable", "1\n")
	mk("devices/platform/mmc/block/sdb/sdb1/partition", "1\n")
	link("8:17", "devices/platform/mmc/block/sdb/sdb1")
	// sdc: a USB disk that says removable=0.
	mk("devices/pci0000:00/usb2/2-1/host6/block/sdc/removable", "0\n")
	link("8:32", "devices/pci0000:00/usb2/2-1/host6/block/sdc")
	// dm-0: LUKS on sdb1; dm-1: LUKS on sda1.
	mk("devices/virtual/block/dm-0/removable", "0\n")
	mk("devices/virtual/block/dm-0/slaves/sdb1/dev", "8:17\n")
	link("253:0", "devices/virtual/block/dm-0")
	mk("devices/virtual/block/dm-1/removable", "0\n")
	mk("devices/virtual/block/dm-1/slaves/sda1/dev", "8:1\n")
	link("253:1", "devices/virtual/block/dm-1")
	return root
}

func TestBlockRemovable(t *testing.T) {
	old := sysRoot
	sysRoot = fakeSys(t)
	defer func() { sysRoot = old }()
	for majmin, want := range map[string][2]bool{
		"8:1":   {false, true},
		"8:17":  {true, true},
		"8:32":  {true, true},
		"253:0": {true, true},
		"253:1": {false, true},
		"0:42":  {false, false},
	} {
		r, k := blockRemovable(majmin, 0)
		if r != want[0] || k != want[1] {
			t.Errorf("%s: removable %v known %v, want %v", majmin, r, k, want)
		}
	}
}

func TestRemovableWarningTolerant(t *testing.T) {
	old := sysRoot
	sysRoot = t.TempDir() // nothing there: unknown, never an error
	defer func() { sysRoot = old }()
	if w := removableWarning(t.TempDir()); w == "" {
		t.Error("no warning for an unknown device")
	}
}

func TestCheckBorgKeyRejectsGarbage(t *testing.T) {
	for name, in := range map[string]string{
		"empty":      "",
		"no header":  "hello\nworld\n",
		"bad base64": "BORG_KEY " + string(make64('a')) + "\n!!!\n",
		"not a map":  "BORG_KEY " + string(make64('a')) + "\n" + base64.StdEncoding.EncodeToString([]byte{0x92, 1, 2}) + "\n",
		"truncated":  "BORG_KEY " + string(make64('a')) + "\n" + base64.StdEncoding.EncodeToString([]byte{0x86, 0xa9}) + "\n",
	} {
		if _, err := CheckBorgKey([]byte(in), []byte("pw\n")); !errors.Is(err, ErrKeyFormat) {
			t.Errorf("%s: %v, want ErrKeyFormat", name, err)
		}
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}

func FuzzCheckBorgKey(f *testing.F) {
	f.Add([]byte("BORG_KEY "+string(make64('0'))+"\nhqlhbGdvcml0aG2mc2hhMjU2pGRhdGHaAZ7X\n"), []byte("pw"))
	f.Fuzz(func(t *testing.T, export, pass []byte) {
		_, _ = CheckBorgKey(export, pass) // must not panic or hang
	})
}

func TestBorgPassphrase(t *testing.T) {
	for in, want := range map[string]string{"pw\n": "pw", "pw\r\n": "pw", "pw\n\n": "pw", "p w \n": "p w ", "pw": "pw"} {
		if got := borgPassphrase([]byte(in)); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}
