package jobs_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
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
	want := []jobs.Dump{
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
// directory: a fresh VM, a stale container, a watched guest with no dump;
// then over a directory that is gone.
func TestStaleWatchesProxmoxDumps(t *testing.T) {
	l := newLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	now := time.Now()
	vzdumpFile(t, dir, "qemu", 100, now.Add(-2*time.Hour), ".vma.zst", 64)
	vzdumpFile(t, dir, "lxc", 105, now.Add(-80*time.Hour), ".tar.zst", 32)
	l.env.Host.Proxmox = &config.Proxmox{DumpDir: dir, MaxAge: "30h", Guests: []int{100, 110}}
	l.env.Host.Mirrors = nil // no sync in this lab: only the Proxmox lines may be stale

	if err := jobs.Stale(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai STALENESS ALERT",
		"Proxmox guest 100 dump age: 2h (OK)",
		"Proxmox guest 105 dump age: 80h (threshold: 30h)",
		"Proxmox guest 110 dump age: never (threshold: 30h)",
		"The backup of Proxmox guest 105 has not completed in over 30 hours.\nCheck the backup job on the Proxmox server and the dumps in "+dir+".",
		"The backup of Proxmox guest 110 has never completed.")

	d, err := status.Live(l.env)
	if err != nil {
		t.Fatal(err)
	}
	p := d.Proxmox
	if p == nil || p.Dir != dir || p.Level != status.LevelFailed || len(p.Guests) != 3 ||
		p.Guests[0].Level != status.LevelOK || p.Guests[1].Level != status.LevelFailed || p.Guests[2].File != "" {
		t.Fatalf("dashboard: %+v", p)
	}

	os.RemoveAll(dir)
	l.sink.Reset()
	if err := jobs.Stale(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	m = l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai STALENESS ALERT", "Proxmox dumps: cannot tell (open "+dir+": no such file or directory)",
		"The age of the Proxmox dumps cannot be read.\nCheck that the share holding "+dir+" is mounted.")
	rec, _ := l.env.Store.Load("stale")
	if rec.Status != state.Warning {
		t.Fatalf("stale record: %+v", rec)
	}
}
