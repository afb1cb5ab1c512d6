package jobs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/testing/loopdev"
	"github.com/borgkit/borgkit/testing/smtpsink"
)

// A lab is a server on this machine with real parts: an ext4 backup disk
// on a loop device mounted at DIR/mnt/backup, a tmpfs source mountpoint,
// a second disk as the NAS, real borg repos, real msmtp mailing a local SMTP
// sink.
type lab struct {
	t       testing.TB
	dir     string
	backup  *loopdev.Device
	mnt     string
	home    string
	nas     string
	sink    *smtpsink.Sink
	cfgPath string
	cfg     *config.Config
	env     *jobs.Env
	log     bytes.Buffer
}

const (
	backupUUID = "3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f"
	nasUUID    = "0b6e1f0a-5c3d-4e8f-a1b2-c3d4e5f60718"
)

type labOptions struct {
	diskSize int64
	// extraRepo adds a repo whose directory holds no borg repo.
	extraRepo bool
	// offsite is "" or an rsync -e string reaching a test sshd as host pi;
	// hashSSH reaches its serve-hashes key.
	offsite, hashSSH string
	// excludes are the system repo's, written as YAML flow items.
	excludes []string
	// maxDelete is the NAS mirror's max_delete.
	maxDelete int
	// compactDaily compacts every night, at threshold 1 (default: the
	// site's policy, Sundays).
	compactDaily bool
	// retention replaces the site's (default daily 3, weekly 2, monthly 6).
	retention string
	// repos are more repos of john-ai, YAML list items, given the lab
	// (its backup disk is mounted at l.mnt).
	repos func(l *lab) string
}

func need(t testing.TB, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed (make deps installs it); these tests run it for real", p)
		}
	}
}

func sh(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
	return string(out)
}

func mountDisk(t testing.TB, d *loopdev.Device, mp string) {
	t.Helper()
	sh(t, "mount", d.Path, mp)
	t.Cleanup(func() { exec.Command("umount", "-l", mp).Run() })
}

func newLab(t testing.TB, o labOptions) *lab {
	t.Helper()
	need(t, "borg", "msmtp", "mkfs.ext4", "findmnt")
	if o.diskSize == 0 {
		o.diskSize = 128 << 20
	}
	l := &lab{t: t, dir: t.TempDir()}
	l.mnt = filepath.Join(l.dir, "mnt/backup")
	l.nas = filepath.Join(l.dir, "mnt/nas")
	l.home = filepath.Join(l.dir, "src/home")
	for _, d := range []string{l.mnt, l.nas, l.home, filepath.Join(l.dir, "keys")} {
		os.MkdirAll(d, 0o700)
	}
	l.backup = loopdev.New(t, o.diskSize)
	l.backup.Run(t, "mkfs.ext4", "-q", "-F", "-U", backupUUID, l.backup.Path)
	mountDisk(t, l.backup, l.mnt)
	nas := loopdev.New(t, 128<<20)
	nas.Run(t, "mkfs.ext4", "-q", "-F", "-U", nasUUID, nas.Path)
	mountDisk(t, nas, l.nas)
	sh(t, "mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", l.home)
	t.Cleanup(func() { exec.Command("umount", "-l", l.home).Run() })
	for i := range 20 {
		os.WriteFile(filepath.Join(l.home, fmt.Sprintf("doc%02d.txt", i)), bytes.Repeat([]byte(fmt.Sprintf("document %d\n", i)), 200+i*50), 0o644)
	}
	os.WriteFile(filepath.Join(l.home, "canary.txt"), []byte("the canary sings\n"), 0o644)

	l.sink = smtpsink.Start(t)
	rc := l.sink.MsmtpConfig(t)
	pass := filepath.Join(l.dir, "keys/system.pass")
	p, _ := steps.Passphrase()
	os.WriteFile(pass, p, 0o600)
	extra := ""
	if len(o.excludes) > 0 {
		extra += "\n        excludes: [" + strings.Join(o.excludes, ", ") + "]"
	}
	if o.extraRepo {
		os.MkdirAll(filepath.Join(l.mnt, "broken"), 0o700)
		extra += fmt.Sprintf(`
      - name: broken
        path: %s/broken
        sources: [%s]
        encryption: none`, l.mnt, l.home)
	}
	if o.repos != nil {
		extra += o.repos(l)
	}
	mirrors := fmt.Sprintf(`
    mirrors:
      - name: nas
        path: %s/backups
        size_only: true`, l.nas)
	if o.maxDelete > 0 {
		mirrors += fmt.Sprintf("\n        max_delete: %d", o.maxDelete)
	}
	site := "retention: {daily: 3, weekly: 2, monthly: 6}"
	if o.retention != "" {
		site = "retention: " + o.retention
	}
	if o.compactDaily {
		site += "\ncompaction: {weekdays: [mon, tue, wed, thu, fri, sat, sun], threshold: 1}"
	}
	pi := ""
	if o.offsite != "" {
		mirrors += `
      - name: offsite
        host: pi
        path: /mnt/backup`
		pi = `
  - name: pi
    role: offsite
    address: 127.0.0.1
    disks:
      - name: backup
        device: /dev/disk/by-id/usb-test
        uuid: b6e1f0a2-5c3d-4e8f-a1b2-c3d4e5f60719
        mountpoint: /mnt/backup
        backup: true
        luks: {key_host: john-ai}
    unlock: {server: john-ai}`
	}
	src := fmt.Sprintf(`version: 1
alerts:
  to: ops@example.com
  from: john-ai@example.com
  sendmail: [/usr/bin/msmtp, -C, %s, --read-envelope-from, -t]
%s
hosts:
  - name: john-ai
    role: server
    address: 127.0.0.1
    disks:
      - name: usb
        uuid: %s
        mountpoint: %s
        backup: true
      - name: nas
        uuid: %s
        mountpoint: %s
    repos:
      - name: system
        path: %s/system
        sources: [%s]
        must_be_mountpoints: [%s]
        encryption: repokey-blake2
        passphrase_file: %s
        canary: %s/canary.txt%s%s%s
`, rc, site, backupUUID, l.mnt, nasUUID, l.nas, l.mnt, l.home, l.home, pass, l.home, extra, mirrors, pi)
	l.cfgPath = filepath.Join(l.dir, "borgkit.yaml")
	os.WriteFile(l.cfgPath, []byte(src), 0o644)
	cfg, err := config.Parse(l.cfgPath, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	l.cfg = cfg
	h, _ := cfg.Host("john-ai")
	c := exec.Command("borg", "init", "--encryption=repokey-blake2", filepath.Join(l.mnt, "system"))
	c.Env = append(host.Environ(borg.Inherited...), borg.OnHost(host.NewLocal("t"), pass).Vars()...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("borg init: %v\n%s", err, out)
	}
	// borg wants room for a whole segment (500 MB by default) before it
	// commits a deletion; the test disk is 128 MB.
	repoCfg := filepath.Join(l.mnt, "system", "config")
	rc0, _ := os.ReadFile(repoCfg)
	os.WriteFile(repoCfg, bytes.Replace(rc0, []byte("max_segment_size = 524288000"), []byte("max_segment_size = 8388608"), 1), 0o600)
	l.env = &jobs.Env{Cfg: cfg, Host: h, Store: &state.Store{Dir: filepath.Join(l.dir, "state"), Host: "john-ai"},
		Log: &l.log, LogPath: filepath.Join(l.dir, "nightly.log"), LockPath: filepath.Join(l.dir, "borg.lock"),
		LockWait: time.Minute, SSH: o.offsite, HashSSH: o.hashSSH, RevokedDir: filepath.Join(l.dir, "revoked")}
	l.env.Defaults()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("job log:\n%s", l.log.String())
		}
	})
	return l
}

