package vm

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/recovery/drill"
)

// drillInput is what a disaster leaves: the offline recovery bundle and the
// offsite disk. TestVMUnlockAtBoot makes them on its way (the disk is
// copied while the pi is powered off) and hands them over, so the drill
// runs beside that test's long waits instead of provisioning a pair of
// its own.
type drillInput struct {
	dir    string            // holds both; the drill test removes it
	bundle string            // the bundle, copied off john-ai, modes kept
	disk   string            // qcow2 copy of the pi's backup disk
	data   map[string]string // /srv/data on john-ai when it was backed up
}

var (
	drillCh   = make(chan *drillInput, 1)
	drillOnce sync.Once
)

// handDrill passes the drill its input, once; nil says there will be none.
func handDrill(in *drillInput) {
	drillOnce.Do(func() {
		drillCh <- in
		close(drillCh)
	})
}

// selected reports whether go test's -run (and -skip) select the top-level
// test name: the producer and the consumer of the drill's input must know
// whether the other runs.
func selected(name string) bool {
	match := func(flagName string) (bool, bool) {
		f := flag.Lookup(flagName)
		if f == nil || f.Value.String() == "" {
			return false, false
		}
		pat := strings.SplitN(f.Value.String(), "/", 2)[0]
		ok, err := regexp.MatchString(pat, name)
		return ok, err == nil
	}
	if skip, set := match("test.skip"); set && skip {
		return false
	}
	if run, set := match("test.run"); set {
		return run
	}
	return true
}

