package jobs_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/jobs/status"
	"github.com/borgkit/borgkit/testing/libvirtd"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// guestLab is a lab whose john-ai also has the first seed's repo of guests:
// three VMs defined (never started) in a real libvirtd, each with a disk
// image file, and an nspawn machine directory under a test root.
type guestLab struct {
	*lab
	lv                       *libvirtd.Daemon
	images, machines, xml    string
	openclawDisk, claudecode string
}

func newGuestLab(t *testing.T) *guestLab {
	t.Helper()
	lv := libvirtd.Start(t)
	need(t, "qemu-img")
	g := &guestLab{lv: lv, images: t.TempDir(), machines: t.TempDir()}
	// A qcow2 image with data in it, and two raw ones: openclaw's is the
	// one a running VM would write to during the night.
	ha := filepath.Join(g.images, "homeassistant.qcow2")
	sh(t, "qemu-img", "create", "-q", "-f", "qcow2", ha, "16M")
	sh(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", ha)
	g.claudecode, g.openclawDisk = filepath.Join(g.images, "claudecode.raw"), filepath.Join(g.images, "openclaw.raw")
	writeRandom(t, g.claudecode, 2<<20)
	writeRandom(t, g.openclawDisk, 32<<20)
	lv.Define(t, "homeassistant", ha, "qcow2")
	lv.Define(t, "claudecode", g.claudecode, "raw")
	lv.Define(t, "openclaw", g.openclawDisk, "raw")
	// Defined in libvirt but backed up by no repo: its saved XML stays.
	lv.Define(t, "scratch", ha, "qcow2")

	adguard := filepath.Join(g.machines, "machines", "adguard")
	for _, f := range []string{"etc/hostname", "etc/AdGuardHome.yaml", "var/lib/adguard/querylog.json"} {
		os.MkdirAll(filepath.Join(adguard, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(adguard, f), []byte("adguard "+f+"\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(g.machines, "nspawn"), 0o755)
	os.WriteFile(filepath.Join(g.machines, "nspawn", "adguard.nspawn"), []byte("[Network]\nVirtualEthernet=no\n"), 0o644)

	g.lab = newLab(t, labOptions{repos: func(l *lab) string {
		return fmt.Sprintf(`
      - name: guests
        path: %s/guests
        vms: [homeassistant, claudecode, openclaw]
        containers: [adguard]`, l.mnt)
	}})
	repo := filepath.Join(g.mnt, "guests")
	sh(t, "borg", "init", "--encryption=none", repo)
	rc, _ := os.ReadFile(filepath.Join(repo, "config"))
	os.WriteFile(filepath.Join(repo, "config"), bytes.Replace(rc, []byte("max_segment_size = 524288000"), []byte("max_segment_size = 8388608"), 1), 0o600)
	g.xml = filepath.Join(g.dir, "vm-xml")
	g.env.VMXMLDir, g.env.MachinesDir, g.env.NspawnDir = g.xml, filepath.Join(g.machines, "machines"), filepath.Join(g.machines, "nspawn")
	return g
}

func writeRandom(t *testing.T, p string, n int) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// guestArchives lists the archives of repo guests by name.
func (g *guestLab) guestArchives() []string {
	g.t.Helper()
	c := exec.Command("borg", "list", "--short", filepath.Join(g.mnt, "guests"))
	c.Env = host.Environ(borg.Inherited...)
	out, err := c.CombinedOutput()
	if err != nil {
		g.t.Fatalf("borg list: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

func (g *guestLab) archiveFiles(archive string) []string {
	g.t.Helper()
	c := exec.Command("borg", "list", "--format", "{path}{NL}", filepath.Join(g.mnt, "guests")+"::"+archive)
	c.Env = host.Environ(borg.Inherited...)
	out, err := c.CombinedOutput()
	if err != nil {
		g.t.Fatalf("borg list %s: %v\n%s", archive, err, out)
	}
	return strings.Fields(string(out))
}

// writeWhile keeps writing into file p, as a running VM writes to its
// disk, until the returned stop is called.
func writeWhile(t *testing.T, p string) (stop func()) {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer f.Close()
		buf := make([]byte, 4096)
		for i := int64(0); ; i++ {
			select {
			case <-done:
				return
			default:
			}
			rand.Read(buf)
			f.WriteAt(buf, (i*4096*97)%(16<<20))
			time.Sleep(time.Millisecond)
		}
	}()
	return func() { close(done); wg.Wait() }
}

// The first seed's nights: every guest in an archive of its own, named
// after it, with the VM's saved definition and its disk; a VM whose disk
// changes under borg is that guest's warning; a VM whose disk is gone is
// that guest's failure and the mail's section, the others OK; the restore
// test, the dashboard and its JSON take each guest on its own; the saved
// XML of a domain that is gone is removed and no other.
func TestNightlyBacksUpEachGuest(t *testing.T) {
	g := newGuestLab(t)
	os.MkdirAll(g.xml, 0o700)
	for _, vm := range []string{"retired", "scratch"} {
		os.WriteFile(filepath.Join(g.xml, vm+".xml"), []byte("<domain><name>"+vm+"</name></domain>\n"), 0o600)
	}

	// Night 1: openclaw runs and writes to its disk all night.
	stop := writeWhile(t, g.openclawDisk)
	err := jobs.Nightly(ctx(), g.env)
	stop()
	var warn *jobs.WarningsError
	if !errors.As(err, &warn) {
		t.Fatalf("nightly with a live disk: %v, want warnings", err)
	}
	m := g.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP COMPLETED WITH WARNINGS",
		"--- VM backup: homeassistant ---\n  Status: OK (", "--- VM backup: claudecode ---\n  Status: OK (",
		"--- VM backup: openclaw ---\n  Status: WARNING (exit code 1)", g.openclawDisk+": file changed while we backed it up",
		"--- Container backup: adguard ---\n  Status: OK (")
	archives := g.guestArchives()
	for _, guest := range []string{"vm:homeassistant:", "vm:claudecode:", "vm:openclaw:", "container:adguard:"} {
		i := slices.IndexFunc(archives, func(a string) bool { return strings.HasPrefix(a, guest) })
		if i < 0 {
			t.Fatalf("no archive of %s in %v", guest, archives)
		}
		files := g.archiveFiles(archives[i])
		var want []string
		switch guest {
		case "vm:homeassistant:":
			want = []string{strings.TrimPrefix(filepath.Join(g.xml, "homeassistant.xml"), "/"), strings.TrimPrefix(filepath.Join(g.images, "homeassistant.qcow2"), "/")}
		case "vm:openclaw:":
			want = []string{strings.TrimPrefix(filepath.Join(g.xml, "openclaw.xml"), "/"), strings.TrimPrefix(g.openclawDisk, "/")}
		case "container:adguard:":
			want = []string{strings.TrimPrefix(filepath.Join(g.env.MachinesDir, "adguard/etc/AdGuardHome.yaml"), "/"),
				strings.TrimPrefix(filepath.Join(g.env.NspawnDir, "adguard.nspawn"), "/")}
		}
		for _, w := range want {
			if !slices.Contains(files, w) {
				t.Errorf("archive %s lacks %s: %v", archives[i], w, files)
			}
		}
		if guest == "vm:homeassistant:" && slices.ContainsFunc(files, func(f string) bool { return strings.Contains(f, "openclaw") }) {
			t.Errorf("homeassistant's archive holds another guest's files: %v", files)
		}
	}
	if x, err := os.ReadFile(filepath.Join(g.xml, "openclaw.xml")); err != nil || !strings.Contains(string(x), g.openclawDisk) {
		t.Fatalf("openclaw's saved definition: %v\n%s", err, x)
	}
	if _, err := os.Stat(filepath.Join(g.xml, "retired.xml")); !os.IsNotExist(err) {
		t.Errorf("the XML of a domain that is gone was kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(g.xml, "scratch.xml")); err != nil {
		t.Errorf("the XML of a domain libvirt still has was removed: %v", err)
	}

	// Night 2: claudecode's disk is gone; the others are backed up.
	time.Sleep(1100 * time.Millisecond)
	moved := g.claudecode + ".moved"
	if err := os.Rename(g.claudecode, moved); err != nil {
		t.Fatal(err)
	}
	err = jobs.Nightly(ctx(), g.env)
	if err == nil || errors.As(err, &warn) {
		t.Fatalf("nightly with a VM's disk gone: %v, want a failure", err)
	}
	m = g.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai NIGHTLY BACKUP FAILED")
	golden(t, "nightly_guest_failed.txt", []byte(g.normalize(m[0].Body)))
	// claudecode, not backed up tonight, keeps last night's archive (a
	// failed guest is not pruned); the others have tonight's too.
	after := g.guestArchives()
	for _, a := range archives {
		if !slices.Contains(after, a) {
			t.Errorf("night 1's archive %s is gone: %v", a, after)
		}
	}
	if len(after) != 7 || slices.ContainsFunc(after[4:], func(a string) bool { return strings.HasPrefix(a, "vm:claudecode:") }) {
		t.Errorf("guest archives after two nights: %v, want night 1's and one more of each guest but claudecode", after)
	}

	// The restore test takes each guest's newest archive.
	if err := jobs.RestoreTest(ctx(), g.env); err != nil {
		t.Fatalf("restore test: %v\n%s", err, g.log.String())
	}
	rec, _ := g.env.Store.Load("restore_test")
	var rst state.RestoreStats
	json.Unmarshal(rec.Stats, &rst)
	restored := map[string][]string{}
	for _, f := range rst.Files {
		if f.Status != "match" {
			t.Errorf("restored %+v", f)
		}
		restored[f.Guest] = append(restored[f.Guest], f.Path)
	}
	for _, guest := range []string{"vm homeassistant", "vm claudecode", "vm openclaw", "container adguard", ""} {
		if len(restored[guest]) == 0 {
			t.Errorf("no file of %q restored: %v", guest, restored)
		}
	}
	if !slices.Contains(restored["vm openclaw"], g.openclawDisk) {
		t.Errorf("openclaw's disk, unchanged since its archive, was not restore-tested: %v", restored["vm openclaw"])
	}

	// The dashboard: a row per guest; claudecode failed, the others healthy.
	d, err := status.Live(g.env)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	d.Text(&text, false)
	for _, want := range []string{`─ VM BACKUPS ─`, `│ homeassistant: \dm \(healthy\)`, `│ claudecode:    \dm \(failed\)\n│   disk of VM claudecode: stat`,
		`│ openclaw:      \dm \(healthy\)`, `─ CONTAINER BACKUPS ─`, `│ adguard: \dm \(healthy\)`, `\[FAIL\] VM claudecode: backup failed`} {
		if !regexp.MustCompile(want).MatchString(text.String()) {
			t.Errorf("dashboard lacks %q:\n%s", want, text.String())
		}
	}
	js, _ := json.Marshal(d)
	var back struct {
		VMs        []status.VM `json:"vms"`
		Containers []status.VM `json:"containers"`
	}
	json.Unmarshal(js, &back)
	health := map[string]string{}
	for _, v := range append(back.VMs, back.Containers...) {
		health[v.Kind+" "+v.Name] = v.Health
		// Every guest's newest archive was restore-tested (claudecode's is
		// night 1's); tonight's duration is each guest's own.
		if v.RestoreTest != "passed" || v.DurationSeconds <= 0 && v.Health == "healthy" {
			t.Errorf("status --json row %+v: want restore test passed and a duration", v)
		}
	}
	if want := map[string]string{"vm homeassistant": "healthy", "vm claudecode": "failed", "vm openclaw": "healthy", "container adguard": "healthy"}; fmt.Sprint(health) != fmt.Sprint(want) {
		t.Errorf("status --json guests: %v, want %v", health, want)
	}
}

var durationRE = regexp.MustCompile(`\((\d+[hms] ?)+\)`)

// normalize keeps what a golden mail can hold: no run's times or paths.
func (g *guestLab) normalize(body string) string {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = durationRE.ReplaceAllString(body, "(DURATION)")
	body = regexp.MustCompile(`Timestamp: .*`).ReplaceAllString(body, "Timestamp: TIME")
	for _, p := range []struct{ from, to string }{{g.images, "/IMAGES"}, {g.machines, "/MACHINES"}, {g.dir, "/LAB"}} {
		body = strings.ReplaceAll(body, p.from, p.to)
	}
	return body
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
