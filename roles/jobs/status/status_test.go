package status

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// now is the seed's "Generated: 2026-06-12 06:00:15", a Friday.
var now = time.Date(2026, 6, 12, 6, 0, 15, 0, time.UTC)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

const (
	kib = 1024.0
	gib = kib * kib * kib
	tib = gib * kib
)

// sz is x units in bytes: a size as df would round it.
func sz(x, unit float64) uint64 { return uint64(x * unit) }

func exampleConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse("borgkit.yaml", config.Example())
	if err != nil {
		t.Fatalf("parse example config: %v", err)
	}
	return cfg
}

func host(t testing.TB, cfg *config.Config, name string) *config.Host {
	t.Helper()
	h, ok := cfg.Host(name)
	if !ok {
		t.Fatalf("no host %s in the example config", name)
	}
	return h
}

// rec is a finished run of job from start to end with stats.
func rec(t testing.TB, job string, st state.Status, start, end string, stats any) *state.Record {
	t.Helper()
	r := &state.Record{Job: job, Status: st, PID: 4242, Host: "john-ai", Started: at(start)}
	if end != "" {
		r.Finished = at(end)
		r.Duration = r.Finished.Sub(r.Started)
		if st.Succeeded() {
			r.LastSuccess = r.Finished
		}
	}
	if st == state.Failed {
		r.ExitCode = 1
	}
	if stats != nil {
		b, err := json.Marshal(stats)
		if err != nil {
			t.Fatal(err)
		}
		r.Stats = b
	}
	return r
}

