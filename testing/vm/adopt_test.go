package vm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/testing/handbuilt"
)

// The hand-built Pi's LUKS container and john-ai's NAS filesystem: fixed
// so the seed's scripts can name them before they exist.
const (
	handBuiltLUKSUUID = "7c41e2b9-3d5a-4f60-8e1b-2a9c0d4f6e13"
	handBuiltNASUUID  = "e0d5a3c1-9b7f-4e2d-8c6a-1f3b5d7e9a20"
	// The NAS is a loop-mounted ext4 file on john-ai's root disk (the
	// seed mounts an SMB share; the pair has two disks only).
	handBuiltNASImage = "/var/lib/nas.img"
	adoptedConfig     = "/root/adopted.yaml"
)

// What adopt may not change: the trees of each host that hold its setup.
// /var is left out: the journal and sshd's login records change with
// every SSH session, adopt's own included.
var (
	adoptServerTrees = []string{"/etc", "/root", "/usr/local", "/mnt/backup", "/mnt/nas"}
	adoptPiTrees     = []string{"/etc", "/root", "/usr/local", "/mnt/backup"}
)

// handBuiltPi is what the hand-built system was before borgkit saw it.
type handBuiltPi struct {
	key    []byte            // the LUKS keyfile, kept on john-ai only
	mirror map[string]string // the Pi's /mnt/backup/REPO trees, "REPO/path" → sha256
}

