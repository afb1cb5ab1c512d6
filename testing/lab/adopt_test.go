package lab_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/recipe"
	"github.com/borgkit/borgkit/testing/handbuilt"
	"github.com/borgkit/borgkit/testing/lab"
)

// What adopt may not change: every tree of each host that holds its
// setup. sshd writes login records for adopt's SSH session itself; those
// are sshd's, not adopt's.
var (
	serverTrees = []string{"/etc", "/root", "/usr/local", "/var", "/home", "/srv", "/mnt/backup", "/mnt/nas"}
	piTrees     = []string{"/etc", "/root", "/usr/local", "/var", "/home", "/mnt/backup"}
	sshdWrites  = []string{"/var/log/wtmp", "/var/log/lastlog", "/var/log/btmp", "/var/lib/dpkg"}
)

func snapshots(t *testing.T, l *lab.Lab) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for host, dirs := range map[string][]string{lab.Server: serverTrees, lab.Offsite: piTrees} {
		s, err := l.Snapshot(host, dirs, sshdWrites...)
		if err != nil {
			t.Fatal(err)
		}
		out[host] = s
	}
	return out
}

func changed(a, b map[string]map[string]string) []string {
	var d []string
	for host := range a {
		for p, v := range a[host] {
			if w, ok := b[host][p]; !ok {
				d = append(d, host+":"+p+" (gone)")
			} else if w != v {
				d = append(d, host+":"+p)
			}
		}
		for p := range b[host] {
			if _, ok := a[host][p]; !ok {
				d = append(d, host+":"+p+" (new)")
			}
		}
	}
	slices.Sort(d)
	return d
}

// run runs argv on john-ai and returns its output; failing says so.
func run(t *testing.T, l *lab.Lab, ctx context.Context, argv ...string) (string, error) {
	t.Helper()
	t0 := time.Now()
	out, errOut, err := l.RunContext(ctx, lab.Server, argv...)
	t.Logf("john-ai$ %s (%.1fs, %v)", strings.Join(argv, " "), time.Since(t0).Seconds(), err)
	return string(out) + string(errOut), err
}