// mails waits briefly for n mails, and fails on more or fewer.
func (l *lab) mails(n int) []smtpsink.Message {
	l.t.Helper()
	if n == 0 {
		time.Sleep(300 * time.Millisecond)
		if m := l.sink.Messages(); len(m) != 0 {
			l.t.Fatalf("want no mail, got %q", m[0].Subject)
		}
		return nil
	}
	msgs, err := l.sink.WaitFor(n, 15*time.Second)
	if err != nil {
		l.t.Fatalf("want %d mails: %v", n, err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := l.sink.Messages(); len(got) != n {
		l.t.Fatalf("want %d mails, got %d", n, len(got))
	}
	l.sink.Reset()
	return msgs
}

func (l *lab) borgEnv() []string {
	return borg.OnHost(host.NewLocal("t"), filepath.Join(l.dir, "keys", "system.pass")).Vars()
}

func (l *lab) archives(repo string) int {
	l.t.Helper()
	c := exec.Command("borg", "list", "--short", filepath.Join(l.mnt, repo))
	c.Env = append(host.Environ(borg.Inherited...), borg.OnHost(host.NewLocal("t"), filepath.Join(l.dir, "keys", repo+".pass")).Vars()...)
	out, err := c.CombinedOutput()
	if err != nil {
		l.t.Fatalf("borg list: %v\n%s", err, out)
	}
	return len(strings.Fields(string(out)))
}

func wantMail(t *testing.T, m smtpsink.Message, subject string, body ...string) {
	t.Helper()
	if m.Subject != subject {
		t.Fatalf("subject %q, want %q\n%s", m.Subject, subject, m.Body)
	}
	text := strings.ReplaceAll(m.Body, "\r\n", "\n")
	for _, b := range body {
		if !strings.Contains(text, b) {
			t.Errorf("mail %q lacks %q:\n%s", subject, b, m.Body)
		}
	}
}

func ctx() context.Context { return context.Background() }

// runOut runs argv and returns its output, or an error carrying it.
func runOut(argv ...string) (string, error) {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%v: %v\n%s", argv, err, out)
	}
	return string(out), nil
}

// borg runs borg on one of the lab's repos, as an operator (or an
// intruder with the passphrase) would by hand.
func (l *lab) borg(args ...string) string {
	l.t.Helper()
	c := exec.Command("borg", args...)
	c.Env = append(host.Environ(borg.Inherited...), l.borgEnv()...)
	out, err := c.CombinedOutput()
	if err != nil {
		l.t.Fatalf("borg %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// night changes the sources and runs a nightly at least a second after the
// last (archive names have a second's resolution).
func (l *lab) night(i int) {
	l.t.Helper()
	time.Sleep(1100 * time.Millisecond)
	buf := make([]byte, 64<<10)
	rand.Read(buf)
	os.WriteFile(filepath.Join(l.home, fmt.Sprintf("night%02d.bin", i)), buf, 0o644)
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		l.t.Fatalf("nightly %d: %v", i, err)
	}
}