// writeState writes recs as the jobs do, one DIR/JOB.json each, and reads
// them back through the Store, so the fixtures go the real way.
func writeState(t testing.TB, recs ...*state.Record) map[string]*state.Record {
	t.Helper()
	dir := t.TempDir()
	for _, r := range recs {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, r.Job+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := (&state.Store{Dir: dir}).LoadAll()
	if err != nil {
		t.Fatalf("LoadAll: %v", err)
	}
	return got
}

var repoNames = []string{"john-ai", "john-ai-vms", "john-ai-containers", "john-ai-containerd", "john-ai-docker"}

func backupDisk() state.DiskUsage {
	return state.DiskUsage{Mount: "/mnt/backup", UUID: "3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f", Mounted: true,
		Size: sz(3.58, tib), Used: sz(289.3, gib), Avail: sz(3.1, tib), Percent: 8}
}

func liveDisks() []state.DiskUsage {
	return []state.DiskUsage{
		backupDisk(),
		{Mount: "/mnt/nas", Mounted: true, Size: sz(999.6, gib), Used: sz(471.2, gib), Avail: sz(528.4, gib), Percent: 48},
	}
}

func nightlyStats(failed string) state.NightlyStats {
	archives := []int{11, 9, 9, 8, 8}
	st := state.NightlyStats{Disk: backupDisk()}
	for i, n := range repoNames {
		rs := state.RepoStats{Name: n, Path: "/mnt/backup/" + n, Status: "ok", Archive: "nightly-2026-06-12T00:00",
			LastBackup: at("2026-06-12 00:00:05"), Archives: archives[i], Duration: 3 * time.Minute}
		if n == "john-ai" {
			rs.OriginalSize, rs.CompressedSize, rs.DeduplicatedSize = 2_880_000_000_000, 1_980_000_000_000, 132_000_000_000
		}
		guest := func(kind, name string) state.GuestStats {
			return state.GuestStats{Kind: kind, Name: name, Status: "ok", Archive: kind + ":" + name + ":2026-06-12T00:00:05",
				LastBackup: at("2026-06-12 00:00:05"), Archives: 9, Duration: time.Minute}
		}
		if n == "john-ai-vms" {
			rs.VMs = []string{"homeassistant", "claudecode", "openclaw"}
			for _, vm := range rs.VMs {
				rs.Guests = append(rs.Guests, guest("vm", vm))
			}
		}
		if n == "john-ai-containers" {
			rs.Guests = []state.GuestStats{guest("container", "adguard"), guest("container", "minecraft")}
		}
		if n == failed {
			rs.Status, rs.Archive, rs.LastBackup = "failed", "", time.Time{}
			if len(rs.Guests) > 0 {
				// The seed's failed night: one guest failed, the others backed up.
				g := &rs.Guests[len(rs.Guests)-1]
				g.Status, g.Archive, g.LastBackup = "failed", "", time.Time{}
				g.Problem = "virsh dumpxml openclaw: the domain is not defined here or libvirt cannot be reached"
			}
		}
		st.Repos = append(st.Repos, rs)
	}
	return st
}

func syncStats() state.SyncStats {
	return state.SyncStats{Mirrors: []state.MirrorStats{
		{Name: "nas", Target: "/mnt/nas/backups", Status: "ok", Repos: repoNames, SentBytes: 2_400_000_000},
		{Name: "offsite", Target: "pi:/mnt/backup", Status: "ok", Repos: repoNames, SentBytes: 2_400_000_000,
			Heartbeat: at("2026-06-12 02:04:30")},
	}}
}

func checkStats() state.CheckStats {
	var st state.CheckStats
	for _, n := range repoNames {
		st.Repos = append(st.Repos, state.RepoCheck{Name: n, Status: "ok", Duration: 3 * time.Minute})
	}
	return st
}

// auditStats is a night of the audit: every copy covered within the
// period; mismatch names files found differing on the NAS.
func auditStats(mismatch ...string) state.AuditStats {
	nas := state.CopyAudit{Name: "nas", Status: "ok", Files: 5120, Bytes: sz(2.9, tib), HashedFiles: 171, HashedBytes: sz(99, gib),
		SourceBytes: sz(99, gib), Duration: 41 * time.Minute, Covered: 0.97, Oldest: 29 * 24 * time.Hour}
	if len(mismatch) > 0 {
		nas.Status, nas.Mismatches = "mismatch", mismatch
		nas.LastMismatch, nas.LastMismatchFiles = at("2026-06-12 05:41:00"), mismatch
	}
	off := state.CopyAudit{Name: "offsite", Status: "ok", Files: 5120, Bytes: sz(2.9, tib), HashedFiles: 171, HashedBytes: sz(99, gib),
		Duration: 58 * time.Minute, Covered: 0.97, Oldest: 29 * 24 * time.Hour,
		LastMismatch: at("2026-04-02 05:30:00"), LastMismatchFiles: []string{"john-ai-vms/data/3/3012"}}
	// The Pi's snapshots: the segments compaction removed, which only
	// they hold.
	snaps := state.CopyAudit{Name: "offsite-snapshots", Status: "ok", Files: 212, Bytes: sz(96, gib), HashedFiles: 8, HashedBytes: sz(3.4, gib),
		Duration: 2 * time.Minute, Covered: 1, Oldest: 27 * 24 * time.Hour}
	return state.AuditStats{CoverDays: 30, Copies: []state.CopyAudit{nas, off, snaps}}
}

// drillFixture is the record of a drill over the example's repos.
func drillFixture() state.DrillStats {
	return state.DrillStats{OK: true, RepoCount: len(repoNames), RPO: 6 * time.Hour, RTO: 42 * time.Minute, Finished: at("2026-03-01 11:02:00")}
}

// staleStats is the stale check's record of the example's Proxmox dumps.
func staleStats(dumps ...state.Dump) state.StaleStats {
	return state.StaleStats{Proxmox: &state.ProxmoxStats{Dir: "/mnt/nas/proxmox/dump", Dumps: dumps, MaxAgeSeconds: 30 * 3600}}
}

// healthyRecords is the seed's dashboard: everything ran when cron said.
func healthyRecords(t testing.TB) []*state.Record {
	return []*state.Record{
		rec(t, "nightly", state.OK, "2026-06-12 00:00:00", "2026-06-12 00:42:10", nightlyStats("")),
		rec(t, "sync", state.OK, "2026-06-12 02:00:00", "2026-06-12 02:04:31", syncStats()),
		rec(t, "stale", state.OK, "2026-06-12 06:00:00", "2026-06-12 06:00:01", staleStats(
			state.Dump{VMID: 100, Kind: "qemu", File: "vzdump-qemu-100-2026_06_11-23_00_05.vma.zst", At: at("2026-06-11 23:00:05"), Bytes: int64(sz(14.2, gib))},
			state.Dump{VMID: 105, Kind: "lxc", File: "vzdump-lxc-105-2026_06_11-23_41_10.tar.zst", At: at("2026-06-11 23:41:10"), Bytes: int64(sz(1.3, gib))})),
		rec(t, "check", state.OK, "2026-06-06 09:00:00", "2026-06-06 09:15:40", checkStats()),
		rec(t, "verify", state.OK, "2026-06-12 03:00:00", "2026-06-12 05:12:00", checkStats()),
		rec(t, "restore_test", state.OK, "2026-06-01 10:00:00", "2026-06-01 10:08:12", state.RestoreStats{Files: []state.RestoredFile{
			{Repo: "john-ai", Archive: "nightly-2026-06-01T00:00", Path: "/etc/hostname", Status: "match", Bytes: 8},
			{Repo: "john-ai-vms", Guest: "vm homeassistant", Archive: "vm:homeassistant:2026-06-01T00:02", Path: "/var/lib/borgkit/vm-xml/homeassistant.xml", Status: "match", Bytes: 4100}}}),
		rec(t, "summary", state.OK, "2026-06-08 08:00:00", "2026-06-08 08:00:02", nil),
		rec(t, "drill", state.OK, "2026-03-01 10:20:00", "2026-03-01 11:02:00", drillFixture()),
		rec(t, "audit", state.OK, "2026-06-12 05:00:00", "2026-06-12 06:00:00", auditStats()),
	}
}

type fixture struct {
	name  string
	host  string
	recs  func(t testing.TB) []*state.Record
	disks []state.DiskUsage
	// reports are the offsite hosts' watchdog reports a server keeps.
	reports map[string]*state.WatchdogReport
}

// piReport is the Pi's watchdog report received at received.
func piReport(received string) map[string]*state.WatchdogReport {
	return map[string]*state.WatchdogReport{"pi": {Version: 1, Host: "pi", Sent: at(received), Received: at(received), Status: state.OK,
		Message: "heartbeats fresh, snapshots current, /mnt/backup 12% full", DiskMounted: true, DiskPercent: 12, Snapshots: 11, LatestSnapshot: "2026-06-12T023000Z"}}
}

// replace swaps records of the same job in base.
func replace(base []*state.Record, with ...*state.Record) []*state.Record {
	var out []*state.Record
	for _, r := range base {
		keep := true
		for _, w := range with {
			if w.Job == r.Job {
				keep = false
			}
		}
		if keep {
			out = append(out, r)
		}
	}
	return append(out, with...)
}

func without(base []*state.Record, job string) []*state.Record {
	var out []*state.Record
	for _, r := range base {
		if r.Job != job {
			out = append(out, r)
		}
	}
	return out
}

// deadPID is above any pid_max Linux allows, so no process has it.
const deadPID = 2147483646

var fixtures = []fixture{
	{name: "healthy", host: "john-ai", recs: healthyRecords, disks: liveDisks(), reports: piReport("2026-06-12 05:00:04")},
	// The Pi has been silent since last night.
	{name: "failing", host: "john-ai", disks: liveDisks(), reports: piReport("2026-06-11 22:00:04"), recs: func(t testing.TB) []*state.Record {
		nightly := rec(t, "nightly", state.Failed, "2026-06-12 00:00:00", "2026-06-12 00:23:15", nightlyStats("john-ai-vms"))
		nightly.Message = "borg create: Error: /storage/libvirt/images/102-openclaw: file changed\nwhile we backed it up"
		nightly.LastSuccess = at("2026-06-11 00:41:02")
		// The sync's cron line died two days ago.
		sync := rec(t, "sync", state.OK, "2026-06-10 02:00:00", "2026-06-10 02:05:12", syncStats())
		// The Proxmox server skipped its container for three nights and
		// lost a guest's dumps altogether.
		stale := rec(t, "stale", state.Warning, "2026-06-12 06:00:00", "2026-06-12 06:00:01", staleStats(
			state.Dump{VMID: 100, Kind: "qemu", File: "vzdump-qemu-100-2026_06_11-23_00_05.vma.zst", At: at("2026-06-11 23:00:05"), Bytes: int64(sz(14.2, gib))},
			state.Dump{VMID: 105, Kind: "lxc", File: "vzdump-lxc-105-2026_06_08-23_41_10.tar.zst", At: at("2026-06-08 23:41:10"), Bytes: int64(sz(1.3, gib))},
			state.Dump{VMID: 110}))
		audit := rec(t, "audit", state.Failed, "2026-06-12 05:00:00", "2026-06-12 06:00:00", auditStats("john-ai/data/0/417"))
		// claudecode's newest archive no longer restores its disk as it was.
		restore := rec(t, "restore_test", state.Failed, "2026-06-01 10:00:00", "2026-06-01 10:08:12", state.RestoreStats{Files: []state.RestoredFile{
			{Repo: "john-ai", Archive: "nightly-2026-06-01T00:00", Path: "/etc/hostname", Status: "match", Bytes: 8},
			{Repo: "john-ai-vms", Guest: "vm claudecode", Archive: "vm:claudecode:2026-06-01T00:03", Path: "/var/lib/borgkit/vm-xml/claudecode.xml", Status: "match", Bytes: 4100},
			{Repo: "john-ai-vms", Guest: "vm claudecode", Archive: "vm:claudecode:2026-06-01T00:03", Path: "/storage/libvirt/images/101-claudecode.qcow2", Status: "mismatch", Bytes: 1 << 30}}})
		return without(replace(healthyRecords(t), nightly, sync, stale, audit, restore), "drill")
	}},
	{name: "abandoned", host: "john-ai", disks: liveDisks(), recs: func(t testing.TB) []*state.Record {
		// Begin wrote this; then the process was SIGKILLed.
		sync := &state.Record{Job: "sync", Status: state.Running, PID: deadPID, Host: "john-ai",
			Started: at("2026-06-12 02:00:00"), LastSuccess: at("2026-06-11 02:04:40")}
		return replace(healthyRecords(t), sync)
	}},
	{name: "offsite", host: "pi", recs: func(t testing.TB) []*state.Record {
		disk := state.DiskUsage{Mount: "/mnt/backup", UUID: "b6e1f0a2-5c3d-4e8f-a1b2-c3d4e5f60718", Mounted: true,
			Size: sz(4.1, tib), Used: sz(0.45, tib), Avail: sz(3.4, tib), Percent: 12}
		return []*state.Record{rec(t, "watchdog", state.OK, "2026-06-12 06:00:00", "2026-06-12 06:00:02", state.WatchdogStats{
			Heartbeats: []state.Heartbeat{{Host: "john-ai", File: "/mnt/backup/.heartbeat/john-ai-last-success", At: at("2026-06-12 02:04:30")}},
			Disk:       disk,
			Snapshots:  &state.SnapshotWatch{Latest: "2026-06-12T021500Z", LatestTime: at("2026-06-12 02:15:00"), Count: 11},
			Report:     "sent to john-ai",
		}), rec(t, "snapshot", state.OK, "2026-06-12 02:15:00", "2026-06-12 02:15:03", state.SnapshotStats{
			Snapshot: "2026-06-12T021500Z", Files: 2210, Bytes: 494780232499, Frozen: 14, FrozenBytes: 2_400_000_000,
			Kept:      []string{"2026-06-12T021500Z"},
			Retention: state.SnapshotRetention{Daily: 7, Weekly: 4, ConfigDaily: 7, ConfigWeekly: 4},
			Usage:     state.SnapshotUsage{Snapshots: 11, HeldFiles: 31, HeldBytes: 15_100_000_000, DirBytes: 2_400_000, MirrorBytes: 494780232499},
		})}
	}},
}

func build(t testing.TB, f fixture) *Dashboard {
	t.Helper()
	cfg := exampleConfig(t)
	return Build(cfg, host(t, cfg, f.host), writeState(t, f.recs(t)...), f.disks, now, f.reports)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			d := build(t, f)
			var text, js, html bytes.Buffer
			if err := d.Text(&text, false); err != nil {
				t.Fatal(err)
			}
			if err := d.JSON(&js); err != nil {
				t.Fatal(err)
			}
			if err := d.HTML(&html); err != nil {
				t.Fatal(err)
			}
			golden(t, f.name+".txt", text.Bytes())
			golden(t, f.name+".json", js.Bytes())
			golden(t, f.name+".html", html.Bytes())

			var color bytes.Buffer
			if err := d.Text(&color, true); err != nil {
				t.Fatal(err)
			}
			golden(t, f.name+".color.txt", color.Bytes())
			if strings.Contains(text.String(), "\x1b") {
				t.Error("plain text carries ANSI escapes")
			}
			if !strings.Contains(color.String(), ansiGreen) {
				t.Error("coloured text has no green")
			}
		})
	}
}