func must(t *testing.T, l *lab.Lab, ctx context.Context, argv ...string) string {
	t.Helper()
	out, err := run(t, l, ctx, argv...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

// refused runs a provision that must be refused and change nothing.
func refused(t *testing.T, l *lab.Lab, ctx context.Context, what, want string, argv ...string) {
	t.Helper()
	before := snapshots(t, l)
	out, err := run(t, l, ctx, argv...)
	if err == nil || !strings.Contains(out, want) {
		t.Errorf("%s: provisioning was not refused with %q (err %v):\n%s", what, want, err, out)
	}
	if d := changed(before, snapshots(t, l)); len(d) > 0 {
		t.Errorf("%s: the refused run changed %q", what, d)
	}
	t.Logf("%s: refused: %s", what, firstLine(out, want))
}

func firstLine(out, sub string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// sizes maps each regular file under dir on john-ai to its size and hash.
func sizes(t *testing.T, l *lab.Lab, dir string) map[string][2]string {
	t.Helper()
	root, err := l.Path(lab.Server, dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, root)] = [2]string{fmt.Sprint(len(b)), hex.EncodeToString(sum[:])}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// archives lists a repo's archives on john-ai.
func archives(t *testing.T, l *lab.Lab, ctx context.Context, repo string) []string {
	t.Helper()
	return strings.Fields(must(t, l, ctx, "env", "BORG_EXIT_CODES=legacy", "borg", "list", "--short", "/mnt/backup/"+repo))
}

// extract is the SHA-256 of one file of an archive.
func extract(t *testing.T, l *lab.Lab, ctx context.Context, repo, archive, file string) string {
	t.Helper()
	out, _, err := l.RunContext(ctx, lab.Server, "env", "BORG_EXIT_CODES=legacy", "borg", "extract", "--stdout", "/mnt/backup/"+repo+"::"+archive, file)
	if err != nil {
		t.Fatalf("extract %s::%s %s: %v", repo, archive, file, err)
	}
	sum := sha256.Sum256(out)
	return hex.EncodeToString(sum[:])
}

// samples are a file of each repo's archives, as borg stores the path.
var samples = map[string]string{
	"john-ai": "home/user/diary.txt", "john-ai-vms": "srv/libvirt/images/100-homeassistant.qcow2",
	"john-ai-containers": "var/lib/machines/adguard/etc/adguard.yaml", "john-ai-containerd": "srv/containerd/io.containerd.metadata.v1/db",
	"john-ai-docker": "srv/docker/volumes/nextcloud-db/dump.sql",
}

// TestAdoptHandBuilt takes over the first seed's hand-built system in the
// namespace lab: adopt reads both hosts without changing a byte and
// writes a config that validates; bad states are refused without a
// change; the plan only takes over and retires; provisioning converges
// (a second plan has nothing to do); the first nightly adds an archive to
// every existing repo and every old archive still extracts as it did; the
// first sync sends the Pi no more than 1.02x what that night added; the
// old cron file is gone from /etc/cron.d and the old heartbeat path is
// the one borgkit's sync and watchdog use.
func TestAdoptHandBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("the hand-built fixture and the adoption take minutes; not with -short")
	}
	l := lab.StartT(t, lab.Options{HandBuilt: true, DiskSize: 1 << 30})
	bin := borgkitBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	installAdmin(t, l, bin)

	// 1. adopt, read-only.
	before := snapshots(t, l)
	t0 := time.Now()
	// The config goes to /run, outside the trees compared.
	out := must(t, l, ctx, "borgkit", "adopt", "-o", "/run/adopted.yaml")
	adoptTime := time.Since(t0)
	if d := changed(before, snapshots(t, l)); len(d) > 0 {
		t.Fatalf("adopt changed the hosts it read: %q", d)
	}
	t.Logf("adopt said:\n%s", out)
	cfg, err := l.ReadFile(lab.Server, "/run/adopted.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("adopted config:\n%s", cfg)
	for _, want := range []string{"mirror_root: /mnt/backup", "password_from: /etc/msmtprc", "keyfile: " + handbuilt.LUKSKey, "nightly: \"0 0 * * *\"",
		"path: /mnt/nas/backups", "size_only: true", "daily: 3", "#   - " + handbuilt.Cron} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("the adopted config lacks %q", want)
		}
	}
	if bytes.Contains(cfg, []byte(lab.HandBuiltSMTPPassword)) {
		t.Fatal("the SMTP password reached the config")
	}
	must(t, l, ctx, "borgkit", "config", "validate", "/run/adopted.yaml")
	// The Pi's old files are retired through the config's list (uncommented,
	// as a user would), john-ai's with --retire.
	piRetire, serverRetire := retireLists(t, cfg)
	cfg = uncommentRetire(cfg, lab.Offsite)
	if err := l.WriteFile(lab.Server, lab.ConfigPath, cfg, 0o640); err != nil {
		t.Fatal(err)
	}
	var retire []string
	for _, f := range serverRetire {
		retire = append(retire, "--retire", f)
	}
	t.Logf("retire on john-ai: %q; on pi (config): %q", serverRetire, piRetire)
	provisionServer := append([]string{"borgkit", "provision", lab.Server, "--local"}, retire...)

	// 2. Bad states: refused, nothing changed.
	refused(t, l, ctx, "the old schedule not retired", "a hand-built backup schedule works on what borgkit would run", "borgkit", "provision", lab.Server, "--local")
	fstab, _ := l.ReadFile(lab.Server, "/etc/fstab")
	usb := l.Disk(lab.DiskUSB)
	if err := l.WriteFile(lab.Server, "/etc/fstab", append(append([]byte{}, fstab...), []byte(usb.Device+" /mnt/backup ext4 defaults 0 2\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	refused(t, l, ctx, "two fstab lines for /mnt/backup", "two lines for /mnt/backup", provisionServer...)
	if err := l.WriteFile(lab.Server, "/etc/fstab", fstab, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFile(lab.Server, "/mnt/nas/backups/frigate/2026-06-11/clip.mp4", []byte("footage"), 0o644); err != nil {
		t.Fatal(err)
	}
	refused(t, l, ctx, "a mirror path holding other data", "holds frigate/, which is no borg repository", provisionServer...)
	if _, _, err := l.Run(lab.Server, "rm", "-r", "/mnt/nas/backups/frigate"); err != nil {
		t.Fatal(err)
	}

	// 3. The plan only takes over and retires.
	out = must(t, l, ctx, append([]string{"borgkit", "plan", lab.Server, "--local", "--json"}, retire...)...)
	checkTakeOverPlan(t, out)

	// 4. Provision john-ai, then the Pi from it; a wrong keyfile is refused first.
	t0 = time.Now()
	must(t, l, ctx, provisionServer...)
	provisionTime := time.Since(t0)
	key, err := l.ReadFile(lab.Server, handbuilt.LUKSKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFile(lab.Server, handbuilt.LUKSKey, bytes.Repeat([]byte{7}, 64), 0o400); err != nil {
		t.Fatal(err)
	}
	refused(t, l, ctx, "a keyfile that does not open the Pi's header", "borgkit's key does not open", "borgkit", "provision", lab.Offsite)
	if err := l.WriteFile(lab.Server, handbuilt.LUKSKey, key, 0o400); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	out = must(t, l, ctx, "borgkit", "provision", lab.Offsite)
	provisionTime += time.Since(t0)
	t.Logf("provision pi:\n%s", out)
	for _, h := range []string{lab.Server, lab.Offsite} {
		argv := []string{"borgkit", "plan", h, "--detailed-exitcode"}
		if h == lab.Server {
			argv = append(argv, "--local")
		}
		if out := must(t, l, ctx, argv...); !strings.Contains(out, h+": no changes.") {
			t.Errorf("a second plan of %s has changes:\n%s", h, out)
		}
	}
	t.Logf("adopt took %s, provisioning john-ai and pi %s", adoptTime.Round(100*time.Millisecond), provisionTime.Round(100*time.Millisecond))
	if _, err := l.ReadFile(lab.Server, handbuilt.Cron); err == nil {
		t.Errorf("%s is still in /etc/cron.d", handbuilt.Cron)
	}
	if _, err := l.ReadFile(lab.Server, "/var/lib/borgkit/retired"+handbuilt.Cron+".borgkit-old"); err != nil {
		t.Errorf("the retired cron file was not kept: %v", err)
	}
	// A retired file is moved aside; where borgkit writes its own in its
	// place (the Pi's msmtprc), what stands there is borgkit's.
	for _, f := range piRetire {
		if b, err := l.ReadFile(lab.Offsite, f); err == nil && !layout.MarkedBy(b, layout.Marker) {
			t.Errorf("pi: %s was not retired", f)
		}
		if _, err := l.ReadFile(lab.Offsite, layout.Retired(f)); err != nil {
			t.Errorf("pi: no retired copy of %s: %v", f, err)
		}
	}
	// The hand-built push logged in as root: root's rrsync reaches the
	// snapshots, so its line is taken out (kept, commented, under a marker).
	if ak, err := l.ReadFile(lab.Offsite, layout.AuthorizedKeys); err != nil {
		t.Errorf("pi: %v", err)
	} else {
		for _, line := range strings.Split(string(ak), "\n") {
			if strings.Contains(line, "rrsync") && !strings.HasPrefix(line, "#") {
				t.Errorf("pi: root's authorized_keys still lets a key run rrsync as root: %s", line)
			}
		}
		if !strings.Contains(string(ak), recipe.PushTakenMarker) {
			t.Errorf("pi: the old push line was not kept under borgkit's marker:\n%s", ak)
		}
	}
	if hb, err := l.ReadFile(lab.Server, "/etc/borgkit/keys/pi-backup-header.img"); err != nil || len(hb) < 16<<10 {
		t.Errorf("no header backup of the Pi's LUKS disk on john-ai: %d bytes, %v", len(hb), err)
	}
	if p, err := l.ReadFile(lab.Server, "/etc/borgkit/smtp.pass"); err != nil || string(p) != lab.HandBuiltSMTPPassword+"\n" {
		t.Errorf("the SMTP password was not taken over: %v", err)
	}

	// 5. A night: new data, borgkit's nightly into the old repos.
	old := map[string][]string{}
	oldSums := map[string]string{}
	for _, r := range handbuilt.Repos {
		old[r.Name] = archives(t, l, ctx, r.Name)
		for _, a := range old[r.Name] {
			oldSums[r.Name+"::"+a] = extract(t, l, ctx, r.Name, a, samples[r.Name])
		}
	}
	night := make([]byte, 12<<20)
	if _, err := rand.Read(night); err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{"/srv/libvirt/images/101-claudecode.qcow2": night[:6<<20], "/srv/docker/volumes/nextcloud-db/dump-new.sql": night[6<<20 : 8<<20],
		"/home/user/photos/new.raw": night[8<<20 : 10<<20], "/var/lib/machines/minecraft/world/region.mca": night[10<<20:]} {
		if err := l.WriteFile(lab.Server, p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	beforeNight := map[string]map[string][2]string{}
	for _, r := range handbuilt.Repos {
		beforeNight[r.Name] = sizes(t, l, "/mnt/backup/"+r.Name)
	}
	must(t, l, ctx, "borgkit", "job", "nightly")
	for _, r := range handbuilt.Repos {
		now := archives(t, l, ctx, r.Name)
		if len(now) != len(old[r.Name])+1 {
			t.Errorf("%s: archives %q after the nightly, had %q", r.Name, now, old[r.Name])
		}
		for _, a := range old[r.Name] {
			if !slices.Contains(now, a) {
				t.Errorf("%s: old archive %s is gone", r.Name, a)
				continue
			}
			if got := extract(t, l, ctx, r.Name, a, samples[r.Name]); got != oldSums[r.Name+"::"+a] {
				t.Errorf("%s::%s: %s extracts as %s, was %s", r.Name, a, samples[r.Name], got, oldSums[r.Name+"::"+a])
			}
		}
	}
	// The diary of each old night is what that night wrote.
	for _, a := range old["john-ai"] {
		out, _, err := l.Run(lab.Server, "borg", "extract", "--stdout", "/mnt/backup/john-ai::"+a, "home/user/diary.txt")
		if want := "night of " + strings.TrimPrefix(a, "nightly-") + "\n"; err != nil || string(out) != want {
			t.Errorf("john-ai::%s diary %q, want %q (%v)", a, out, want, err)
		}
	}

	// 6. The first sync: only the night's new files cross.
	var newBytes int64
	for _, r := range handbuilt.Repos {
		for p, v := range sizes(t, l, "/mnt/backup/"+r.Name) {
			if beforeNight[r.Name][p] != v {
				var n int64
				fmt.Sscan(v[0], &n)
				newBytes += n
			}
		}
	}
	hbBefore, _ := l.ReadFile(lab.Offsite, handbuilt.Heartbeat)
	must(t, l, ctx, "borgkit", "job", "sync")
	rec, err := l.ReadFile(lab.Server, "/var/lib/borgkit/state/sync.json")
	if err != nil {
		t.Fatal(err)
	}
	var sync struct {
		Stats struct {
			Mirrors []struct {
				Name      string `json:"name"`
				Status    string `json:"status"`
				SentBytes int64  `json:"sent_bytes"`
			} `json:"mirrors"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(rec, &sync); err != nil {
		t.Fatal(err)
	}
	for _, m := range sync.Stats.Mirrors {
		ratio := float64(m.SentBytes) / float64(newBytes)
		t.Logf("first sync to %s: rsync sent %d bytes; the night's new and changed repo files hold %d bytes: %.3fx", m.Name, m.SentBytes, newBytes, ratio)
		if m.Status != "ok" {
			t.Errorf("mirror %s: %s", m.Name, m.Status)
		}
		if m.Name == "offsite" && (ratio > 1.02 || m.SentBytes == 0) {
			t.Errorf("the first sync sent the Pi %.3fx the night's new bytes (want at most 1.02x)", ratio)
		}
	}
	mirrorsMatch(t, l, " after the sync")
	if hb, err := l.ReadFile(lab.Offsite, handbuilt.Heartbeat); err != nil || bytes.Equal(hb, hbBefore) {
		t.Errorf("borgkit's sync did not renew the old heartbeat %s (%q, %v)", handbuilt.Heartbeat, hb, err)
	}
	if _, err := l.ReadFile(lab.Offsite, "/mnt/backup/borgkit"); err == nil {
		t.Error("a second mirror root /mnt/backup/borgkit appeared on the Pi")
	}
	// The Pi's watchdog reads the heartbeat where the old one lay: silent.
	if out, _, err := l.Run(lab.Offsite, "borgkit", "job", "watchdog"); err != nil {
		t.Errorf("pi: job watchdog: %v\n%s", err, out)
	}
}

// installAdmin puts borgkit on john-ai and the operator's key on both
// hosts, beside the old setup's keys.
func installAdmin(t *testing.T, l *lab.Lab, bin string) {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFile(lab.Server, "/usr/local/bin/borgkit", b, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Run(lab.Server, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin@john-ai", "-f", "/root/.ssh/id_ed25519"); err != nil {
		t.Fatal(err)
	}
	pub, err := l.ReadFile(lab.Server, "/root/.ssh/id_ed25519.pub")
	if err != nil {
		t.Fatal(err)
	}
	ak, err := l.ReadFile(lab.Offsite, "/root/.ssh/authorized_keys")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFile(lab.Offsite, "/root/.ssh/authorized_keys", append(ak, pub...), 0o600); err != nil {
		t.Fatal(err)
	}
}

var retireItemRE = regexp.MustCompile(`^(\s*)#   - (/\S+)$`)

// retireLists are the files the adopted config lists, commented out, for
// each host to retire.
func retireLists(t *testing.T, cfg []byte) (pi, server []string) {
	t.Helper()
	host := ""
	for _, line := range strings.Split(string(cfg), "\n") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "- name: "); ok && strings.HasPrefix(line, "  - ") {
			host = n
		}
		if m := retireItemRE.FindStringSubmatch(line); m != nil {
			if host == lab.Server {
				server = append(server, m[2])
			} else {
				pi = append(pi, m[2])
			}
		}
	}
	if len(pi) == 0 || len(server) == 0 {
		t.Fatalf("no retire lists in the adopted config")
	}
	return pi, server
}

// uncommentRetire makes host's commented retire list a real one.
func uncommentRetire(cfg []byte, host string) []byte {
	lines := strings.Split(string(cfg), "\n")
	cur := ""
	for i, line := range lines {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "- name: "); ok && strings.HasPrefix(line, "  - ") {
			cur = n
		}
		if cur != host {
			continue
		}
		t := strings.TrimSpace(line)
		if t == "# retire:" || retireItemRE.MatchString(line) {
			lines[i] = strings.Replace(line, "# ", "", 1)
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// checkTakeOverPlan: every change of the plan takes over, retires, or
// installs borgkit's own files; none makes a repo, a passphrase, a LUKS
// header or a second mirror root.
func checkTakeOverPlan(t *testing.T, out string) {
	t.Helper()
	changes := handbuilt.TakeOverChanges(t, out)
	t.Logf("the plan's changes:\n  %s", strings.Join(changes, "\n  "))
	for _, want := range []string{"retire./etc/cron.d/john-ai-backups: retire: move to /var/lib/borgkit/retired/etc/cron.d/john-ai-backups.borgkit-old",
		"block./etc/fstab: take over 2 line(s)", "secret./etc/borgkit/smtp.pass: take over the SMTP password"} {
		if !slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, want) }) {
			t.Errorf("the plan does not %q", want)
		}
	}
}
