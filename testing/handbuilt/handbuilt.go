// Package handbuilt is the first seed's hand-built backup system as its
// author describes it — scripts, cron file, library, msmtprc, ssh alias,
// fstab lines, the Pi's unlock timer and watchdog — for the tests of
// `borgkit adopt` and of provisioning that takes such a system over: the
// namespace lab builds it on its two hosts, Tree under a directory.
package handbuilt

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
)

// Names of the seed's system.
const (
	// Cron is the seed's cron file, Lib its shared library; the scripts
	// are in /usr/local/bin.
	Cron = "/etc/cron.d/john-ai-backups"
	Lib  = "/usr/local/lib/backup-lib.sh"
	// Alias is the Pi's name in john-ai's /root/.ssh/config; Key the push
	// key it names, confined by rrsync on the Pi.
	Alias = "offsite-backup"
	Key   = "/root/.ssh/offsite_backup_ed25519"
	// LUKSKey is the Pi's keyfile, kept on john-ai only.
	LUKSKey = "/root/.luks/offsite-backup.key"
	// Heartbeat is where the seed's sync leaves its heartbeat on the Pi.
	Heartbeat = "/mnt/backup/.heartbeat/john-ai-last-success"
)

// Repos are the seed's five repos on /mnt/backup and their sources as
// the fixture's nightly script gives them (/storage is /srv here).
var Repos = []struct{ Name, Source string }{
	{"john-ai", "/etc /home"},
	{"john-ai-vms", "/srv/libvirt/images"},
	{"john-ai-containers", "/var/lib/machines"},
	{"john-ai-containerd", "/srv/containerd"},
	{"john-ai-docker", "/srv/docker"},
}

// Scripts are the seed's scripts in /usr/local/bin.
var Scripts = []string{"backup-nightly.sh", "backup-offsite-sync.sh", "backup-stale-check.sh",
	"backup-integrity-check.sh", "backup-verify-data.sh", "backup-restore-test.sh", "backup-status"}

// File is one file of the system: where it goes, which template, its mode.
type File struct {
	Path, Src string
	Mode      os.FileMode
}

// ServerFiles are john-ai's files (fstab lines apart: FstabLines).
func ServerFiles() []File {
	fs := []File{
		{Lib, "server/backup-lib.sh", 0o644},
		{Cron, "server/john-ai-backups.cron", 0o644},
		{"/etc/logrotate.d/backup-logs", "server/backup-logs.logrotate", 0o644},
		{"/etc/msmtprc", "server/msmtprc", 0o600},
		{"/root/.ssh/config", "server/ssh_config", 0o600},
	}
	for _, s := range Scripts {
		fs = append(fs, File{"/usr/local/bin/" + s, "server/" + s, 0o755})
	}
	return fs
}

// PiFiles are the Pi's own pieces: the unlock timer, service and script,
// the watchdog and its cron file.
func PiFiles() []File {
	return []File{
		{"/usr/local/sbin/offsite-unlock.sh", "pi/offsite-unlock.sh", 0o755},
		{"/etc/systemd/system/offsite-unlock.service", "pi/offsite-unlock.service", 0o644},
		{"/etc/systemd/system/offsite-unlock.timer", "pi/offsite-unlock.timer", 0o644},
		{"/usr/local/bin/backup-watchdog.sh", "pi/backup-watchdog.sh", 0o755},
		{"/etc/cron.d/offsite-watchdog", "pi/offsite-watchdog.cron", 0o644},
	}
}

// Values fill the templates.
type Values struct {
	MailTo, MailFrom, SMTPHost, SMTPPort, SMTPPassword string
	OffsiteAddr, ServerAddr                            string
	USBUUID, NASUUID, LUKSUUID                         string
}

//go:embed files
var files embed.FS

// Render is a file of the system with v filled in.
func Render(src string, v Values) ([]byte, error) {
	b, err := files.ReadFile("files/" + src)
	if err != nil {
		return nil, err
	}
	t, err := template.New(src).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, v); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return out.Bytes(), nil
}

// Nights are the days back each repo has an archive from, named as the
// seed's script names them (nightly-{now:%Y-%m-%dT%H:%M}): one from the
// week before and the last two nights, all kept by the seed's retention.
var Nights = []int{8, 2, 1}

// ArchiveName is the seed's name for the archive of day.
func ArchiveName(day time.Time) string { return "nightly-" + day.Format("2006-01-02T15:04") }

