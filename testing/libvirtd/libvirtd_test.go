package libvirtd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The daemon answers on its own socket, keeps a defined domain, and the
// machine's libvirt directories are left as they were.
func TestDefineAndDump(t *testing.T) {
	before, _ := os.ReadDir("/etc/libvirt/qemu")
	d := Start(t)
	img := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Define(t, "guest1", img, "raw")
	// virsh without -c: the environment Start set points it here.
	out, err := exec.Command("virsh", "dumpxml", "guest1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "<source file='"+img+"'/>") {
		t.Fatalf("dumpxml: %v\n%s", err, out)
	}
	if list := d.Virsh(t, "list", "--all", "--name"); strings.TrimSpace(list) != "guest1" {
		t.Fatalf("list: %q", list)
	}
	after, _ := os.ReadDir("/etc/libvirt/qemu")
	if len(after) != len(before) {
		t.Fatalf("/etc/libvirt/qemu changed: %v -> %v", before, after)
	}
}
