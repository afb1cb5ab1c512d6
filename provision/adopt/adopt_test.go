package adopt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/testing/borghome"
	"github.com/borgkit/borgkit/testing/handbuilt"
)

func TestMain(m *testing.M) { borghome.Main(m) }

const (
	usbUUID = "3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f"
	nasUUID = "8d2e1f00-1111-4a4a-9b9b-0123456789ab"
)

// seedServer is the first seed's john-ai under a temporary root, with a
// copy of each repo on the NAS.
func seedServer(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	handbuilt.Tree(t, root, handbuilt.Values{MailTo: "me@example.com", MailFrom: "me@example.com", SMTPHost: "smtp.example.com",
		SMTPPort: "587", SMTPPassword: "hunter2-smtp", OffsiteAddr: "100.64.0.2", ServerAddr: "100.64.0.1",
		USBUUID: usbUUID, NASUUID: nasUUID, LUKSUUID: "0"})
	return root
}

func write(t *testing.T, root, p, data string, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// treeHash is every entry under root with its type, mode, owner, size,
// mtime and content hash: any write adopt made would change it.
func treeHash(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			v += " " + hex.EncodeToString(sum[:])
		}
		out[strings.TrimPrefix(p, root)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffHash(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, k+" (new)")
		}
	}
	slices.Sort(d)
	return d
}