// TestLayout holds the text to the seed's frame: 80 columns, every line in
// a box, boxes closed.
func TestLayout(t *testing.T) {
	for _, f := range fixtures {
		d := build(t, f)
		var b bytes.Buffer
		d.Text(&b, false)
		if !strings.HasSuffix(b.String(), "┘\n") {
			t.Errorf("%s: text does not end with a box and a newline", f.name)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if lines[1] != "║"+strings.Repeat(" ", (78-len(d.Title()))/2)+d.Title()+strings.Repeat(" ", 78-len(d.Title())-(78-len(d.Title()))/2)+"║" {
			t.Errorf("%s: title line %q", f.name, lines[1])
		}
		if lines[3] != "Generated: 2026-06-12 06:00:15" {
			t.Errorf("%s: %q", f.name, lines[3])
		}
		open := false
		for i, l := range lines {
			n := len([]rune(l))
			switch {
			case strings.HasPrefix(l, "╔"), strings.HasPrefix(l, "║"), strings.HasPrefix(l, "╚"),
				strings.HasPrefix(l, "┌"), strings.HasPrefix(l, "└"):
				if n != Width {
					t.Errorf("%s line %d is %d columns, want %d: %q", f.name, i+1, n, Width, l)
				}
			case n > maxLine:
				t.Errorf("%s line %d is %d columns, over %d: %q", f.name, i+1, n, maxLine, l)
			}
			switch {
			case strings.HasPrefix(l, "┌"):
				if open {
					t.Errorf("%s line %d opens a box inside a box", f.name, i+1)
				}
				open = true
			case strings.HasPrefix(l, "└"):
				open = false
			case strings.HasPrefix(l, "│") && !open:
				t.Errorf("%s line %d is outside a box: %q", f.name, i+1, l)
			}
		}
		if open || !strings.HasPrefix(lines[len(lines)-1], "└") {
			t.Errorf("%s: text does not end with a closed box", f.name)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, f := range fixtures {
		d := build(t, f)
		var b bytes.Buffer
		if err := d.JSON(&b); err != nil {
			t.Fatal(err)
		}
		var back Dashboard
		if err := json.Unmarshal(b.Bytes(), &back); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if !reflect.DeepEqual(d, &back) {
			t.Errorf("%s: round trip differs\n got: %+v\nwant: %+v", f.name, &back, d)
		}
	}
}

func issueTexts(d *Dashboard) []string {
	var out []string
	for _, i := range d.Issues {
		out = append(out, string(i.Level)+" "+i.Text)
	}
	return out
}

func TestIssues(t *testing.T) {
	want := map[string][]string{
		"healthy": nil,
		"failing": {
			"failed Nightly backup FAILED (2026-06-12 00:23, exit code 1): john-ai-vms (VM openclaw)",
			"failed Copy audit FAILED (2026-06-12 06:00, exit code 1): nas differs from the repos in john-ai/data/0/417",
			"failed Restore test FAILED (2026-06-01 10:08, exit code 1): john-ai-vms:/storage/libvirt/images/101-claudecode.qcow2 mismatch (vm claudecode)",
			"failed VM openclaw: backup failed: virsh dumpxml openclaw: the domain is not defined here or libvirt cannot be reached",
			"failed Proxmox guest 105 dump is stale: 3d old (threshold: 30h)",
			"failed Proxmox guest 110 has no dump in /mnt/nas/proxmox/dump",
			"failed pi's watchdog has not reported for 8h (threshold: 3h): pi is down or cut off",
			"failed Mirror sync is stale: last success 2d ago (threshold: 30h)",
			"warning No recovery drill recorded: rehearse a restore from the recovery bundle",
		},
		"abandoned": {
			"failed Mirror sync left running by pid 2147483646 since 2026-06-12 02:00: the process is gone (terminated abnormally)",
		},
		"offsite": nil,
	}
	for _, f := range fixtures {
		d := build(t, f)
		if got := issueTexts(d); !reflect.DeepEqual(got, want[f.name]) {
			t.Errorf("%s issues:\n got %q\nwant %q", f.name, got, want[f.name])
		}
		if len(d.Issues) == 0 && d.Summary != Healthy {
			t.Errorf("%s: summary %q", f.name, d.Summary)
		}
	}
}

// TestSummaryMail checks the subject and that both parts carry the model.
func TestSummaryMail(t *testing.T) {
	cases := map[string]string{
		"healthy":   "Weekly Summary — All healthy",
		"failing":   "Weekly Summary — 9 issues: Nightly backup FAILED (2026-06-12 00:23, exit code 1): john-ai-vms (VM openclaw)",
		"abandoned": "Weekly Summary — 1 issue: Mirror sync left running by pid 2147483646 since 2026-06-12 02:00: the process is gone (terminated…",
	}
	for _, f := range fixtures {
		want, ok := cases[f.name]
		if !ok {
			continue
		}
		d := build(t, f)
		m := SummaryMail(d)
		if m.Subject != want {
			t.Errorf("%s subject\n got %q\nwant %q", f.name, m.Subject, want)
		}
		var text, html bytes.Buffer
		d.Text(&text, false)
		d.HTML(&html)
		if m.Text != text.String() || m.HTML != html.String() {
			t.Errorf("%s: mail parts are not the dashboard's renderings", f.name)
		}
		if strings.ContainsAny(m.Subject, "\r\n") {
			t.Errorf("%s: line break in subject", f.name)
		}
	}
}

// parseHTML reads doc with encoding/xml in its HTML mode (no x/net/html
// here): the tags must balance and entities must be known.
func parseHTML(doc string) ([]string, error) {
	dec := xml.NewDecoder(strings.NewReader(doc))
	dec.Strict = false
	dec.AutoClose = xml.HTMLAutoClose
	dec.Entity = xml.HTMLEntity
	var stack, text []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			stack = append(stack, tk.Name.Local)
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != tk.Name.Local {
				return nil, errors.New("unbalanced </" + tk.Name.Local + ">")
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			text = append(text, string(tk))
		}
	}
	if len(stack) != 0 {
		return nil, errors.New("unclosed <" + strings.Join(stack, "><") + ">")
	}
	return text, nil
}

func TestHTMLParses(t *testing.T) {
	for _, f := range fixtures {
		var b bytes.Buffer
		if err := build(t, f).HTML(&b); err != nil {
			t.Fatal(err)
		}
		if _, err := parseHTML(b.String()); err != nil {
			t.Errorf("%s: %v", f.name, err)
		}
		for _, want := range []string{"<!DOCTYPE html>", `<meta charset="utf-8">`, "</html>"} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("%s: no %s", f.name, want)
			}
		}
	}
}