// TestVMAdoptPi takes over the first seed's hand-built Pi with real LUKS:
// its disk formatted and opened by the test with cryptsetup and a keyfile
// kept on john-ai, the seed's own unlock timer, the mirror the seed's own
// sync made through rrsync. adopt reads both hosts over SSH without a
// change (file hashes, the LUKS header); the plans only take over and
// retire (no luksFormat); a keyfile that does not open the header is
// refused with nothing changed; provisioning backs the header up, retires
// the old unlock and formats nothing; after a reboot borgkit's unlock
// fetches the same keyfile from john-ai and mounts the disk, the old
// mirror is byte for byte what it was, and the first sync sends no more
// than 1.02x the night's new repo bytes.
func TestVMAdoptPi(t *testing.T) {
	skipUnlessVM(t)
	if os.Getenv("BORGKIT_VM_ADOPT") == "0" {
		t.Skip("BORGKIT_VM_ADOPT=0: the adopted pi takes about a quarter of an hour under TCG (the hand-built system alone five minutes); make vm-adopt runs it")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	l := newLab(ctx, t, false)
	s, pi := l.Server, l.Offsite
	var hb *handBuiltPi
	step(t, "hand-build the seed's system (LUKS by cryptsetup, the old unlock, the old sync)", func() {
		hb = l.handBuild(ctx, t)
	})

	var retire map[string][]string
	header := l.luksHeader(ctx, t)
	step(t, "borgkit adopt on john-ai, reading the pi over SSH: nothing changes", func() {
		before := l.adoptTrees(ctx, t)
		start := time.Now()
		res, err := s.Run(ctx, labBinary, "adopt", "-o", "/run/adopted.yaml", "--json")
		if err != nil {
			t.Fatalf("adopt: %v\n%s%s", err, res.Stdout, res.Stderr)
		}
		timing("AdoptPi: adopt (the command alone)", time.Since(start))
		var report struct {
			Retire     map[string][]string `json:"retire"`
			LeftToUser []string            `json:"left_to_user"`
			Guesses    []string            `json:"guesses"`
		}
		if err := json.Unmarshal(res.Stdout, &report); err != nil {
			t.Fatalf("adopt --json: %v\n%s", err, res.Stdout)
		}
		retire = report.Retire
		t.Logf("adopt guessed %q; left to the user %q; retire %q", report.Guesses, report.LeftToUser, retire)
		sameTree(t, "the hosts' files after adopt", before, l.adoptTrees(ctx, t))
		if got := l.luksHeader(ctx, t); got != header {
			t.Fatalf("the LUKS header changed during adopt")
		}
		cfg := must(ctx, t, s, "cat", "/run/adopted.yaml")
		l.saveOutput(t, "adopted.yaml", cfg)
		for _, want := range []string{"keyfile: " + handbuilt.LUKSKey, "mapper: " + handbuilt.Mapper, "device: " + l.PiDisk.ByID(),
			"key_host: " + ServerName, "mirror_root: /mnt/backup"} {
			if !strings.Contains(cfg, want) {
				t.Errorf("the adopted config lacks %q", want)
			}
		}
		must(ctx, t, s, labBinary, "config", "validate", "/run/adopted.yaml")
		must(ctx, t, s, "cp", "/run/adopted.yaml", adoptedConfig)
		l.useConfig(t, []byte(cfg))
	})
	if len(retire[OffsiteName]) == 0 || len(retire[ServerName]) == 0 {
		t.Fatalf("adopt lists nothing to retire on %s or %s: %q", ServerName, OffsiteName, retire)
	}
	for _, f := range []string{"/etc/systemd/system/offsite-unlock.timer", "/etc/systemd/system/offsite-unlock.service"} {
		if !slices.Contains(retire[OffsiteName], f) {
			t.Errorf("adopt does not list the old unlock's %s to retire: %q", f, retire[OffsiteName])
		}
	}

	// The pi's plan wants borgkit's key on john-ai: it is planned once
	// john-ai is provisioned.
	step(t, "plan john-ai: only take-overs and retirements", func() {
		l.takeOverPlan(ctx, t, ServerName, retire[ServerName])
	})
	var provisionTime time.Duration
	step(t, "provision john-ai --local --retire", func() {
		start := time.Now()
		l.saveOutput(t, "provision-john-ai.txt", must(ctx, t, s, append([]string{labBinary, "--config", adoptedConfig, "provision", ServerName, "--local"},
			retireFlags(retire[ServerName])...)...))
		provisionTime += time.Since(start)
		if _, err := s.Run(ctx, "test", "-e", handbuilt.Cron); err == nil {
			t.Errorf("%s is still in /etc/cron.d", handbuilt.Cron)
		}
	})

	step(t, "plan pi: only take-overs and retirements, no LUKS format", func() {
		changes := l.takeOverPlan(ctx, t, OffsiteName, retire[OffsiteName])
		if !slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, "luks-header.") }) {
			t.Errorf("the plan of %s takes no header backup", OffsiteName)
		}
	})

	piProvision := append([]string{layout.Binary, "provision", OffsiteName}, retireFlags(retire[OffsiteName])...)
	step(t, "a keyfile that does not open the pi's header: refused, nothing changed", func() {
		wrong := make([]byte, len(hb.key))
		if _, err := rand.Read(wrong); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteFile(ctx, handbuilt.LUKSKey, wrong, 0o400); err != nil {
			t.Fatal(err)
		}
		before := l.piTrees(ctx, t)
		res, err := s.Run(ctx, piProvision...)
		out := string(res.Stdout) + string(res.Stderr)
		const want = "borgkit's key does not open"
		if err == nil || !strings.Contains(out, want) || !strings.Contains(out, "the keyfile "+ServerName+":"+handbuilt.LUKSKey) {
			t.Errorf("provisioning with a wrong keyfile was not refused with %q (err %v):\n%s", want, err, out)
		} else {
			t.Logf("refused: %s", firstLineWith(out, want))
		}
		sameTree(t, "the pi after the refused run", before, l.piTrees(ctx, t))
		if got := l.luksHeader(ctx, t); got != header {
			t.Fatal("the LUKS header changed in the refused run")
		}
		if err := s.WriteFile(ctx, handbuilt.LUKSKey, hb.key, 0o400); err != nil {
			t.Fatal(err)
		}
	})

	step(t, "provision pi --retire: header backed up, old unlock retired, nothing formatted", func() {
		start := time.Now()
		l.saveOutput(t, "provision-pi.txt", must(ctx, t, s, piProvision...))
		provisionTime += time.Since(start)
		if got := must(ctx, t, pi, "cryptsetup", "luksUUID", l.piDisk.Device); got != handBuiltLUKSUUID {
			t.Errorf("LUKS UUID %s after provisioning, the hand-built one was %s", got, handBuiltLUKSUUID)
		}
		if got := l.luksHeader(ctx, t); got != header {
			t.Error("provisioning changed the LUKS header")
		}
		// The backup is the header as it is on the disk.
		backup, err := s.ReadFile(ctx, layout.HeaderBackup(OffsiteName, l.piDisk.Name))
		if err != nil {
			t.Fatalf("no header backup on john-ai: %v", err)
		}
		if got := l.luksHeaderLen(ctx, t, int64(len(backup))); got != sha256Hex(backup) {
			t.Errorf("the header backup (%d bytes) is not the pi's header", len(backup))
		}
		for _, f := range retire[OffsiteName] {
			if _, err := pi.Run(ctx, "test", "-e", f); err == nil {
				if b, _ := pi.ReadFile(ctx, f); !layout.MarkedBy(b, layout.Marker) {
					t.Errorf("pi: %s was not retired", f)
				}
			}
			must(ctx, t, pi, "test", "-e", layout.Retired(f))
		}
		if st, _ := pi.Output(ctx, "systemctl", "is-enabled", "offsite-unlock.timer"); st == "enabled" {
			t.Error("the old unlock timer is still enabled")
		}
		for _, h := range []string{ServerName, OffsiteName} {
			argv := []string{layout.Binary, "plan", h, "--detailed-exitcode"}
			if h == ServerName {
				argv = append(argv, "--local")
			}
			if out := must(ctx, t, s, argv...); !strings.Contains(out, h+": no changes.") {
				t.Errorf("a second plan of %s has changes:\n%s", h, planErrors(out))
			}
		}
	})
	timing("AdoptPi: provision john-ai and pi (commands alone)", provisionTime)

	step(t, "reboot pi: borgkit's unlock fetches the same keyfile and mounts the disk", func() {
		start := time.Now()
		if err := pi.Reboot(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
		afterSSH := l.waitUnlocked(ctx, t, unlockTimeout)
		timing("AdoptPi: reboot to unlocked (reboot command to mount)", time.Since(start))
		t.Logf("mounted %s after ssh answered", afterSSH.Round(time.Second))
		l.assertUnlocked(ctx, t)
		if log := must(ctx, t, pi, "cat", "/var/log/borgkit/unlock.log"); !strings.Contains(log, "fetched the key from "+ServerName) {
			t.Fatalf("unlock.log does not say the key was fetched:\n%s", log)
		}
		if j := journal(ctx, pi, "offsite-unlock.service"); strings.Contains(j, "Starting") {
			t.Errorf("the retired unlock ran in this boot:\n%s", j)
		}
		if got := must(ctx, t, pi, "cryptsetup", "luksUUID", l.piDisk.Device); got != handBuiltLUKSUUID {
			t.Errorf("LUKS UUID %s after the reboot, want %s", got, handBuiltLUKSUUID)
		}
		sameTree(t, "the hand-built mirror after the reboot", hb.mirror, l.handBuiltMirror(ctx, t))
	})

	step(t, "a night, then the first sync sends only what it added", func() {
		l.newNight(ctx, t)
		before := l.repoSizes(ctx, t)
		l.job(ctx, t, s, "nightly")
		var added int64
		for p, v := range l.repoSizes(ctx, t) {
			if before[p] != v {
				added += v.size
			}
		}
		l.job(ctx, t, s, "sync")
		var sync state.SyncStats
		if err := json.Unmarshal(record(ctx, t, s, "sync").Stats, &sync); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range sync.Mirrors {
			t.Logf("first sync to %s: %s, rsync sent %d bytes; the night added %d bytes of repo files (%.3fx)",
				m.Name, m.Status, m.SentBytes, added, float64(m.SentBytes)/float64(added))
			if m.Status != "ok" {
				t.Errorf("mirror %s: %s", m.Name, m.Status)
			}
			if m.Target == OffsiteName+":/mnt/backup" || strings.HasPrefix(m.Target, OffsiteName+":") {
				found = true
				if m.SentBytes == 0 || float64(m.SentBytes) > 1.02*float64(added) {
					t.Errorf("the first sync sent the pi %d bytes for %d new: want at most 1.02x", m.SentBytes, added)
				}
			}
		}
		if !found {
			t.Errorf("the sync record has no mirror to %s: %+v", OffsiteName, sync.Mirrors)
		}
		sameTree(t, "the pi's mirror after the sync vs john-ai's repos", treeHashesUnder(ctx, t, s, "/mnt/backup", repoNames()), l.handBuiltMirror(ctx, t))
		if _, err := pi.Run(ctx, "test", "-e", "/mnt/backup/borgkit"); err == nil {
			t.Error("a second mirror root /mnt/backup/borgkit appeared on the pi")
		}
	})
}

