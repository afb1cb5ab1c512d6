package fstab_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/fstab"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
)

// The old setup's fstab lines for the backup disk and the NAS share are
// taken into the block and left commented out; uncommenting them and
// deleting the block gives the old file back. Two lines for one mountpoint,
// or a line mounting another filesystem there, change nothing.
func TestTakeOver(t *testing.T) {
	needFindmnt(t)
	const uuid = "3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f"
	old := "UUID=1111-2222 / ext4 defaults 0 1\n" +
		"# USB backup disk\n" +
		"UUID=" + strings.ToUpper(uuid) + " /mnt/backup/ ext4 defaults,nofail 0 2\n" +
		"//nas.lan/backups /mnt//nas cifs _netdev,credentials=/root/.smb 0 0\n" +
		"//nas.lan/music /mnt/music cifs ro,credentials=/root/.smb 0 0\n"
	own := "UUID=" + uuid + " /mnt/backup ext4 nofail 0 2\n" +
		"//nas.lan/backups /mnt/nas cifs _netdev,nofail,credentials=/etc/borgkit/nas.credentials 0 0\n"
	block := &steps.Block{Path: "/etc/fstab", Lines: []byte(own), Mode: 0o644, Owner: host.Root,
		Vet: fstab.Vet([]string{"/mnt/backup", "/mnt/nas"}),
		TakeOver: fstab.TakeOver([]fstab.Mount{
			{Source: "UUID=" + uuid, Target: "/mnt/backup"},
			{Source: "//nas.lan/backups", Target: "/mnt/nas", Share: true},
		})}
	dir := t.TempDir()
	h := host.NewRooted("john-ai", dir)
	ctx := context.Background()
	file := filepath.Join(dir, "etc/fstab")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(old)
	c, err := block.Check(ctx, h)
	if err != nil || c.Action != plan.Modify || !strings.Contains(c.Summary, "take over 2 line(s)") {
		t.Fatalf("check: %+v %v", c, err)
	}
	if err := block.Apply(ctx, h); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	lines := strings.Split(string(got), "\n")
	if !strings.HasPrefix(lines[2], fstab.TakenMarker) || lines[3] != "#UUID="+strings.ToUpper(uuid)+" /mnt/backup/ ext4 defaults,nofail 0 2" ||
		!strings.HasPrefix(lines[4], fstab.TakenMarker) || lines[5] != "#//nas.lan/backups /mnt//nas cifs _netdev,credentials=/root/.smb 0 0" ||
		lines[6] != "//nas.lan/music /mnt/music cifs ro,credentials=/root/.smb 0 0" {
		t.Fatalf("fstab after:\n%s", got)
	}
	if c, err := block.Check(ctx, h); err != nil || c.Action != plan.OK {
		t.Fatalf("second check: %+v %v", c, err)
	}
	// Undo by hand: drop the markers, uncomment, delete the block.
	undo := strings.Join([]string{lines[0], lines[1], lines[3][1:], lines[5][1:], lines[6]}, "\n") + "\n"
	if undo != old {
		t.Errorf("undoing by hand gives\n%q\nwant\n%q", undo, old)
	}

	for _, tc := range []struct{ name, file, reason string }{
		{"two lines", old + "/dev/sdb1 /mnt/backup ext4 defaults 0 2\n", "two lines for /mnt/backup (lines 3 and 6)"},
		{"another filesystem", strings.Replace(old, strings.ToUpper(uuid), "0000-1111", 1), "line 3 already mounts /mnt/backup"},
		{"another share", strings.Replace(old, "//nas.lan/backups", "//nas.lan/other", 1), "line 4 already mounts /mnt/nas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.file)
			c, err := block.Check(ctx, h)
			if err != nil || c.Action != plan.Conflict || !strings.Contains(c.Reason, tc.reason) {
				t.Fatalf("got %+v %v, want a conflict %q", c, err, tc.reason)
			}
			if err := block.Apply(ctx, h); err == nil {
				t.Error("apply went ahead")
			}
			if now, _ := os.ReadFile(file); string(now) != tc.file {
				t.Errorf("the refused fstab changed:\n%s", now)
			}
		})
	}
}