// TestHTMLEscapes feeds markup through a record's message (borg output
// lands there) and checks it comes out as text, not markup.
func TestHTMLEscapes(t *testing.T) {
	evil := `<script>alert("x")</script> & <b>bold</b>`
	r := rec(t, "restore_test", state.Failed, "2026-06-01 10:00:00", "2026-06-01 10:01:00", nil)
	r.Message = evil
	cfg := exampleConfig(t)
	d := Build(cfg, host(t, cfg, "john-ai"), writeState(t, replace(healthyRecords(t), r)...), liveDisks(), now, nil)
	var b bytes.Buffer
	if err := d.HTML(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<script>") || strings.Contains(b.String(), "<b>") {
		t.Fatalf("markup from a record reached the HTML:\n%s", b.String())
	}
	text, err := parseHTML(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(text, ""), evil) {
		t.Errorf("escaped message does not read back as %q", evil)
	}
}

func TestRunningAlive(t *testing.T) {
	self := state.Self()
	r := &state.Record{Job: "nightly", Status: state.Running, PID: self.PID, BootID: self.BootID, ProcStart: self.ProcStart,
		Started: at("2026-06-12 06:00:00"), LastSuccess: at("2026-06-11 00:42:10")}
	cfg := exampleConfig(t)
	d := Build(cfg, host(t, cfg, "john-ai"), writeState(t, replace(healthyRecords(t), r)...), liveDisks(), now, nil)
	if len(d.Issues) != 0 {
		t.Errorf("a nightly at work is not an issue: %q", issueTexts(d))
	}
	if c := d.Monitoring[0]; c.Status != "RUNNING" || c.Note != "since 2026-06-12 06:00" {
		t.Errorf("nightly check %+v", c)
	}
	// Its repos fall back to the last success, for every repo.
	if r := d.Repos[0]; r.Status != "" || !r.LastBackup.Equal(at("2026-06-11 00:42:10")) || r.Level != LevelOK {
		t.Errorf("repo while running: %+v", r)
	}
}

