package drill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
	"github.com/borgkit/borgkit/recovery/drill"
	"github.com/borgkit/borgkit/roles/jobs/snapshot"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/status"
	"github.com/borgkit/borgkit/testing/borghome"
)

func TestMain(m *testing.M) { borghome.Main(m, bundletest.Cleanup) }

// newBundle writes a bundle of the shared site, sealed 0500 as in real use.
func newBundle(t *testing.T) (*bundletest.Site, string) {
	t.Helper()
	s := bundletest.Shared(t)
	dir := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() { bundletest.MakeWritable(t, dir) })
	if _, err := bundle.Write(context.Background(), s.Cfg, s.Server, s.Src, dir, bundle.Options{}); err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

func TestDrillMirror(t *testing.T) {
	t.Parallel()
	s, dir := newBundle(t)
	stateDir, reports := t.TempDir(), t.TempDir()
	store := &state.Store{Dir: stateDir, Host: "rescue"}
	var progress, log bytes.Buffer
	before := bundletest.TreeHash(t, s.Mirror)
	bundleBefore := bundletest.TreeHash(t, dir)

	res, err := drill.Run(context.Background(), drill.Options{
		Bundle: dir, Mirror: s.Mirror, Seed: 42, ReportDir: reports, Store: store,
		CompareLive: true, LiveRoot: s.Root, Progress: &progress, Log: &log,
	})
	if err != nil {
		t.Fatalf("drill: %v\nlog:\n%s", err, log.String())
	}

	// Read-only: the mirror and the bundle are byte for byte as before.
	if bundletest.TreeHash(t, s.Mirror) != before {
		t.Error("the drill changed the mirror")
	}
	if bundletest.TreeHash(t, dir) != bundleBefore {
		t.Error("the drill changed the bundle")
	}

	if !res.OK || res.Source != "mirror" || res.Seed != 42 || len(res.Repos) != 2 {
		t.Fatalf("result: %+v", res)
	}
	byName := map[string]drill.RepoResult{}
	for _, r := range res.Repos {
		byName[r.Name] = r
		if r.Status != "ok" || !r.CheckOK || r.Archives != 2 || r.Latest == "" {
			t.Errorf("repo %s: %+v", r.Name, r)
		}
		// The newest archive was made 90 minutes before the site was built.
		if want := res.Started.Sub(s.Latest[r.Name]); r.RPO < want-time.Minute || r.RPO > want+time.Minute {
			t.Errorf("repo %s: RPO %s, want about %s", r.Name, r.RPO, want)
		}
		if r.TimeToFirstFile <= 0 || r.RTO < r.TimeToFirstFile || r.Bytes <= 0 || r.Throughput <= 0 || r.EstimatedFullRestore <= 0 {
			t.Errorf("repo %s figures: first %s RTO %s bytes %d throughput %.0f est %s", r.Name, r.TimeToFirstFile, r.RTO, r.Bytes, r.Throughput, r.EstimatedFullRestore)
		}
		for _, f := range r.Files {
			if f.Status != "ok" || f.Live != "match" || len(f.SHA256) != 64 {
				t.Errorf("repo %s file %+v", r.Name, f)
			}
		}
	}
	// 20 random files plus the canary from john-ai; all 5 of docker's.
	main := byName["john-ai"]
	if len(main.Files) != 21 {
		t.Errorf("john-ai: %d files, want 21", len(main.Files))
	}
	if !slices.ContainsFunc(main.Files, func(f drill.FileResult) bool { return f.Canary && f.Path == "/etc/hostname" }) {
		t.Error("canary /etc/hostname not extracted")
	}
	if n := len(byName["john-ai-docker"].Files); n != 5 {
		t.Errorf("john-ai-docker: %d files, want 5", n)
	}
	if res.RPO <= 0 || res.TimeToFirstFile <= 0 || res.RTO <= 0 || res.Throughput <= 0 || res.Files != 26 {
		t.Errorf("totals: RPO %s first %s RTO %s throughput %.0f files %d", res.RPO, res.TimeToFirstFile, res.RTO, res.Throughput, res.Files)
	}
	t.Logf("drill figures: RPO %s, first file after %s, RTO %s, %d files %d bytes, throughput %.0f B/s (%.2f MiB/s), whole drill %s",
		res.RPO.Round(time.Second), res.TimeToFirstFile.Round(time.Millisecond), res.RTO.Round(time.Millisecond), res.Files, res.Bytes,
		res.Throughput, res.Throughput/(1<<20), res.Duration.Round(time.Millisecond))
	for _, r := range res.Repos {
		t.Logf("  %s: check %s, first file %s, RTO %s, extract %s, %d bytes, %.0f B/s, archive %d files %d bytes, est. full restore %s",
			r.Name, r.CheckDuration.Round(time.Millisecond), r.TimeToFirstFile.Round(time.Millisecond), r.RTO.Round(time.Millisecond),
			r.ExtractDuration.Round(time.Millisecond), r.Bytes, r.Throughput, r.ArchiveFiles, r.ArchiveBytes, r.EstimatedFullRestore.Round(time.Millisecond))
	}

	// The report went to ReportDir: the bundle's drill-log is 0500.
	if len(res.ReportFiles) != 2 {
		t.Fatalf("report files: %v", res.ReportFiles)
	}
	for _, f := range res.ReportFiles {
		if filepath.Dir(f) != reports {
			t.Errorf("report %s not in %s", f, reports)
		}
	}
	md, _ := os.ReadFile(res.ReportFiles[1])
	for _, want := range []string{"# Recovery drill — test: OK", "RPO", "`/etc/hostname` (canary)", "--seed 42"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	var fromJSON drill.Result
	b, _ := os.ReadFile(res.ReportFiles[0])
	if err := json.Unmarshal(b, &fromJSON); err != nil || fromJSON.RTO != res.RTO {
		t.Errorf("JSON report: %v", err)
	}

	// Recorded as job "drill" for the dashboard.
	if _, err := os.Stat(filepath.Join(stateDir, "drill.json")); err != nil {
		t.Fatal(err)
	}
	rec, err := store.Load("drill")
	if err != nil {
		t.Fatal(err)
	}
	var stats state.DrillStats
	if err := json.Unmarshal(rec.Stats, &stats); err != nil {
		t.Fatal(err)
	}
	if rec.Status != state.OK || rec.LastSuccess.IsZero() || stats.Files != 26 || stats.RPO != res.RPO || stats.RTO != res.RTO || !strings.Contains(rec.Message, "RPO") {
		t.Errorf("state record: %+v", rec)
	}
	t.Logf("state message: %s", rec.Message)

	// The dashboard reads the very record the drill wrote: its "Last drill"
	// line carries the drill's RTO and RPO.
	recs, err := store.LoadAll()
	if err != nil {
		t.Fatal(err)
	}
	d := status.Build(s.Cfg, s.Server, recs, nil, res.Finished.Add(time.Minute), nil)
	var line string
	for _, c := range d.Monitoring {
		if c.Name == "Last drill" {
			line = c.Status + " " + c.Note
		}
	}
	t.Logf("dashboard: Last drill: %s", line)
	if !regexp.MustCompile(`^OK .*, 2 repos, RTO [0-9][0-9a-z.]*, RPO [0-9][0-9a-z]*$`).MatchString(line) {
		t.Errorf("dashboard's drill line %q, want OK with 2 repos, its RTO and RPO", line)
	}

	// Not a terminal: plain lines, no carriage returns.
	if strings.Contains(progress.String(), "\r") || !strings.Contains(progress.String(), "john-ai: extracting 21 files") {
		t.Errorf("progress:\n%s", progress.String())
	}
	// No secret ever reached a command line.
	for _, r := range s.Repos {
		pass, _ := os.ReadFile(s.Real("/etc/borgkit/keys/" + r + ".pass"))
		if p := strings.TrimSpace(string(pass)); strings.Contains(log.String(), p) || strings.Contains(string(md), p) || strings.Contains(string(b), p) {
			t.Errorf("the passphrase of %s leaked into the log or report", r)
		}
	}
}

// The same seed draws the same sample; another seed another one.
func TestDrillSeedIsReproducible(t *testing.T) {
	t.Parallel()
	s, dir := newBundle(t)
	sample := func(seed uint64) []string {
		res, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Mirror: s.Mirror, Seed: seed, Samples: 5,
			Repos: []string{"john-ai"}, ReportDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range res.Repos[0].Files {
			out = append(out, f.Path)
		}
		return out
	}
	a, b, c := sample(7), sample(7), sample(8)
	if !slices.Equal(a, b) {
		t.Errorf("seed 7 gave %v then %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 7 and 8 both gave %v", a)
	}
	if len(a) != 6 {
		t.Errorf("sample %v: want 5 files and the canary", a)
	}
}

// A damaged copy fails the drill, and the failure is recorded.
func TestDrillDamagedMirror(t *testing.T) {
	t.Parallel()
	s, dir := newBundle(t)
	mirror := copyTree(t, s.Mirror)
	// Flip a byte in the middle of the largest segment of john-ai.
	var seg string
	var size int64
	filepath.Walk(filepath.Join(mirror, "john-ai", "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			seg, size = p, fi.Size()
		}
		return nil
	})
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	store := &state.Store{Dir: t.TempDir()}
	res, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Mirror: mirror, Seed: 1, Samples: 100, ReportDir: t.TempDir(), Store: store})
	if err == nil || res.OK {
		t.Fatalf("drill passed on a damaged repo: %+v", res)
	}
	if !strings.Contains(err.Error(), "john-ai") {
		t.Errorf("error does not name the repo: %v", err)
	}
	for _, r := range res.Repos {
		if r.Name == "john-ai" && (r.Status != "failed" || r.CheckOK) {
			t.Errorf("john-ai: status %s, check ok %v", r.Status, r.CheckOK)
		}
		if r.Name == "john-ai-docker" && r.Status != "ok" {
			t.Errorf("john-ai-docker: %+v", r)
		}
	}
	rec, _ := store.Load("drill")
	if rec == nil || rec.Status != state.Failed {
		t.Errorf("state record: %+v", rec)
	}
	t.Log(err)
}

