package lab_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/roles/jobs/status"
	"github.com/borgkit/borgkit/testing/lab"
	"github.com/borgkit/borgkit/testing/libvirtd"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// guestsConfig is john-ai alone with the first seed's repo of guests: three
// libvirt domains and an nspawn container, on the USB disk, nothing else
// (no mirrors, no Pi), so `status` has nothing to say but the guests.
const guestsConfig = `version: 1
site: lab-guests-%[1]s

alerts:
  to: ` + lab.MailTo + `
  from: john-ai@lab.example
  sendmail: [/usr/bin/msmtp, -C, /etc/msmtprc, --read-envelope-from, -t]

retention:
  daily: 3
  weekly: 2
  monthly: 6

hosts:
  - name: ` + lab.Server + `
    role: server
    address: ` + lab.ServerAddr + `
    ssh:
      host_public_key: %[2]s
    disks:
      - name: ` + lab.DiskUSB + `
        uuid: %[3]s
        mountpoint: /mnt/backup
        fstype: ext4
        options: [nofail]
        backup: true
    repos:
      - name: guests
        path: /mnt/backup/guests
        encryption: repokey-blake2
        compression: zstd
        vms: [homeassistant, claudecode, openclaw]
        containers: [adguard]
`

// imagesDir is where john-ai keeps its VMs' disk images, as Debian's
// libvirt does.
const imagesDir = "/var/lib/libvirt/images"