func TestWarnings(t *testing.T) {
	full := liveDisks()
	full[0].Percent, full[0].Used = 91, sz(3.26, tib)
	full[1].Mounted = false
	old := rec(t, "drill", state.OK, "2025-04-01 10:00:00", "2025-04-01 11:00:00", state.DrillStats{RepoCount: 3})
	check := rec(t, "check", state.OK, "2026-05-30 09:00:00", "2026-05-30 09:10:00", checkStats())
	cfg := exampleConfig(t)
	d := Build(cfg, host(t, cfg, "john-ai"), writeState(t, replace(healthyRecords(t), old, check)...), full, now, nil)
	want := []string{
		"warning USB Backup Disk (/mnt/backup) is 91% full (3.3T of 3.6T used, warning at 90%)",
		"warning NAS (/mnt/nas) is not mounted",
		"warning Last recovery drill was 2025-04-01, over 13 months ago",
		"warning Integrity check missed its schedule: last run 2026-05-30 09:00, due 2026-06-06 09:00",
	}
	if got := issueTexts(d); !reflect.DeepEqual(got, want) {
		t.Errorf("issues:\n got %q\nwant %q", got, want)
	}
	if d.Summary != "4 issues detected." {
		t.Errorf("summary %q", d.Summary)
	}
}