// A missing repo in the mirror is a failure, not a silent skip.
func TestDrillMissingRepo(t *testing.T) {
	t.Parallel()
	s, dir := newBundle(t)
	mirror := copyTree(t, s.Mirror)
	os.RemoveAll(filepath.Join(mirror, "john-ai-docker"))
	_, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Mirror: mirror, ReportDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "no copy of the repository") {
		t.Fatalf("drill = %v", err)
	}
}

// A bundle that does not verify stops the drill before any restore.
func TestDrillRefusesADamagedBundle(t *testing.T) {
	t.Parallel()
	s, dir := newBundle(t)
	bad := copyTree(t, dir)
	bundletest.MakeWritable(t, bad)
	p := filepath.Join(bad, "luks", "pi-backup.key")
	k, _ := os.ReadFile(p)
	k[0] ^= 1
	os.WriteFile(p, k, 0o600)
	res, err := drill.Run(context.Background(), drill.Options{Bundle: bad, Mirror: s.Mirror, ReportDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "luks/pi-backup.key") || len(res.Repos) != 0 {
		t.Fatalf("drill = %v, repos %d", err, len(res.Repos))
	}
}

// With the drill-log directory made writable, the report goes there.
func TestDrillReportIntoBundle(t *testing.T) {
	t.Parallel()
	s, dir := newBundle(t)
	logDir := filepath.Join(dir, bundle.DrillLogDir)
	if err := os.Chmod(logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	var tty bytes.Buffer
	res, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Mirror: s.Mirror, Samples: 2, Repos: []string{"john-ai-docker"}, ReportDir: other,
		Progress: &tty, IsTTY: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.ReportFiles {
		if filepath.Dir(f) != logDir {
			t.Errorf("report %s not in %s", f, logDir)
		}
	}
	// The report does not break the bundle's own verification.
	if _, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{}); err != nil {
		t.Error(err)
	}
	if !strings.Contains(tty.String(), "\r\033[K") || !strings.HasSuffix(tty.String(), "\r\033[K") {
		t.Errorf("terminal progress %q", tty.String())
	}
}

// fakeExec stands in for cryptsetup and mount: "mounting" copies the
// mirror into the mountpoint, as if the disk held it.
type fakeExec struct {
	mirror string
	calls  [][]string
	fail   string // program to fail
}

func (f *fakeExec) Run(ctx context.Context, c host.Cmd) (host.Result, error) {
	f.calls = append(f.calls, c.Argv)
	prog := filepath.Base(c.Argv[0])
	if prog == f.fail {
		return host.Result{ExitCode: 1}, &host.ExitError{Host: "fake", Argv: c.Argv, ExitCode: 1, Stderr: []byte("simulated failure")}
	}
	mnt := c.Argv[len(c.Argv)-1]
	switch prog {
	case "mount":
		// The server pushes into the mirror root on the offsite disk.
		root := layout.MirrorRoot(mnt)
		os.MkdirAll(root, 0o700)
		if out, err := exec.Command("cp", "-a", f.mirror+"/.", root).CombinedOutput(); err != nil {
			return host.Result{}, &host.ExitError{Host: "fake", Argv: c.Argv, ExitCode: 32, Stderr: out}
		}
	case "umount":
		ents, _ := os.ReadDir(mnt)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(mnt, e.Name()))
		}
	}
	return host.Result{}, nil
}

