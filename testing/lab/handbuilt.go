package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/testing/handbuilt"
)

// DiskLUKS is the Pi's LUKS2 container of the hand-built system (not
// opened: no device-mapper here).
const DiskLUKS = "luks"

// HandBuiltSMTPPassword is the password in the hand-built /etc/msmtprc.
const HandBuiltSMTPPassword = "lab-smtp-password-not-for-argv"

// buildHandBuilt puts the seed's system on the two hosts: scripts, cron
// file, fstab lines, msmtprc with a password, the ssh alias and rrsync
// key, five unencrypted repos with archives named as the seed's script
// names them, the Pi's LUKS container with its keyfile on john-ai and its
// unlock timer; then it runs the seed's own sync script, which mirrors the
// repos to the Pi (through rrsync) and the NAS and leaves the heartbeat.
func (l *Lab) buildHandBuilt(ctx context.Context) error {
	s, p := l.Host(Server), l.Host(Offsite)
	pushPriv, pushPub, err := newKey("root@" + Server)
	if err != nil {
		return err
	}
	unlockPriv, unlockPub, err := newKey("root@" + handbuilt.Alias)
	if err != nil {
		return err
	}
	luksKey := make([]byte, 64)
	if _, err := rand.Read(luksKey); err != nil {
		return err
	}
	luks, err := l.luksDisk(ctx, luksKey)
	if err != nil {
		return err
	}
	v := handbuilt.Values{MailTo: MailTo, MailFrom: "john-ai@lab.example", SMTPHost: ServerAddr, SMTPPort: fmt.Sprint(SMTPPort),
		SMTPPassword: HandBuiltSMTPPassword, OffsiteAddr: p.Addr, ServerAddr: s.Addr,
		USBUUID: l.Disk(DiskUSB).UUID, NASUUID: l.Disk(DiskNAS).UUID, LUKSUUID: luks.UUID}
	type file struct {
		host, path, src string
		data            []byte
		mode            os.FileMode
	}
	files := []file{
		{host: Server, path: handbuilt.Key, data: pushPriv, mode: 0o600},
		{host: Server, path: handbuilt.Key + ".pub", data: pushPub, mode: 0o644},
		{host: Server, path: "/root/.ssh/known_hosts", data: []byte(p.Addr + " " + p.HostPublicKey + "\n"), mode: 0o644},
		{host: Server, path: handbuilt.LUKSKey, data: luksKey, mode: 0o400},
		{host: Server, path: "/root/.ssh/authorized_keys", mode: 0o600, data: handbuilt.KeyServeLine(p.Addr, unlockPub)},
		{host: Offsite, path: handbuilt.PiUnlockKey, data: unlockPriv, mode: 0o600},
		{host: Offsite, path: "/root/.ssh/authorized_keys", mode: 0o600, data: handbuilt.RRSyncLine(pushPub)},
	}
	for _, f := range handbuilt.ServerFiles() {
		files = append(files, file{host: Server, path: f.Path, src: f.Src, mode: f.Mode})
	}
	for _, f := range handbuilt.PiFiles() {
		files = append(files, file{host: Offsite, path: f.Path, src: f.Src, mode: f.Mode})
	}
	for _, f := range files {
		b := f.data
		if f.src != "" {
			if b, err = handbuilt.Render(f.src, v); err != nil {
				return fmt.Errorf("%s: %w", f.src, err)
			}
		}
		if err := l.WriteFile(f.host, f.path, b, f.mode); err != nil {
			return err
		}
	}
	for _, d := range []string{path.Dir(handbuilt.LUKSKey)} {
		if pth, err := l.Path(Server, d); err == nil {
			if err := os.Chmod(pth, 0o700); err != nil {
				return err
			}
		}
	}
	fstab, err := handbuilt.Render("server/fstab", v)
	if err != nil {
		return err
	}
	if err := l.appendFile(Server, "/etc/fstab", fstab); err != nil {
		return err
	}
	// The unlock timer is enabled, as `systemctl enable` leaves it.
	wants, err := l.Path(Offsite, "/etc/systemd/system/timers.target.wants")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	if err := os.Symlink("/etc/systemd/system/offsite-unlock.timer", filepath.Join(wants, "offsite-unlock.timer")); err != nil {
		return err
	}
	if err := l.handBuiltData(ctx); err != nil {
		return err
	}
	if err := l.handBuiltRepos(ctx); err != nil {
		return err
	}
	// The seed's own sync makes the mirrors and the heartbeat.
	if _, stderr, err := l.RunContext(ctx, Server, "/usr/local/bin/backup-offsite-sync.sh"); err != nil {
		return fmt.Errorf("the hand-built sync: %w\n%s", err, stderr)
	}
	return nil
}