// TestJobWarning: a run that ended with a warning is listed, except the
// stale check's, whose point the dashboard raises itself.
func TestJobWarning(t *testing.T) {
	restore := rec(t, "restore_test", state.Warning, "2026-06-01 10:00:00", "2026-06-01 10:08:12", nil)
	restore.Message = "canary /etc/hostname changed since the archive\n(expected after a rename)"
	stale := rec(t, "stale", state.Warning, "2026-06-12 06:00:00", "2026-06-12 06:00:01", nil)
	stale.Message = "nightly backup age: 34h"
	nightly := rec(t, "nightly", state.Warning, "2026-06-12 00:00:00", "2026-06-12 00:42:10", nightlyStats(""))
	nightly.Message = "some sections did not end well"
	full := liveDisks()
	full[0].Percent = 91
	cfg := exampleConfig(t)
	d := Build(cfg, host(t, cfg, "john-ai"), writeState(t, replace(healthyRecords(t), restore, stale, nightly)...), full, now, nil)
	want := []string{
		"warning USB Backup Disk (/mnt/backup) is 91% full (290G of 3.6T used, warning at 90%)",
		"warning Nightly backup ended with a warning (2026-06-12 00:42): some sections did not end well",
		"warning Restore test ended with a warning (2026-06-01 10:08): canary /etc/hostname changed since the archive",
		// This stale record carries no listing of the Proxmox dumps.
		"warning Proxmox dumps in /mnt/nas/proxmox/dump not listed yet: the stale check lists them",
	}
	if got := issueTexts(d); !reflect.DeepEqual(got, want) {
		t.Errorf("issues:\n got %q\nwant %q", got, want)
	}
}

func TestNeverRan(t *testing.T) {
	cfg := exampleConfig(t)
	d := Build(cfg, host(t, cfg, "john-ai"), nil, nil, now, nil)
	want := []string{
		"failed Nightly backup has never succeeded (threshold: 30h)",
		"failed Mirror sync has never succeeded (threshold: 30h)",
		"warning Proxmox dumps in /mnt/nas/proxmox/dump not listed yet: the stale check lists them",
		"warning Integrity check has never run",
		"warning No recovery drill recorded: rehearse a restore from the recovery bundle",
	}
	if got := issueTexts(d); !reflect.DeepEqual(got, want) {
		t.Errorf("issues:\n got %q\nwant %q", got, want)
	}
	var b bytes.Buffer
	if err := d.Text(&b, false); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"UNKNOWN (not measured)", "Archives: - | Last backup: never", "Status: Never synced (to /mnt/nas/backups)", "homeassistant: never backed up"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("no %q in\n%s", s, b.String())
		}
	}
}