// takeOverPlan plans h with the adopted config and the files to retire,
// and checks every change takes over or retires.
func (l *labSetup) takeOverPlan(ctx context.Context, t *testing.T, h string, retire []string) []string {
	t.Helper()
	argv := append([]string{labBinary, "--config", adoptedConfig, "plan", h, "--json"}, retireFlags(retire)...)
	if h == ServerName {
		argv = append(argv, "--local")
	}
	res, _ := l.Server.Run(ctx, argv...)
	changes := handbuilt.TakeOverChanges(t, string(res.Stdout)+string(res.Stderr))
	t.Logf("the plan of %s:\n  %s", h, strings.Join(changes, "\n  "))
	return changes
}

func retireFlags(files []string) []string {
	var out []string
	for _, f := range files {
		out = append(out, "--retire", f)
	}
	return out
}

func firstLineWith(out, sub string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func repoNames() []string {
	var out []string
	for _, r := range handbuilt.Repos {
		out = append(out, r.Name)
	}
	return out
}

// useConfig makes the adopted config the lab's: the pi's disk is then
// the adopted one (its mapper the old unlock's).
func (l *labSetup) useConfig(t *testing.T, site []byte) {
	t.Helper()
	cfg, err := config.Parse(adoptedConfig, site)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := cfg.Host(OffsiteName)
	if !ok || h.BackupDisk() == nil || h.BackupDisk().LUKS == nil {
		t.Fatalf("the adopted config has no LUKS backup disk on %s", OffsiteName)
	}
	l.cfg, l.site, l.piDisk = cfg, site, h.BackupDisk()
}

// handBuild builds the first seed's system on the pair, as its author
// did by hand: on john-ai the scripts, cron file, msmtprc and ssh alias,
// the fstab lines of the USB disk and the NAS, five unencrypted repos with
// the archives the seed's nightly names, the LUKS keyfile; on the pi a
// LUKS2 disk formatted with that keyfile (real cryptsetup, the default
// key derivation), ext4 inside, the rrsync-confined push key and the old
// unlock timer, enabled; the old unlock then opens and mounts the disk and
// the old sync mirrors the repos to it.
func (l *labSetup) handBuild(ctx context.Context, t *testing.T) *handBuiltPi {
	t.Helper()
	s, pi := l.Server, l.Offsite
	push, err := NewKey("root@" + ServerName)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := NewKey("root@" + handbuilt.Alias)
	if err != nil {
		t.Fatal(err)
	}
	hb := &handBuiltPi{key: make([]byte, 64)}
	if _, err := rand.Read(hb.key); err != nil {
		t.Fatal(err)
	}
	v := handbuilt.Values{MailTo: "root@localhost", MailFrom: "john-ai@lab.example", SMTPHost: "127.0.0.1", SMTPPort: "25",
		SMTPPassword: "vm-smtp-password-not-for-argv", OffsiteAddr: OffsiteAddress, ServerAddr: ServerAddress,
		USBUUID: USBUUID, NASUUID: handBuiltNASUUID, LUKSUUID: handBuiltLUKSUUID}
	render := func(g *Guest, files []handbuilt.File) {
		for _, f := range files {
			b, err := handbuilt.Render(f.Src, v)
			if err != nil {
				t.Fatal(err)
			}
			must(ctx, t, g, "mkdir", "-p", path.Dir(f.Path))
			if err := g.WriteFile(ctx, f.Path, b, f.Mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	hostKey := func(name string) string { return strings.TrimSpace(string(l.hostKeys[name].AuthorizedKey)) }

	// john-ai: disks, files, keys, data and repos.
	must(ctx, t, s, "mkdir", "-p", "/mnt/backup", "/mnt/nas")
	must(ctx, t, s, "truncate", "-s", "256M", handBuiltNASImage)
	must(ctx, t, s, "mkfs.ext4", "-q", "-U", handBuiltNASUUID, handBuiltNASImage)
	must(ctx, t, s, "losetup", "--find", handBuiltNASImage)
	// fstab names the NAS by UUID: udev's link must be there to mount it.
	must(ctx, t, s, "udevadm", "settle")
	fstab, err := handbuilt.Render("server/fstab", v)
	if err != nil {
		t.Fatal(err)
	}
	appendFile(ctx, t, s, "/etc/fstab", fstab, 0o644)
	must(ctx, t, s, "systemctl", "daemon-reload")
	must(ctx, t, s, "mount", "/mnt/backup")
	must(ctx, t, s, "mount", "/mnt/nas")
	must(ctx, t, s, "mkdir", "-p", "/mnt/nas/backups")
	render(s, handbuilt.ServerFiles())
	must(ctx, t, s, "install", "-d", "-m", "0700", "/root/.ssh", path.Dir(handbuilt.LUKSKey))
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{handbuilt.Key, push.Private, 0o600},
		{handbuilt.Key + ".pub", push.AuthorizedKey, 0o644},
		{handbuilt.LUKSKey, hb.key, 0o400},
	} {
		if err := s.WriteFile(ctx, f.path, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	appendFile(ctx, t, s, "/root/.ssh/known_hosts", []byte(OffsiteAddress+" "+hostKey(OffsiteName)+"\n"), 0o644)
	appendFile(ctx, t, s, "/root/.ssh/authorized_keys", handbuilt.KeyServeLine(OffsiteAddress, unlock.AuthorizedKey), 0o600)
	l.handBuiltRepos(ctx, t)

	// The pi: the LUKS disk, made with the keyfile on stdin.
	dev := l.PiDisk.ByID()
	mustIn(ctx, t, pi, hb.key, "cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--uuid", handBuiltLUKSUUID, "--key-file", "-", dev)
	mustIn(ctx, t, pi, hb.key, "cryptsetup", "open", "--key-file", "-", dev, handbuilt.Mapper)
	must(ctx, t, pi, "mkfs.ext4", "-q", "-U", PiFSUUID, "/dev/mapper/"+handbuilt.Mapper)
	must(ctx, t, pi, "cryptsetup", "close", handbuilt.Mapper)
	must(ctx, t, pi, "mkdir", "-p", "/mnt/backup")
	render(pi, handbuilt.PiFiles())
	// The seed's Pi alerts from its own mail path when john-ai is dead.
	piMail := v
	piMail.MailFrom = "pi@lab.example"
	if b, err := handbuilt.Render("server/msmtprc", piMail); err != nil {
		t.Fatal(err)
	} else if err := pi.WriteFile(ctx, layout.Msmtprc, b, 0o600); err != nil {
		t.Fatal(err)
	}
	must(ctx, t, pi, "install", "-d", "-m", "0700", "/root/.ssh")
	if err := pi.WriteFile(ctx, handbuilt.PiUnlockKey, unlock.Private, 0o600); err != nil {
		t.Fatal(err)
	}
	appendFile(ctx, t, pi, "/root/.ssh/known_hosts", []byte(ServerAddress+" "+hostKey(ServerName)+"\n"), 0o644)
	appendFile(ctx, t, pi, "/root/.ssh/authorized_keys", handbuilt.RRSyncLine(push.AuthorizedKey), 0o600)
	must(ctx, t, pi, "systemctl", "daemon-reload")
	must(ctx, t, pi, "systemctl", "enable", "offsite-unlock.timer")
	// The old unlock does what it did every boot: fetch, open, mount.
	must(ctx, t, pi, "systemctl", "start", "offsite-unlock.service")
	if got, _ := findmnt(ctx, pi, "/mnt/backup"); got != "/dev/mapper/"+handbuilt.Mapper+" ext4" {
		t.Fatalf("the hand-built unlock did not mount the disk: %q\n%s", got, journal(ctx, pi, "offsite-unlock.service"))
	}
	// The old sync mirrors the repos to the pi through rrsync, and to the NAS.
	must(ctx, t, s, "/usr/local/bin/backup-offsite-sync.sh")
	must(ctx, t, pi, "test", "-s", handbuilt.Heartbeat)
	hb.mirror = l.handBuiltMirror(ctx, t)
	sameTree(t, "the hand-built mirror vs john-ai's repos", treeHashesUnder(ctx, t, s, "/mnt/backup", repoNames()), hb.mirror)
	// borgkit reaches the pi with the admin's own key, as a user would.
	l.authorizeAdmin(ctx, t)
	return hb
}

// handBuiltRepos makes the seed's five repos on john-ai's USB disk with
// the real borg, unencrypted, and an archive of last night in each,
// named as the seed's nightly names it.
func (l *labSetup) handBuiltRepos(ctx context.Context, t *testing.T) {
	t.Helper()
	s := l.Server
	// The seed's nightly refuses to back up /home, /var or /srv unmounted
	// (its separate partitions); adopt carries that over
	// (must_be_mountpoints). /var keeps its contents: bound onto itself.
	for _, m := range []string{"/home", "/srv"} {
		must(ctx, t, s, "mount", "-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs", m)
	}
	must(ctx, t, s, "mount", "--bind", "/var", "/var")
	noise := make([]byte, 1<<20)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{
		"/home/user/notes.txt":                         []byte(strings.Repeat("a note of john-ai's user\n", 400)),
		"/srv/libvirt/images/100-homeassistant.qcow2":  noise[:512<<10],
		"/var/lib/machines/adguard/etc/adguard.yaml":   []byte("bind_port: 53\n"),
		"/srv/containerd/io.containerd.metadata.v1/db": noise[512<<10 : 768<<10],
		"/srv/docker/volumes/nextcloud-db/dump.sql":    []byte(strings.Repeat("INSERT INTO oc_files VALUES (1);\n", 2000)),
	} {
		must(ctx, t, s, "mkdir", "-p", path.Dir(p))
		if err := s.WriteFile(ctx, p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"env", "BORG_EXIT_CODES=legacy", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes"}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for _, r := range handbuilt.Repos {
		must(ctx, t, s, append(env, "borg", "init", "--encryption=none", "/mnt/backup/"+r.Name)...)
	}
	// One night: the namespace lab proves the old archives of several.
	for _, n := range handbuilt.Nights[len(handbuilt.Nights)-1:] {
		day := today.AddDate(0, 0, -n)
		name := handbuilt.ArchiveName(day)
		if err := s.WriteFile(ctx, "/home/user/diary.txt", []byte("night of "+strings.TrimPrefix(name, "nightly-")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, r := range handbuilt.Repos {
			argv := append(append([]string{}, env...), "borg", "create", "--compression", "zstd", "--timestamp", day.Format("2006-01-02T15:04:05"),
				"/mnt/backup/"+r.Name+"::"+name)
			must(ctx, t, s, append(argv, strings.Fields(r.Source)...)...)
		}
	}
}

// newNight is a night's new data on john-ai for borgkit's first nightly.
func (l *labSetup) newNight(ctx context.Context, t *testing.T) {
	t.Helper()
	night := make([]byte, 12<<20)
	if _, err := rand.Read(night); err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{"/srv/libvirt/images/101-claudecode.qcow2": night[:6<<20], "/srv/docker/volumes/nextcloud-db/dump-new.sql": night[6<<20 : 8<<20],
		"/home/user/photos/new.raw": night[8<<20 : 10<<20], "/var/lib/machines/minecraft/world/region.mca": night[10<<20:]} {
		must(ctx, t, l.Server, "mkdir", "-p", path.Dir(p))
		if err := l.Server.WriteFile(ctx, p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// handBuiltMirror hashes the pi's copies of the seed's repos.
func (l *labSetup) handBuiltMirror(ctx context.Context, t *testing.T) map[string]string {
	t.Helper()
	return treeHashesUnder(ctx, t, l.Offsite, "/mnt/backup", repoNames())
}

// treeHashesUnder is treeHashes of each dir below root, keyed
// "dir/path" (or host-qualified by the caller).
func treeHashesUnder(ctx context.Context, t *testing.T, g *Guest, root string, dirs []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		for p, h := range treeHashes(ctx, t, g, path.Join(root, d)) {
			out[path.Join(d, p)] = h
		}
	}
	return out
}

// adoptTrees hashes every file adopt may read on both hosts.
func (l *labSetup) adoptTrees(ctx context.Context, t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, hd := range []struct {
		g    *Guest
		dirs []string
	}{{l.Server, adoptServerTrees}, {l.Offsite, adoptPiTrees}} {
		for _, d := range hd.dirs {
			for p, h := range treeHashes(ctx, t, hd.g, d) {
				out[hd.g.Name()+":"+path.Join(d, p)] = h
			}
		}
	}
	return out
}

// piTrees hashes the pi's trees adopt and provisioning work in.
func (l *labSetup) piTrees(ctx context.Context, t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range adoptPiTrees {
		for p, h := range treeHashes(ctx, t, l.Offsite, d) {
			out[path.Join(d, p)] = h
		}
	}
	return out
}

// luksHeader is the SHA-256 of the pi's LUKS2 header area (16 MiB, the
// default; the backup's length where it is known).
func (l *labSetup) luksHeader(ctx context.Context, t *testing.T) string {
	t.Helper()
	return l.luksHeaderLen(ctx, t, 16<<20)
}

func (l *labSetup) luksHeaderLen(ctx context.Context, t *testing.T, n int64) string {
	t.Helper()
	res, err := l.Offsite.Run(ctx, "head", "-c", strconv.FormatInt(n, 10), l.PiDisk.ByID())
	if err != nil {
		t.Fatalf("read the LUKS header: %v\n%s", err, res.Stderr)
	}
	if int64(len(res.Stdout)) != n {
		t.Fatalf("read %d bytes of the LUKS header, want %d", len(res.Stdout), n)
	}
	return sha256Hex(res.Stdout)
}

// fileStat is a repo file's size and hash.
type fileStat struct {
	size int64
	sum  string
}

// repoSizes is every file of john-ai's hand-built repos with its size and
// hash.
func (l *labSetup) repoSizes(ctx context.Context, t *testing.T) map[string]fileStat {
	t.Helper()
	sums := treeHashesUnder(ctx, t, l.Server, "/mnt/backup", repoNames())
	out := map[string]fileStat{}
	for _, r := range repoNames() {
		lines := must(ctx, t, l.Server, "find", path.Join("/mnt/backup", r), "-type", "f", "-printf", "%s %P\\n")
		for _, line := range strings.Split(lines, "\n") {
			n, p, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			size, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("find -printf: %q", line)
			}
			k := path.Join(r, p)
			out[k] = fileStat{size: size, sum: sums[k]}
		}
	}
	return out
}