func TestDrillDisk(t *testing.T) {
	t.Parallel()
	s, dir := newBundle(t)
	fx := &fakeExec{mirror: s.Mirror}
	res, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Disk: s.Image, Exec: fx, Samples: 3, ReportDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Disk
	if d == nil || d.HeaderBackup || d.LUKSUUID != s.LUKSUUID || d.ID != "pi/backup" {
		t.Fatalf("disk: %+v", d)
	}
	mnt := d.Mountpoint
	want := [][]string{
		{"cryptsetup", "open", "--readonly", "--key-file", filepath.Join(dir, "luks/pi-backup.key"), s.Image, "borgkit-drill"},
		{"mount", "-o", "ro,noload", "-t", "ext4", "/dev/mapper/borgkit-drill", mnt},
		{"umount", mnt},
		{"cryptsetup", "close", "borgkit-drill"},
	}
	if !equalCalls(fx.calls, want) {
		t.Errorf("commands:\n%q\nwant\n%q", fx.calls, want)
	}
	if len(res.Repos) != 2 || !res.OK {
		t.Errorf("result: %+v", res)
	}
}

func equalCalls(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// A disk whose own header is damaged is opened with the bundle's header
// backup; the wrong disk is refused before cryptsetup runs.
func TestDrillDiskHeader(t *testing.T) {
	t.Parallel()
	s, dir := newBundle(t)
	t.Run("primary damaged", func(t *testing.T) {
		img := copyTree(t, s.Image)
		zero(t, img, 0, 4096)
		fx := &fakeExec{mirror: s.Mirror}
		res, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Disk: img, Exec: fx, Samples: 1, Repos: []string{"john-ai-docker"}, ReportDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Disk.HeaderBackup || !slices.Contains(fx.calls[0], "--header") || !slices.Contains(fx.calls[0], filepath.Join(dir, "luks/pi-backup-header.img")) {
			t.Errorf("open: %q, disk %+v", fx.calls[0], res.Disk)
		}
	})
	t.Run("both copies gone", func(t *testing.T) {
		img := copyTree(t, s.Image)
		zero(t, img, 0, 64<<10)
		fx := &fakeExec{mirror: s.Mirror}
		res, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Disk: img, Exec: fx, Samples: 1, Repos: []string{"john-ai-docker"}, ReportDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Disk.HeaderBackup || !slices.Contains(fx.calls[0], "--header") {
			t.Errorf("open: %q", fx.calls[0])
		}
	})
	t.Run("wrong disk", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.img")
		os.WriteFile(other, nil, 0o600)
		os.Truncate(other, 20<<20)
		key := filepath.Join(t.TempDir(), "k")
		os.WriteFile(key, []byte("other key"), 0o600)
		if out, err := exec.Command("cryptsetup", "luksFormat", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
			"--batch-mode", "--key-file", key, other).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		fx := &fakeExec{mirror: s.Mirror}
		_, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Disk: other, Exec: fx, ReportDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "wrong disk") || len(fx.calls) != 0 {
			t.Errorf("drill = %v, calls %q", err, fx.calls)
		}
	})
	t.Run("mount fails, disk closed again", func(t *testing.T) {
		fx := &fakeExec{mirror: s.Mirror, fail: "mount"}
		_, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Disk: s.Image, Exec: fx, ReportDir: t.TempDir()})
		if err == nil || len(fx.calls) != 3 || fx.calls[2][1] != "close" {
			t.Errorf("drill = %v, calls %q", err, fx.calls)
		}
	})
}