// TestLabGuests is the first seed's guests through the real CLI on the
// namespace lab's john-ai: Debian's libvirtd answering on john-ai's
// /run/libvirt (the default URI, no config), three defined domains with
// image files on john-ai and a container under /var/lib/machines. Night 1
// backs up every guest and `borgkit status` is healthy (exit 0) with the
// VM BACKUPS and CONTAINER BACKUPS boxes; night 2 one domain's image is
// gone: the failure mail names that guest only, the restore test passes
// each guest's newest archive, and `status` exits 1 for that guest alone,
// its JSON giving each guest's health, duration and restore test.
func TestLabGuests(t *testing.T) {
	if testing.Short() {
		t.Skip("provisions john-ai and runs two nightlies (about a minute); not with -short")
	}
	l := lab.StartT(t, lab.Options{DiskSize: 1 << 30})
	srv := l.Host(lab.Server)
	// The daemon's sockets are john-ai's /run/libvirt: virsh run there by
	// the nightly finds them at the default qemu:///system.
	lv := libvirtd.StartIn(t, filepath.Join(srv.Dir, "run", "libvirt"))
	bin, err := os.ReadFile(borgkitBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(guestsConfig, l.ID, srv.HostPublicKey, l.Disk(lab.DiskUSB).UUID)
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"/usr/local/bin/borgkit", bin, 0o755},
		{lab.ConfigPath, []byte(cfg), 0o640},
		// Guests as john-ai has them: raw images with data, a container's
		// tree and its settings.
		{imagesDir + "/claudecode.raw", bytes.Repeat([]byte("claudecode disk\n"), 64<<10), 0o600},
		{imagesDir + "/openclaw.raw", bytes.Repeat([]byte("openclaw disk\n"), 128<<10), 0o600},
		{"/var/lib/machines/adguard/etc/hostname", []byte("adguard\n"), 0o644},
		{"/var/lib/machines/adguard/opt/AdGuardHome/AdGuardHome.yaml", []byte("bind_port: 3000\n"), 0o644},
		{"/etc/systemd/nspawn/adguard.nspawn", []byte("[Network]\nVirtualEthernet=no\n"), 0o644},
	} {
		if err := l.WriteFile(lab.Server, f.path, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, l, lab.Server, "qemu-img", "create", "-q", "-f", "qcow2", imagesDir+"/homeassistant.qcow2", "16M")
	mustRun(t, l, lab.Server, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", imagesDir+"/homeassistant.qcow2")
	lv.Define(t, "homeassistant", imagesDir+"/homeassistant.qcow2", "qcow2")
	lv.Define(t, "claudecode", imagesDir+"/claudecode.raw", "raw")
	lv.Define(t, "openclaw", imagesDir+"/openclaw.raw", "raw")

	mustRun(t, l, lab.Server, "borgkit", "provision", lab.Server, "--local")
	l.ResetMails()

	// Night 1: every guest backed up; a healthy run is silent.
	if out, stderr, err := l.Run(lab.Server, "borgkit", "job", "nightly"); err != nil {
		t.Fatalf("night 1: %v\n%s%s\n%s", err, out, stderr, jobLog(l, "nightly"))
	}
	// The restore test waits for night 2 (it takes about 20s under load);
	// the dashboard is healthy without it.
	mustRun(t, l, lab.Server, "borgkit", "job", "check")
	text, code := statusRun(t, l)
	if code != 0 {
		t.Fatalf("status after a good night: exit %d, want 0\n%s", code, text)
	}
	wantLines(t, text, `─ VM BACKUPS ─`, `│ homeassistant: \d+[sm] \(healthy\)`, `│ claudecode:    \d+[sm] \(healthy\)`,
		`│ openclaw:      \d+[sm] \(healthy\)`, `─ CONTAINER BACKUPS ─`, `│ adguard: \d+[sm] \(healthy\)`)
	if m := l.Mails(); len(m) != 0 {
		t.Errorf("a good night mailed: %q", m[0].Subject)
	}

	// Night 2: claudecode's image is gone (moved away by hand, say).
	time.Sleep(1100 * time.Millisecond) // a new archive name (seconds)
	mustRun(t, l, lab.Server, "mv", imagesDir+"/claudecode.raw", "/root/claudecode.raw")
	if _, _, err := l.Run(lab.Server, "borgkit", "job", "nightly"); lab.ExitCode(err) != 1 {
		t.Fatalf("night 2 with claudecode's image gone: %v, want exit 1\n%s", err, jobLog(l, "nightly"))
	}
	mails, err := l.WaitMails(1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(mails) != 1 || mails[0].Subject != "[BACKUP] john-ai NIGHTLY BACKUP FAILED" {
		t.Fatalf("night 2 mails: %+v", mails)
	}
	body := mails[0].Text()
	for _, w := range []string{"--- VM backup: claudecode ---\n  Status: FAILED", "--- VM backup: homeassistant ---\n  Status: OK (",
		"--- VM backup: openclaw ---\n  Status: OK (", "--- Container backup: adguard ---\n  Status: OK ("} {
		if !strings.Contains(body, w) {
			t.Errorf("failure mail lacks %q:\n%s", w, body)
		}
	}
	if n := strings.Count(body, "FAILED"); n != 2 { // the headline and claudecode's section
		t.Errorf("failure mail says FAILED %d times, want the headline and claudecode's section:\n%s", n, body)
	}
	labGolden(t, "guest_failed_mail.txt", normalizeMail(body))

	mustRun(t, l, lab.Server, "borgkit", "job", "restore-test")
	text, code = statusRun(t, l)
	if code != 1 {
		t.Errorf("status with a failed guest: exit %d, want 1\n%s", code, text)
	}
	wantLines(t, text, `│ homeassistant: \d+[sm] \(healthy\)`, `│ claudecode:    \d+[sm] \(failed\)\n│   disk of VM claudecode: stat `+imagesDir+`/claudecode.raw: no such`,
		`│ openclaw:      \d+[sm] \(healthy\)`, `│ adguard: \d+[sm] \(healthy\)`)

	out, _, err := l.Run(lab.Server, "borgkit", "status", "--json")
	if lab.ExitCode(err) != 1 {
		t.Errorf("status --json with a failed guest: %v, want exit 1", err)
	}
	var d struct {
		VMs        []status.VM    `json:"vms"`
		Containers []status.VM    `json:"containers"`
		Issues     []status.Issue `json:"issues"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	rows := map[string]string{}
	for _, v := range append(d.VMs, d.Containers...) {
		rows[v.Kind+" "+v.Name] = fmt.Sprintf("%s, restore test %s", v.Health, v.RestoreTest)
		if v.DurationSeconds <= 0 {
			t.Errorf("%s %s: no duration in %+v", v.Kind, v.Name, v)
		}
	}
	want := map[string]string{"vm homeassistant": "healthy, restore test passed", "vm claudecode": "failed, restore test passed",
		"vm openclaw": "healthy, restore test passed", "container adguard": "healthy, restore test passed"}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("status --json guests:\n%v\nwant\n%v", rows, want)
	}
	// The exit status is claudecode's: every failure on the dashboard is
	// the nightly's, names claudecode and no guest that was backed up.
	var failed []string
	for _, is := range d.Issues {
		if is.Level == status.LevelFailed {
			failed = append(failed, is.Text)
			if is.Job != "nightly" || !strings.Contains(is.Text, "claudecode") ||
				strings.Contains(is.Text, "homeassistant") || strings.Contains(is.Text, "openclaw") || strings.Contains(is.Text, "adguard") {
				t.Errorf("failure on the dashboard not claudecode's alone: %+v", is)
			}
		}
	}
	if len(failed) == 0 {
		t.Errorf("no failure on the dashboard:\n%s", out)
	}
}

// statusRun runs `borgkit status` on john-ai: its text and exit status.
func statusRun(t *testing.T, l *lab.Lab) (string, int) {
	t.Helper()
	out, stderr, err := l.Run(lab.Server, "borgkit", "status")
	if err == nil {
		return string(out), 0
	}
	if lab.ExitCode(err) != 1 {
		t.Fatalf("status: %v\n%s%s", err, out, stderr)
	}
	return string(out), 1
}

func wantLines(t *testing.T, text string, res ...string) {
	t.Helper()
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("status lacks %q:\n%s", re, text)
		}
	}
}

var (
	mailDurationRE = regexp.MustCompile(`\((\d+(\.\d+)?[hms] ?)+\)`)
	mailTimeRE     = regexp.MustCompile(`(Timestamp|Started|Finished): .*`)
)

// normalizeMail keeps what a golden mail can hold: no run's times.
func normalizeMail(body string) []byte {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = mailDurationRE.ReplaceAllString(body, "(DURATION)")
	body = mailTimeRE.ReplaceAllString(body, "$1: TIME")
	return []byte(body)
}

// labGolden compares got with testdata/name, or rewrites it with -update.
func labGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