func adoptTree(t *testing.T, root string) *Result {
	t.Helper()
	before := treeHash(t, root)
	r, err := Adopt(context.Background(), Options{Server: host.NewRooted("john-ai", root),
		Now: func() time.Time { return time.Date(2026, 6, 12, 6, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	if d := diffHash(before, treeHash(t, root)); len(d) > 0 {
		t.Errorf("adopt changed the host it read: %q", d)
	}
	return r
}

func TestAdoptSeedOne(t *testing.T) {
	root := seedServer(t)
	r := adoptTree(t, root)
	y := string(r.YAML)
	c := r.Config
	srv := &c.Hosts[0]
	if srv.Name != "john-ai" || len(srv.Repos) != 5 {
		t.Fatalf("host %s with %d repos:\n%s", srv.Name, len(srv.Repos), y)
	}
	sys := srv.Repos[0]
	if sys.Path != "/mnt/backup/john-ai" || !slices.Equal(sys.Sources, []string{"/etc", "/home"}) || len(sys.Excludes) != 10 ||
		sys.Encryption != "" || sys.ArchivePrefix != "" || !slices.Equal(sys.MustBeMountpoints, []string{"/home"}) || sys.Canary != "/etc/hostname" || sys.Timeout != "6h" {
		t.Errorf("system repo: %+v", sys)
	}
	if !slices.Equal(srv.Repos[1].MustBeMountpoints, []string{"/srv"}) {
		t.Errorf("vms repo: %+v", srv.Repos[1])
	}
	if c.Retention.Daily != 3 || c.Retention.Weekly != 2 || c.Retention.Monthly != 6 {
		t.Errorf("retention %+v", c.Retention)
	}
	if len(srv.Disks) != 2 || srv.Disks[0].UUID != usbUUID || !srv.Disks[0].Backup || srv.Disks[1].UUID != nasUUID || srv.Disks[1].Mountpoint != "/mnt/nas" {
		t.Errorf("disks %+v", srv.Disks)
	}
	if len(srv.Mirrors) != 2 || srv.Mirrors[0].Path != "/mnt/nas/backups" || !srv.Mirrors[0].SizeOnly ||
		srv.Mirrors[1].Host != "offsite" || srv.Mirrors[1].Path != "/mnt/backup" {
		t.Errorf("mirrors %+v", srv.Mirrors)
	}
	if pi := c.Hosts[1]; pi.Address != "100.64.0.2" || pi.MirrorRoot != "/mnt/backup" {
		t.Errorf("offsite host %+v", pi)
	}
	sc := srv.Schedules
	if sc.Nightly != "0 0 * * *" || sc.Sync != "0 2 * * *" || sc.Stale != "0 */6 * * *" || sc.Check != "0 9 * * 6" ||
		sc.Verify != "0 3 15 * *" || sc.RestoreTest != "0 10 1 * *" || sc.Summary != "0 8 * * 1" {
		t.Errorf("schedules %+v", sc)
	}
	a := c.Alerts
	if a.To != "me@example.com" || a.From != "me@example.com" || a.SMTP == nil || a.SMTP.PasswordFrom != "/etc/msmtprc" || a.SMTP.User != "me@example.com" {
		t.Errorf("alerts %+v %+v", a, a.SMTP)
	}
	if strings.Contains(y, "hunter2") {
		t.Errorf("the SMTP password reached the config:\n%s", y)
	}
	wantRetire := []string{"/etc/cron.d/john-ai-backups", "/usr/local/bin/backup-nightly.sh", "/usr/local/lib/backup-lib.sh",
		"/usr/local/bin/backup-offsite-sync.sh", "/usr/local/bin/backup-stale-check.sh", "/usr/local/bin/backup-integrity-check.sh",
		"/usr/local/bin/backup-verify-data.sh", "/usr/local/bin/backup-restore-test.sh", "/usr/local/bin/backup-status",
		"/etc/logrotate.d/backup-logs", "/etc/msmtprc"}
	if got := r.Retire["john-ai"]; !slices.Equal(got, wantRetire) {
		t.Errorf("retire:\n got %q\nwant %q", got, wantRetire)
	}
	for _, f := range wantRetire {
		if !strings.Contains(y, "#   - "+f+"\n") {
			t.Errorf("the config does not list %s to retire (commented out)", f)
		}
	}
	if !strings.Contains(y, "# "+Guessed) || len(r.Guesses) == 0 {
		t.Errorf("no guess marked:\n%s", y)
	}
	t.Logf("adopted config:\n%s", y)
}

// The second seed's way with secrets: an encrypted repo whose passphrase
// is in /root/.borg_env and whose key export is /root/borg-key.txt.
func TestAdoptPassphraseEnvAndKeyExport(t *testing.T) {
	root := seedServer(t)
	repo := filepath.Join(root, "mnt/backup/john-ai-docker")
	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	const pass = "long-random-passphrase"
	handbuilt.Borg(t, root, pass, "init", "--encryption=repokey-blake2", repo)
	handbuilt.Borg(t, root, pass, "create", repo+"::nightly-2026-06-11T00:00", filepath.Join(root, "etc/hosts"))
	handbuilt.Borg(t, root, pass, "key", "export", repo, filepath.Join(root, "root/borg-key.txt"))
	write(t, root, "root/.borg_env", "export BORG_PASSPHRASE='"+pass+"'\n", 0o600)
	r := adoptTree(t, root)
	d := r.Config.Hosts[0].Repos[4]
	if d.Encryption != "repokey-blake2" || d.PassphraseFrom != "/root/.borg_env" || d.KeyExport != "/root/borg-key.txt" {
		t.Errorf("docker repo: %+v\n%s", d, r.YAML)
	}
	if strings.Contains(string(r.YAML), pass) {
		t.Error("the passphrase reached the config")
	}

	// Without the env file, nothing opens it: adopt says so, and guesses.
	if err := os.Remove(filepath.Join(root, "root/.borg_env")); err != nil {
		t.Fatal(err)
	}
	r = adoptTree(t, root)
	d = r.Config.Hosts[0].Repos[4]
	if d.PassphraseFrom != "" || !strings.Contains(string(r.YAML), "NOT FOUND — no file of the setup holds a passphrase") ||
		!slices.ContainsFunc(r.LeftToUser, func(s string) bool { return strings.Contains(s, "the passphrase of /mnt/backup/john-ai-docker") }) {
		t.Errorf("docker repo without its passphrase: %+v, left %q", d, r.LeftToUser)
	}
}

// The guard refuses what would write, before it runs.
func TestReadOnlyGuard(t *testing.T) {
	root := t.TempDir()
	h := &readOnly{Host: host.NewRooted("x", root)}
	ctx := context.Background()
	if err := h.WriteFile(ctx, "/etc/x", []byte("x"), 0o644, host.Root); err != ErrWrite {
		t.Errorf("WriteFile: %v", err)
	}
	for _, argv := range [][]string{{"borg", "init", "/x"}, {"borg", "list", "/x"}, {"cryptsetup", "luksFormat", "/dev/x"},
		{"rm", "-rf", "/"}, {"sh", "-c", "true"}, {"mktemp", "-d", "/etc/x.XXXX"}} {
		if _, err := h.Run(ctx, host.Cmd{Argv: argv}); err == nil || !strings.Contains(err.Error(), "adopt reads a host") {
			t.Errorf("%q ran: %v", argv, err)
		}
	}
	if _, err := h.Run(ctx, host.Cmd{Argv: []string{"find", root, "-maxdepth", "0"}}); err != nil {
		t.Errorf("find was refused: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/x")); err == nil {
		t.Error("a refused write happened")
	}
}