// A host with no nightly of its own (a borg server) shows no "Last
// nightly: Never" and no issue about it; a server with its nightly turned
// off but a record of one still shows that record.
func TestNoNightlyOfItsOwn(t *testing.T) {
	cfg := exampleConfig(t)
	cfg.Hosts = append(cfg.Hosts, config.Host{Name: "vault", Role: config.RoleBorgServer})
	vault := host(t, cfg, "vault")
	for _, tc := range []struct {
		name    string
		h       *config.Host
		records []*state.Record
		line    bool
	}{
		{"borg server", vault, nil, false},
		{"server", host(t, cfg, "john-ai"), nil, true},
		{"borg server with an old record", vault, []*state.Record{rec(t, "nightly", state.OK, "2026-06-12 00:00:00", "2026-06-12 00:42:10", nil)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recs map[string]*state.Record
			if tc.records != nil {
				recs = writeState(t, tc.records...)
			}
			d := Build(cfg, tc.h, recs, nil, now, nil)
			var b bytes.Buffer
			if err := d.Text(&b, false); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(b.String(), "Last nightly"); got != tc.line {
				t.Errorf("a line Last nightly: %v, want %v\n%s", got, tc.line, b.String())
			}
			for _, is := range issueTexts(d) {
				if !tc.line && strings.Contains(is, "Nightly") {
					t.Errorf("issue %q on a host without a nightly", is)
				}
			}
		})
	}
}

func TestUnreadableStats(t *testing.T) {
	r := rec(t, "nightly", state.OK, "2026-06-12 00:00:00", "2026-06-12 00:42:10", nil)
	r.Stats = json.RawMessage(`{"repos": "not a list"}`)
	cfg := exampleConfig(t)
	d := Build(cfg, host(t, cfg, "john-ai"), writeState(t, replace(healthyRecords(t), r)...), liveDisks(), now, nil)
	got := issueTexts(d)
	if len(got) != 1 || !strings.HasPrefix(got[0], "warning Nightly backup: unreadable stats in its record: ") {
		t.Errorf("issues %q", got)
	}
}

func TestOffsiteStale(t *testing.T) {
	// The watchdog says Warning for what Build finds itself: listed once.
	r := rec(t, "watchdog", state.Warning, "2026-06-12 06:00:00", "2026-06-12 06:00:02", state.WatchdogStats{
		Heartbeats: []state.Heartbeat{{Host: "john-ai", File: "/mnt/backup/.heartbeat/john-ai-last-success", At: at("2026-06-10 19:00:00")}},
	})
	cfg := exampleConfig(t)
	d := Build(cfg, host(t, cfg, "pi"), writeState(t, r), []state.DiskUsage{{Mount: "/mnt/backup", Mounted: true, Size: 100, Used: 96, Avail: 4, Percent: 96}}, now, nil)
	want := []string{
		"failed Heartbeat from john-ai is stale: last 35h ago (threshold: 30h)",
		"warning Backup Disk (/mnt/backup) is 96% full (96 of 100 used, warning at 95%)",
	}
	if got := issueTexts(d); !reflect.DeepEqual(got, want) {
		t.Errorf("issues:\n got %q\nwant %q", got, want)
	}
}