func zero(t *testing.T, p string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), off); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, o := range []drill.Options{{}, {Bundle: "b"}, {Bundle: "b", Disk: "d", Mirror: "m"}} {
		if _, err := drill.Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) passed", o)
		}
	}
}

// Relative paths, as a user types them in the directory holding the
// bundle and the mirror: borg runs elsewhere, and still finds them.
func TestDrillRelativePaths(t *testing.T) {
	s, dir := newBundle(t)
	work := t.TempDir()
	rel := func(p string) string {
		r, err := filepath.Rel(work, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if err := os.Mkdir(filepath.Join(work, "extract"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	res, err := drill.Run(context.Background(), drill.Options{Bundle: rel(dir), Mirror: rel(s.Mirror), Seed: 3, Samples: 3,
		Repos: []string{"john-ai"}, ReportDir: ".", WorkDir: "extract"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Repos) != 1 || len(res.Repos[0].Files) != 4 {
		t.Fatalf("repos %+v: want one repo with 3 files and the canary", res.Repos)
	}
	for _, f := range res.Repos[0].Files {
		if f.Status != "ok" {
			t.Errorf("%s: %s %s", f.Path, f.Status, f.Detail)
		}
	}
}

// TestDrillFromSnapshot is the restore after the push key wiped the
// offsite mirror: the drill restores from the snapshot kept beside it, the
// newest or one by name, and says so.
func TestDrillFromSnapshot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a snapshot gives files to root: needs root")
	}
	t.Parallel()
	s, dir := newBundle(t)
	mount := t.TempDir()
	store := snapshot.For(layout.MirrorRoot(mount), mount)
	if out, err := exec.Command("cp", "-a", s.Mirror, store.Mirror).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	first, err := store.Take(context.Background(), time.Date(2026, 6, 11, 2, 30, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Take(context.Background(), time.Date(2026, 6, 12, 2, 30, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	// What the push key can do: the mirror's repos gone, garbage instead.
	for _, r := range []string{"john-ai", "john-ai-docker"} {
		os.RemoveAll(filepath.Join(store.Mirror, r))
		os.MkdirAll(filepath.Join(store.Mirror, r, "data/0"), 0o700)
		os.WriteFile(filepath.Join(store.Mirror, r, "config"), []byte("garbage"), 0o600)
	}
	for _, tt := range []struct{ mirror, want, name string }{
		{store.Mirror, "latest", "2026-06-12T023000Z"},
		{mount, first.Snapshot.Name, first.Snapshot.Name},
	} {
		res, err := drill.Run(context.Background(), drill.Options{Bundle: dir, Mirror: tt.mirror, Snapshot: tt.want, Samples: 3, Seed: 7, ReportDir: t.TempDir()})
		if err != nil || !res.OK || res.Snapshot != tt.name || len(res.Repos) != 2 || !strings.HasSuffix(res.Target, " snapshot "+tt.name) {
			t.Fatalf("drill of %s from %s: %v %+v", tt.want, tt.mirror, err, res)
		}
	}
	_, err = drill.Run(context.Background(), drill.Options{Bundle: dir, Mirror: store.Root, Snapshot: "2026-01-01T000000Z", ReportDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "there are: 2026-06-11T023000Z, 2026-06-12T023000Z") {
		t.Fatalf("unknown snapshot: %v", err)
	}
}