// luksDisk makes the Pi's LUKS2 container, opened by key: a small image
// with cheap key derivation (the lab's, not the seed's), attached as a
// loop device the Pi sees.
func (l *Lab) luksDisk(ctx context.Context, key []byte) (*Disk, error) {
	img := filepath.Join(l.Dir, "disks", Offsite+"-"+DiskLUKS+".img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return nil, err
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		return nil, err
	}
	keyFile := filepath.Join(l.Dir, "luks.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(keyFile)
	if _, err := l.local(ctx, "cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--pbkdf", "pbkdf2",
		"--pbkdf-force-iterations", "1000", "--key-file", keyFile, img); err != nil {
		return nil, err
	}
	out, err := l.local(ctx, "cryptsetup", "luksUUID", img)
	if err != nil {
		return nil, err
	}
	d := &Disk{Name: DiskLUKS, Host: Offsite, Image: img, UUID: strings.TrimSpace(string(out))}
	dev, err := l.local(ctx, losetupProg, "--find", "--show", img)
	if err != nil {
		return nil, err
	}
	d.Device = strings.TrimSpace(string(dev))
	l.disks = append(l.disks, d)
	return d, nil
}

// handBuiltData is what the repos back up, and /srv as the seed's
// /storage partition (a mountpoint the nightly insists on).
func (l *Lab) handBuiltData(ctx context.Context) error {
	if _, _, err := l.RunContext(ctx, Server, "mount", "-t", "tmpfs", "-o", "size=256m,mode=0755", "tmpfs", "/srv"); err != nil {
		return err
	}
	noise := make([]byte, 3<<20)
	if _, err := rand.Read(noise); err != nil {
		return err
	}
	files := map[string][]byte{
		"/home/user/notes.txt":                          []byte(strings.Repeat("a note of john-ai's user\n", 400)),
		"/home/user/code/main.go":                       []byte("package main\n\nfunc main() {}\n"),
		"/srv/libvirt/images/100-homeassistant.qcow2":   noise[:1<<20],
		"/srv/libvirt/images/102-openclaw.qcow2":        noise[1<<20 : 2<<20],
		"/var/lib/machines/adguard/etc/adguard.yaml":    []byte("bind_port: 53\n"),
		"/var/lib/machines/minecraft/world/level.dat":   noise[2<<20 : 2<<20+256<<10],
		"/srv/containerd/io.containerd.metadata.v1/db":  noise[2<<20+256<<10 : 2<<20+512<<10],
		"/srv/docker/volumes/nextcloud-db/dump.sql":     []byte(strings.Repeat("INSERT INTO oc_files VALUES (1);\n", 2000)),
		"/srv/docker/volumes/nextcloud-data/readme.txt": []byte("nextcloud data\n"),
	}
	for p, b := range files {
		if err := l.WriteFile(Server, p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// handBuiltRepos makes the five unencrypted repos and their archives, a
// night apart and named as the seed's script names them
// (nightly-{now:%Y-%m-%dT%H:%M}); the data changes a little each night.
func (l *Lab) handBuiltRepos(ctx context.Context) error {
	env := []string{"env", "BORG_EXIT_CODES=legacy", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes"}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for _, r := range handbuilt.Repos {
		repo := "/mnt/backup/" + r.Name
		if _, stderr, err := l.RunContext(ctx, Server, append(env, "borg", "init", "--encryption=none", repo)...); err != nil {
			return fmt.Errorf("borg init %s: %w\n%s", repo, err, stderr)
		}
	}
	for _, n := range handbuilt.Nights {
		day := today.AddDate(0, 0, -n)
		name := handbuilt.ArchiveName(day)
		if err := l.WriteFile(Server, "/home/user/diary.txt", []byte("night of "+strings.TrimPrefix(name, "nightly-")+"\n"), 0o644); err != nil {
			return err
		}
		for _, r := range handbuilt.Repos {
			argv := append(append([]string{}, env...), "borg", "create", "--compression", "zstd", "--timestamp", day.Format("2006-01-02T15:04:05"),
				"/mnt/backup/"+r.Name+"::"+name)
			argv = append(argv, strings.Fields(r.Source)...)
			if _, stderr, err := l.RunContext(ctx, Server, argv...); err != nil {
				return fmt.Errorf("borg create %s: %w\n%s", r.Name, err, stderr)
			}
		}
	}
	return nil
}

func (l *Lab) appendFile(host, path string, data []byte) error {
	old, err := l.ReadFile(host, path)
	if err != nil {
		return err
	}
	return l.WriteFile(host, path, append(old, data...), 0o644)
}

// newKey is an ed25519 key pair as OpenSSH writes it.
func newKey(comment string) (priv, pub []byte, err error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(k, comment)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(block), []byte(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + comment + "\n"), nil
}