func TestDecimalSize(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 999: "999 B", 1000: "1.00 kB", 132_000_000_000: "132 GB", 2_880_000_000_000: "2.88 TB",
		1_980_000_000_000: "1.98 TB", 45_300_000: "45.3 MB", 999_600_000: "1.00 GB", 9_999_000: "10.0 MB",
	} {
		if got := DecimalSize(n); got != want {
			t.Errorf("DecimalSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("Repos mirrored: ", "john-ai, john-ai-vms, john-ai-containers, john-ai-containerd, john-ai-docker", 60)
	want := []string{
		"Repos mirrored: john-ai, john-ai-vms, john-ai-containers,",
		"                john-ai-containerd, john-ai-docker",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("wrap:\n got %q\nwant %q", got, want)
	}
}

// BenchmarkStatus is `borgkit status` end to end but for statfs: read the
// healthy site's records and two more from disk, build, render. The budget
// is 50 ms.
func BenchmarkStatus(b *testing.B) {
	recs := append(healthyRecords(b),
		rec(b, "scrub", state.OK, "2026-06-07 05:00:00", "2026-06-07 06:00:00", nil),
		rec(b, "smart_short", state.OK, "2026-06-10 06:00:00", "2026-06-10 06:02:00", nil))
	dir := b.TempDir()
	for _, r := range recs {
		data, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, r.Job+".json"), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cfg := exampleConfig(b)
	self := host(b, cfg, "john-ai")
	disks := liveDisks()
	store := &state.Store{Dir: dir}
	b.ReportAllocs()
	for b.Loop() {
		all, err := store.LoadAll()
		if err != nil || len(all) != len(recs) {
			b.Fatalf("LoadAll: %d records, %v", len(all), err)
		}
		if err := Build(cfg, self, all, disks, now, nil).Text(io.Discard, true); err != nil {
			b.Fatal(err)
		}
	}
}

// TestProxmoxSection: what the dashboard makes of the stale check's
// listing, in the cases the goldens do not show.
func TestProxmoxSection(t *testing.T) {
	cfg := exampleConfig(t)
	unreadable := staleStats()
	unreadable.Proxmox.Error = "no vzdump archive in /mnt/nas/proxmox/dump"
	otherDir := staleStats(state.Dump{VMID: 100, Kind: "qemu", File: "x", At: at("2026-06-11 23:00:05")})
	otherDir.Proxmox.Dir = "/mnt/old/dump"
	self := state.Self()
	running := &state.Record{Job: "stale", Status: state.Running, PID: self.PID, BootID: self.BootID, ProcStart: self.ProcStart,
		Host: "john-ai", Started: at("2026-06-12 06:00:00")}
	for name, tc := range map[string]struct {
		stale *state.Record
		level Level
		issue string // "" = none about Proxmox
	}{
		"unreadable":    {rec(t, "stale", state.Warning, "2026-06-12 06:00:00", "2026-06-12 06:00:01", unreadable), LevelFailed, "failed Proxmox dumps in /mnt/nas/proxmox/dump could not be listed: no vzdump archive in /mnt/nas/proxmox/dump"},
		"other dir":     {rec(t, "stale", state.OK, "2026-06-12 06:00:00", "2026-06-12 06:00:01", otherDir), LevelUnknown, "warning Proxmox dumps in /mnt/nas/proxmox/dump not listed yet: the stale check lists them"},
		"stale at work": {running, LevelRunning, ""},
		"listed, fresh": {healthyRecords(t)[2], LevelOK, ""},
	} {
		d := Build(cfg, host(t, cfg, "john-ai"), writeState(t, replace(healthyRecords(t), tc.stale)...), liveDisks(), now, nil)
		if d.Proxmox == nil || d.Proxmox.Level != tc.level {
			t.Errorf("%s: section %+v, want level %s", name, d.Proxmox, tc.level)
		}
		var got string
		for _, i := range issueTexts(d) {
			if strings.Contains(i, "Proxmox") {
				got = i
			}
		}
		if got != tc.issue {
			t.Errorf("%s: issue %q, want %q", name, got, tc.issue)
		}
	}
}

// TestOffsiteWatchIssues: what the server and the Pi say about the Pi's
// watchdog reports and snapshots.
func TestOffsiteWatchIssues(t *testing.T) {
	cfg := exampleConfig(t)
	issues := func(d *Dashboard) string {
		var out []string
		for _, is := range d.Issues {
			out = append(out, string(is.Level)+" "+is.Text)
		}
		return strings.Join(out, "\n")
	}
	server := func(r *state.WatchdogReport) string {
		return issues(Build(cfg, host(t, cfg, "john-ai"), writeState(t, healthyRecords(t)...), liveDisks(), now, map[string]*state.WatchdogReport{"pi": r}))
	}
	if got := server(nil); !strings.Contains(got, "failed pi's watchdog has never reported here") {
		t.Errorf("never reported: %s", got)
	}
	r := piReport("2026-06-12 05:30:00")["pi"]
	r.MailError = "sending: msmtp: authentication failed"
	if got := server(r); !strings.Contains(got, "failed pi's watchdog cannot mail: sending: msmtp: authentication failed") {
		t.Errorf("cannot mail: %s", got)
	}
	r.MailError, r.SnapshotOverdue = "", true
	if got := server(r); !strings.Contains(got, "warning pi: a push waits too long for the snapshot that keeps it") {
		t.Errorf("overdue: %s", got)
	}

	pi := func(recs ...*state.Record) string {
		return issues(Build(cfg, host(t, cfg, "pi"), writeState(t, recs...), nil, now, nil))
	}
	watch := rec(t, "watchdog", state.Warning, "2026-06-12 06:00:00", "2026-06-12 06:00:02", state.WatchdogStats{
		Snapshots: &state.SnapshotWatch{Count: 3, Overdue: true}, Report: "not sent to john-ai: Connection refused"})
	snap := rec(t, "snapshot", state.Failed, "2026-06-12 05:45:00", "2026-06-12 05:45:01", state.SnapshotStats{
		Retention: state.SnapshotRetention{Daily: 7, Weekly: 4, ConfigDaily: 2, Note: "the config asks for 2 daily, 0 weekly snapshots; this host keeps 7 daily, 4 weekly"}})
	snap.Message = "snapshot: mkdir: no space left on device"
	got := pi(watch, snap)
	for _, want := range []string{
		"warning Watchdog report not sent to john-ai: Connection refused",
		"failed A push arrived and no snapshot holds it past snapshot_max_lag (3h): last snapshot run failed: snapshot: mkdir: no space left on device",
		"warning the config asks for 2 daily",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("pi lacks %q:\n%s", want, got)
		}
	}
	deferred := rec(t, "snapshot", state.Aborted, "2026-06-12 05:45:00", "2026-06-12 05:50:00", state.SnapshotStats{})
	if got := pi(deferred); strings.Contains(got, "Offsite snapshot") {
		t.Errorf("a deferred snapshot is a failure: %s", got)
	}
}