// makeDrillInput writes the recovery bundle on john-ai and copies it to
// the host with its files' modes. The disk is added by the caller while
// the pi is off.
func (l *labSetup) makeDrillInput(ctx context.Context, t *testing.T) *drillInput {
	t.Helper()
	dir, err := os.MkdirTemp("", "borgkit-vm-drill-input-")
	if err != nil {
		t.Fatal(err)
	}
	in := &drillInput{dir: dir, bundle: filepath.Join(dir, "bundle"), disk: filepath.Join(dir, "pi-backup.qcow2"), data: l.data}
	const remote = "/root/recovery-bundle"
	l.saveOutput(t, "recovery-bundle.txt", must(ctx, t, l.Server, labBinary, "recovery-bundle", "--to", remote))
	// %y type, %m octal mode, %P path below the bundle: argv only, no shell.
	list := must(ctx, t, l.Server, "find", remote, "-mindepth", "1", "-printf", "%y %m %P\n")
	for _, line := range strings.Split(list, "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			continue
		}
		var mode uint32
		fmt.Sscanf(f[1], "%o", &mode)
		dst := filepath.Join(in.bundle, f[2])
		switch f[0] {
		case "d":
			if err := os.MkdirAll(dst, 0o700); err != nil {
				t.Fatal(err)
			}
		case "f":
			b, err := l.Server.ReadFile(ctx, path.Join(remote, f[2]))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, os.FileMode(mode)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "modes"), []byte(list+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

// pushBundle copies the bundle into g at dst with the modes it had on
// john-ai (0400 files, 0500 directories), directories last so the files
// can go in first.
func pushBundle(ctx context.Context, t *testing.T, g *Guest, in *drillInput, dst string) {
	t.Helper()
	list, err := os.ReadFile(filepath.Join(in.dir, "modes"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := g.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	must(ctx, t, g, "install", "-d", "-m", "0700", dst)
	var dirs [][2]string
	for _, line := range strings.Split(string(list), "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			continue
		}
		var mode uint32
		fmt.Sscanf(f[1], "%o", &mode)
		p := path.Join(dst, f[2])
		switch f[0] {
		case "d":
			must(ctx, t, g, "install", "-d", "-m", "0700", p)
			dirs = append(dirs, [2]string{p, f[1]})
		case "f":
			b, err := os.ReadFile(filepath.Join(in.bundle, f[2]))
			if err != nil {
				t.Fatal(err)
			}
			if err := h.WriteFile(ctx, p, b, os.FileMode(mode), host.Root); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		must(ctx, t, g, "chmod", dirs[i][1], dirs[i][0])
	}
	must(ctx, t, g, "chmod", "0500", dst)
}

// TestVMDisasterDrill rehearses the disaster: a fresh machine that has
// never seen the site gets the recovery bundle and the offsite disk
// (attached read-only: the drill must not write to it, and here it
// cannot), and borgkit drill unlocks it, checks the repo and restores a
// sample whose content is compared with the data john-ai backed up.
func TestVMDisasterDrill(t *testing.T) {
	skipUnlessVM(t)
	if !selected("TestVMUnlockAtBoot") {
		t.Skip("the drill's bundle and disk come from TestVMUnlockAtBoot; select both: -run 'TestVM(UnlockAtBoot|DisasterDrill)'")
	}
	// It waits for TestVMUnlockAtBoot while holding a slot of -parallel:
	// with one slot that test would never start.
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == "1" {
		t.Skip("runs beside TestVMUnlockAtBoot, which -parallel 1 does not allow; use -parallel 4")
	}
	t.Parallel()
	img := labImage(t) // before the scenario's clock starts: a cold build has its own timeout
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	bin := borgkitBinary(t)

	var in *drillInput
	step(t, "wait for the bundle and the pi's disk", func() {
		select {
		case in = <-drillCh:
		case <-ctx.Done():
			t.Fatal("no drill input from TestVMUnlockAtBoot")
		}
		if in == nil {
			t.Skip("TestVMUnlockAtBoot ended before it made the bundle and the disk copy")
		}
	})
	t.Cleanup(func() {
		if !t.Failed() && !keepEnv() {
			os.RemoveAll(in.dir)
		}
	})

	dir := runDir(t)
	disk := Disk{Path: in.disk, Format: "qcow2", Serial: PiDiskSerial, ReadOnly: true}
	key, err := NewKey("borgkit-vm-lab")
	if err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, Config{Name: "drill", Image: img, Dir: filepath.Join(dir, "drill"), Index: 3,
		LabAddress: "10.232.0.3/24", Disks: []Disk{disk}, LoginKey: key})
	step(t, "boot a fresh machine with the disk read-only", func() {
		if err := g.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := g.WaitSSH(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
		if ro := must(ctx, t, g, "blockdev", "--getro", disk.ByID()); ro != "1" {
			t.Fatalf("%s is not read-only in the guest (blockdev --getro: %s)", disk.ByID(), ro)
		}
		if err := g.WriteFile(ctx, labBinary, bin, 0o755); err != nil {
			t.Fatal(err)
		}
		pushBundle(ctx, t, g, in, "/root/bundle")
	})

	var res drill.Result
	step(t, "borgkit drill", func() {
		r, err := g.Run(ctx, labBinary, "drill", "--json", "--bundle", "/root/bundle", "--disk", disk.ByID(),
			"--report-dir", "/root", "--samples", "5", "--state-dir", "/root/drill-state")
		if err := os.WriteFile(filepath.Join(dir, "drill.json"), r.Stdout, 0o644); err != nil {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatalf("borgkit drill: %v\n%s\n%s", err, r.Stdout, r.Stderr)
		}
		// --json prints the result alone.
		dec := json.NewDecoder(strings.NewReader(string(r.Stdout)))
		if err := dec.Decode(&res); err != nil || dec.More() {
			t.Fatalf("drill --json is not one JSON document: %v\n%s", err, r.Stdout)
		}
	})

	if !res.OK || len(res.Problems) > 0 {
		t.Fatalf("drill not ok: %v", res.Problems)
	}
	if res.Disk == nil || res.Disk.HeaderBackup {
		t.Fatalf("drill did not unlock the disk with its own header: %+v", res.Disk)
	}
	if len(res.Repos) != 1 || res.Repos[0].Status != "ok" || !res.Repos[0].CheckOK {
		t.Fatalf("drill repos: %+v", res.Repos)
	}
	// The restored files are the very data john-ai backed up: the hashes
	// borg recorded, checked by the drill against what it extracted, are
	// those of the files the test wrote.
	compared := 0
	for _, f := range res.Repos[0].Files {
		if f.Status != "ok" {
			t.Errorf("%s: %s %s", f.Path, f.Status, f.Detail)
		}
		// borg stores paths without the leading slash; the drill may show
		// either form.
		if want, ok := in.data[path.Base(f.Path)]; ok && path.Dir("/"+strings.TrimPrefix(f.Path, "/")) == dataDir {
			compared++
			if f.SHA256 != want {
				t.Errorf("%s restored with sha256 %s, the original had %s", f.Path, f.SHA256, want)
			}
		}
	}
	if compared == 0 {
		t.Fatalf("none of the %d restored files is one of the test's data files: %+v", len(res.Repos[0].Files), res.Repos[0].Files)
	}
	t.Logf("drill: %d files restored, %d compared with the originals; unlock %s, RTO %s",
		len(res.Repos[0].Files), compared, res.Disk.UnlockDuration.Round(time.Second), res.RTO.Round(time.Second))
}
