package jobs_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/status"
)

// vzdumpFile writes a file named as vzdump names its archive of guest id,
// made at t.
func vzdumpFile(t *testing.T, dir, kind string, id int, at time.Time, ext string, size int) string {
	t.Helper()
	name := "vzdump-" + kind + "-" + strconv.Itoa(id) + "-" + at.In(time.Local).Format("2006_01_02-15_04_05") + ext
	if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestScanVzdump(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	vzdumpFile(t, dir, "qemu", 100, now.Add(-50*time.Hour), ".vma.zst", 10)
	newest100 := vzdumpFile(t, dir, "qemu", 100, now.Add(-2*time.Hour), ".vma.zst", 30)
	vzdumpFile(t, dir, "qemu", 100, now.Add(-1*time.Hour), ".log", 5) // the task log, not a dump
	ct := vzdumpFile(t, dir, "lxc", 101, now.Add(-3*time.Hour), ".tar.zst", 20)
	vzdumpFile(t, dir, "qemu", 102, now, ".vma.zst.notes", 1) // notes beside a dump
	os.Mkdir(filepath.Join(dir, "vzdump-qemu-103-2026_01_01-00_00_00.vma"), 0o755)
	os.WriteFile(filepath.Join(dir, "README"), nil, 0o644)

	got, err := jobs.ScanVzdump(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []state.Dump{
		{VMID: 100, Kind: "qemu", File: newest100, At: now.Add(-2 * time.Hour), Bytes: 30},
		{VMID: 101, Kind: "lxc", File: ct, At: now.Add(-3 * time.Hour), Bytes: 20},
	}
	for i := range got {
		got[i].At = got[i].At.In(now.Location())
	}
	for i := range want {
		want[i].At = want[i].At.In(now.Location())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if _, err := jobs.ScanVzdump(context.Background(), filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing directory listed without error")
	}
}

// TestStaleWatchesProxmoxDumps runs the real stale check over a dump
// directory: a fresh VM, a stale container and a watched guest with no
// dump alert as they should, a deleted guest's leftover dumps are ignored;
// then every guest is watched; then the directory is empty, then gone.
func TestStaleWatchesProxmoxDumps(t *testing.T) {
	l := newLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	now := time.Now()
	vzdumpFile(t, dir, "qemu", 100, now.Add(-2*time.Hour), ".vma.zst", 64)
	vzdumpFile(t, dir, "lxc", 105, now.Add(-80*time.Hour), ".tar.zst", 32)
	vzdumpFile(t, dir, "qemu", 120, now.Add(-900*time.Hour), ".vma.zst", 16) // a guest deleted long ago
	l.env.Host.Proxmox = &config.Proxmox{DumpDir: dir, MaxAge: "30h", Guests: []int{100, 105, 110}}
	l.env.Host.Mirrors = nil // no sync in this lab: only the Proxmox lines may be stale
	hint := "Check the backup job on the Proxmox server and the dumps in " + dir + "."

	if err := jobs.Stale(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai STALENESS ALERT",
		"Proxmox guest 100 dump age: 2h (OK)",
		"Proxmox guest 105 dump age: 80h (threshold: 30h)",
		"Proxmox guest 110 dump age: never (threshold: 30h)",
		"The backup of Proxmox guest 105 has not completed in over 30 hours.\n"+hint,
		"The backup of Proxmox guest 110 has never completed.\n"+hint)
	if strings.Contains(m[0].Body, "guest 120") {
		t.Errorf("an unwatched guest is in the alert:\n%s", m[0].Body)
	}
	d, err := status.Live(l.env)
	if err != nil {
		t.Fatal(err)
	}
	p := d.Proxmox
	if p == nil || p.Dir != dir || p.Level != status.LevelFailed || len(p.Guests) != 3 ||
		p.Guests[0].Level != status.LevelOK || p.Guests[1].Level != status.LevelFailed ||
		p.Guests[2].VMID != 110 || p.Guests[2].File != "" || p.Guests[2].Level != status.LevelFailed {
		t.Fatalf("dashboard: %+v", p)
	}

	// Without a list, every guest with a dump is watched, 120 too.
	l.env.Host.Proxmox.Guests = nil
	l.sink.Reset()
	if err := jobs.Stale(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	m = l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai STALENESS ALERT", "Proxmox guest 120 dump age: 900h (threshold: 30h)")
	if strings.Contains(m[0].Body, "guest 110") {
		t.Errorf("guest 110 is no longer listed, nor has a dump:\n%s", m[0].Body)
	}

	// An empty directory is most often an unmounted share.
	for _, name := range []string{"empty", "gone"} {
		os.RemoveAll(dir)
		if name == "empty" {
			os.Mkdir(dir, 0o755)
		}
		l.sink.Reset()
		if err := jobs.Stale(ctx(), l.env); err != nil {
			t.Fatal(err)
		}
		m = l.mails(1)
		cause := "no vzdump archive in " + dir
		if name == "gone" {
			cause = "open " + dir + ": no such file or directory"
		}
		wantMail(t, m[0], "[BACKUP] john-ai STALENESS ALERT", "Proxmox dumps: cannot tell ("+cause+")",
			"The age of the Proxmox dumps cannot be read.\nCheck that the share holding "+dir+" is mounted.")
		rec, _ := l.env.Store.Load("stale")
		if rec.Status != state.Warning {
			t.Fatalf("%s: stale record: %+v", name, rec)
		}
		if d, _ := status.Live(l.env); d.Proxmox.Level != status.LevelFailed || d.Proxmox.Error != cause {
			t.Fatalf("%s: dashboard: %+v", name, d.Proxmox)
		}
	}
}