// Tree writes john-ai's side of the system under root for a test: the
// files, its fstab and hostname, a little data, the five repos made with
// the real borg (unencrypted, as the seed runs them) with an archive for
// each of Nights, and their NAS copies under /mnt/nas/backups.
func Tree(t testing.TB, root string, v Values) {
	t.Helper()
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed (make deps installs it)")
	}
	put := func(p string, b []byte, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range ServerFiles() {
		b, err := Render(f.Src, v)
		if err != nil {
			t.Fatal(err)
		}
		put(f.Path, b, f.Mode)
	}
	fstab, err := Render("server/fstab", v)
	if err != nil {
		t.Fatal(err)
	}
	put("/etc/fstab", append([]byte("UUID=0b1a7e57-0000-4000-8000-000000000001 / ext4 errors=remount-ro 0 1\n"), fstab...), 0o644)
	put("/etc/hostname", []byte("john-ai\n"), 0o644)
	for _, src := range []string{"/etc/hosts", "/home/user/a.txt", "/srv/libvirt/images/vm.qcow2", "/var/lib/machines/m/x", "/srv/containerd/db", "/srv/docker/v/dump.sql"} {
		put(src, []byte("data of "+src+"\n"), 0o644)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for _, r := range Repos {
		repo := filepath.Join(root, "mnt/backup", r.Name)
		Borg(t, root, "", "init", "--make-parent-dirs", "--encryption=none", repo)
		for _, n := range Nights[len(Nights)-1:] { // one night is enough outside the lab
			day := today.AddDate(0, 0, -n)
			Borg(t, root, "", "create", "--timestamp", day.Format("2006-01-02T15:04:05"), repo+"::"+ArchiveName(day), filepath.Join(root, "etc/hosts"))
		}
		nas := filepath.Join(root, "mnt/nas/backups")
		if err := os.MkdirAll(nas, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", repo, nas+"/").CombinedOutput(); err != nil {
			t.Fatalf("copy %s to the NAS: %v %s", r.Name, err, out)
		}
	}
}

// Borg runs borg for a test tree: its state under root's /root, the
// passphrase in the environment (tests only), legacy exit codes.
func Borg(t testing.TB, root, pass string, args ...string) string {
	t.Helper()
	c := exec.Command("borg", args...)
	c.Env = append(os.Environ(), "BORG_BASE_DIR="+filepath.Join(root, "root"), "BORG_EXIT_CODES=legacy",
		"BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes", "BORG_PASSPHRASE="+pass)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("borg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The Pi's side of the unlock: its key to fetch the LUKS key from john-ai,
// and the device-mapper name its unlock script opens the disk as.
const (
	PiUnlockKey = "/root/.ssh/unlock_ed25519"
	Mapper      = "offsite-backup"
)

// KeyServeLine is the line of john-ai's authorized_keys that serves the
// LUKS keyfile to the Pi's unlock key, and to nothing else.
func KeyServeLine(piAddr string, unlockPub []byte) []byte {
	return []byte(`restrict,from="` + piAddr + `",command="cat ` + LUKSKey + `" ` + strings.TrimSpace(string(unlockPub)) + "\n")
}

// RRSyncLine is the line of the Pi's authorized_keys that confines
// john-ai's push key to the mirror at /mnt/backup.
func RRSyncLine(pushPub []byte) []byte {
	return []byte(`command="/usr/bin/rrsync /mnt/backup",restrict ` + strings.TrimSpace(string(pushPub)) + "\n")
}

// TakeOverChanges reads a `borgkit plan --json` of a hand-built host and
// returns its changes as "ID: summary". Every change must take over,
// retire, or install borgkit's own files: the test fails on a conflict,
// a borg init, a LUKS format, a generated passphrase, a repo step or a
// second mirror root.
func TakeOverChanges(t testing.TB, out string) []string {
	t.Helper()
	var p struct {
		Steps []struct {
			ID    string `json:"id"`
			Check struct {
				Action  string `json:"action"`
				Summary string `json:"summary"`
				Reason  string `json:"reason"`
			} `json:"check"`
		} `json:"steps"`
	}
	i := strings.Index(out, "{")
	if i < 0 {
		t.Fatalf("plan --json printed no JSON:\n%s", out)
	}
	if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(&p); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, out)
	}
	var changes []string
	for _, s := range p.Steps {
		c := s.Check
		if c.Action != "create" && c.Action != "modify" {
			if c.Action == "conflict" {
				t.Errorf("the plan conflicts: %s: %s", s.ID, c.Reason)
			}
			continue
		}
		changes = append(changes, s.ID+": "+c.Summary)
		for _, bad := range []string{"borg init", "luksFormat", "generate borg passphrase"} {
			if strings.Contains(c.Summary, bad) {
				t.Errorf("the plan would %s: %s", bad, s.ID)
			}
		}
		// A mirror made again under borgkit's default root would resend
		// everything; the snapshots' directory beside it is new and right.
		if root := layout.MirrorRoot("/mnt/backup"); strings.HasSuffix(s.ID, root) || strings.Contains(s.ID, root+"/") || strings.HasPrefix(s.ID, "repo.") {
			t.Errorf("the plan would change %s: %s", s.ID, c.Summary)
		}
	}
	return changes
}
