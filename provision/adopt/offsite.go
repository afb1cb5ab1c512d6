package adopt

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/legacy"
	"github.com/borgkit/borgkit/provision/tools"
)

// offsite reads the host the setup mirrors to: over SSH as the server's
// ssh config names it, read-only like the server.
func (s *survey) offsite(dial func(ctx context.Context, addr, user string, port int) (host.Host, error)) error {
	if s.remoteAlias == "" {
		return nil
	}
	cfgB, _ := s.h.ReadFile(s.ctx, layout.SSHConfig)
	alias := legacy.SSHAlias(legacy.SSHConfig(cfgB), s.remoteAlias)
	addr, user, port := s.remoteAlias, config.DefaultSSHUser, config.DefaultSSHPort
	identity := ""
	if alias != nil {
		if v := alias.Settings["hostname"]; v != "" {
			addr = v
		}
		if v := alias.Settings["user"]; v != "" {
			user = v
		}
		if n, err := strconv.Atoi(alias.Settings["port"]); err == nil {
			port = n
		}
		identity = alias.Settings["identityfile"]
	} else {
		s.leave("the rsync target %s is not a Host of %s: its address is a guess", s.remoteAlias, layout.SSHConfig)
	}
	o := config.Host{Name: "offsite", Role: config.RoleOffsite, Address: addr}
	if user != config.DefaultSSHUser {
		o.SSH.User = user
	}
	if port != config.DefaultSSHPort {
		o.SSH.Port = port
	}
	op := "hosts[1]"
	s.notes.add(op+".address", "Host %s in %s (HostName, User, Port)", s.remoteAlias, layout.SSHConfig)
	var pi host.Host
	if dial != nil {
		h, err := dial(s.ctx, addr, user, port)
		if err != nil {
			return fmt.Errorf("read the offsite host %s (%s@%s:%d, Host %s of %s): %w", s.remoteAlias, user, addr, port, s.remoteAlias, layout.SSHConfig, err)
		}
		defer h.Close()
		pi = &readOnly{Host: h}
	}
	if pi == nil {
		s.leave("the offsite host was not read (no SSH to %s): its disk, LUKS container and mirror root are guesses", addr)
		s.offsiteGuess(&o, op)
		return nil
	}
	if n, err := s.hostname(pi); err == nil && n != s.srv.Name {
		o.Name = n
		if alias != nil && n == s.remoteAlias {
			// borgkit's own ssh config entry for the host would clash with
			// the old alias of the same name.
			o.Name = n + "-offsite"
			s.notes.guess(op+".name", "its host name is %s, the name of the old Host entry in %s, which borgkit's own entry must not clash with", n, layout.SSHConfig)
		}
	}
	if b, err := pi.ReadFile(s.ctx, layout.ServerHostKeyPub); err == nil {
		o.SSH.HostPublicKey = strings.TrimSpace(string(b))
	}
	if res, err := pi.Run(s.ctx, host.Command(tools.Printenv, "SSH_CONNECTION")); err == nil {
		if f := strings.Fields(string(res.Stdout)); len(f) > 0 {
			s.srv.Address = f[0]
			s.notes.add(srvPath+".address", "the address %s saw this machine connect from (the unlock fetch and the rrsync key are limited to it)", o.Name)
		}
	}
	root, err := s.rrsyncRoot(pi, identity)
	if err != nil {
		return err
	}
	if err := s.offsiteDisk(pi, &o, op, root); err != nil {
		return err
	}
	s.offsiteJobs(pi, &o, op)
	// The offsite host mails from its own account (the seed's watchdog
	// does), so it gets its own alerts, not the server's password.
	if o.Alerts == nil {
		o.Alerts = &config.Alerts{}
	}
	s.msmtp(pi, o.Name, o.Alerts, op+".alerts")
	if o.Alerts.SMTP != nil {
		s.retire[o.Name] = append(s.retire[o.Name], layout.Msmtprc)
	} else if s.cfg.Alerts.SMTP != nil {
		s.leave("%s has no msmtp account of its own, and borgkit would give it %s's: set its alerts.smtp", o.Name, s.srv.Name)
	}
	s.cfg.Hosts = append(s.cfg.Hosts, o)
	s.srv = &s.cfg.Hosts[0]
	s.offHost = &s.cfg.Hosts[1]
	s.remoteMirror(root)
	return nil
}

// offsiteGuess is the offsite host as far as the server's scripts tell.
func (s *survey) offsiteGuess(o *config.Host, op string) {
	o.Disks = []config.Disk{{Name: "backup", Mountpoint: "/mnt/backup", Backup: true, UUID: "00000000-0000-0000-0000-000000000000"}}
	s.notes.guess(op+".disks[0]", "not read: fill in the disk's UUID (and device and luks: if it is encrypted)")
	s.cfg.Hosts = append(s.cfg.Hosts, *o)
	s.srv = &s.cfg.Hosts[0]
	s.offHost = &s.cfg.Hosts[1]
	s.remoteMirror("/mnt/backup")
}

// rrsyncRoot is the directory the server's push key is confined to on
// the offsite host, from its authorized_keys: the relative paths of the
// old rsync lines start there.
func (s *survey) rrsyncRoot(pi host.Host, identity string) (string, error) {
	ak, err := pi.ReadFile(s.ctx, layout.AuthorizedKeys)
	if err != nil {
		return "", fmt.Errorf("read %s on the offsite host: %w", layout.AuthorizedKeys, err)
	}
	var want ssh.PublicKey
	if identity != "" {
		if b, err := s.h.ReadFile(s.ctx, strings.Replace(identity, "~", layout.BorgHome, 1)+".pub"); err == nil {
			want, _, _, _, _ = ssh.ParseAuthorizedKey(b)
		}
	}
	var roots []string
	for _, fc := range forcedCommands(ak) {
		if !strings.Contains(fc.cmd, "rrsync") {
			continue
		}
		f := strings.Fields(fc.cmd)
		dir := f[len(f)-1]
		if !strings.HasPrefix(dir, "/") {
			continue
		}
		if want != nil && bytes.Equal(fc.key.Marshal(), want.Marshal()) {
			return path.Clean(dir), nil
		}
		roots = append(roots, path.Clean(dir))
	}
	if len(roots) == 1 {
		s.notes.guess("hosts[1].mirror_root", "the only rrsync key in %s on the offsite host (not matched to the server's key)", layout.AuthorizedKeys)
		return roots[0], nil
	}
	return "", fmt.Errorf("the offsite host's %s has %d rrsync lines and none for the server's key %s: cannot tell where the mirror lives", layout.AuthorizedKeys, len(roots), identity)
}

// remoteMirror adds the server's mirror to the offsite host, the mirror
// root kept where the old rsync lines wrote.
func (s *survey) remoteMirror(root string) {
	o := s.offHost
	dirs := map[string]bool{}
	for _, r := range s.srv.Repos {
		rel, ok := s.remoteRel[r.Name]
		if !ok {
			s.leave("repo %s has no copy on %s yet: the first borgkit sync sends it whole", r.Name, o.Name)
			continue
		}
		if path.Base(rel) != r.Name {
			s.leave("repo %s is mirrored as %s on %s, not under its own name: borgkit would send it again", r.Name, rel, o.Name)
		}
		dirs[path.Dir(rel)] = true
	}
	mroot := root
	if len(dirs) == 1 {
		for d := range dirs {
			mroot = path.Join(root, d)
		}
	}
	if mroot != o.MirrorRootOrDefault() {
		o.MirrorRoot = mroot
		s.notes.add("hosts[1].mirror_root", "the old rsync lines wrote to %s:REPO/ below rrsync's root %s: the mirrors stay there, so borgkit's first sync sends only what changed", s.remoteAlias, root)
	}
	s.srv.Mirrors = append(s.srv.Mirrors, config.Mirror{Name: "offsite", Host: o.Name, Path: mroot})
	s.notes.add(fmt.Sprintf("%s.mirrors[%d]", srvPath, len(s.srv.Mirrors)-1), "the old rsync to %s (through its rrsync key); borgkit pushes with its own key, the old key's line on %s is left to you", s.remoteAlias, o.Name)
	s.leave("on %s, the old push key's rrsync line in %s: remove it once borgkit's sync works (it still writes to the mirror)", o.Name, layout.AuthorizedKeys)
	if s.heartbeat != "" {
		want := path.Join(layout.HeartbeatDir, layout.HeartbeatName(s.srv.Name))
		if rel, _ := relTo(root, mroot); path.Join(rel, want) != s.heartbeat {
			s.leave("the old heartbeat is %s below the rrsync root; borgkit writes %s below its mirror root (%s): point the old watchdog there or retire it", s.heartbeat, want, mroot)
		} else {
			s.notes.add("hosts[1].mirror_root", "the heartbeat stays at %s, where the old one was", path.Join(mroot, want))
		}
	}
}

func relTo(base, p string) (string, bool) {
	if !layout.Under(p, base) {
		return "", false
	}
	return strings.TrimPrefix(strings.TrimPrefix(p, base), "/"), true
}

// offsiteDisk describes the disk the mirror root is on, and the LUKS
// container under it with its keyfile on the server.
func (s *survey) offsiteDisk(pi host.Host, o *config.Host, op, root string) error {
	res, err := pi.Run(s.ctx, host.Command(tools.Findmnt, "-n", "-o", "TARGET,SOURCE,FSTYPE,UUID", "--target", root))
	if err != nil {
		return fmt.Errorf("findmnt %s on %s: %w", root, o.Name, err)
	}
	f := strings.Fields(string(res.Stdout))
	if len(f) < 4 || f[0] == "/" {
		s.leave("%s on %s is not on a mounted disk of its own: describe the offsite disk by hand", root, o.Name)
		s.offsiteGuessDisk(o, op, root)
		return nil
	}
	d := config.Disk{Name: "backup", Mountpoint: f[0], UUID: strings.ToLower(f[3]), Backup: true, Options: []string{"nofail"}}
	if f[2] != config.DefaultFSType {
		d.FSType = f[2]
	}
	dp := op + ".disks[0]"
	s.notes.add(dp, "the filesystem %s is on (findmnt on %s: %s, UUID %s)", root, o.Name, f[1], f[3])
	dev, mapper, how := s.luksDevice(pi, f[1])
	if dev == "" {
		s.notes.add(dp, "adopt: no LUKS container found on %s: the disk is taken as plain", o.Name)
		o.Disks = append(o.Disks, d)
		return nil
	}
	d.Device = s.stableName(pi, dev)
	switch {
	case d.Device != dev:
		s.notes.add(dp+".device", "%s (%s), by its stable name", dev, how)
	case strings.HasPrefix(dev, "/dev/disk/"):
		s.notes.add(dp+".device", "%s", how)
	default:
		s.notes.guess(dp+".device", "%s (%s); it has no /dev/disk/by-id name here, and a kernel name can change at the next boot", dev, how)
	}
	if res, err := pi.Run(s.ctx, host.Command(tools.Cryptsetup, "luksUUID", dev)); err == nil {
		s.notes.add(dp+".device", "its LUKS UUID is %s", strings.TrimSpace(string(res.Stdout)))
	}
	d.LUKS = &config.LUKS{KeyHost: s.srv.Name}
	if mapper != "" && mapper != d.Name {
		d.LUKS.Mapper = mapper
	}
	keyfile := s.luksKeyfile(pi, o, dev)
	if keyfile != "" {
		d.LUKS.Keyfile = keyfile
	} else {
		s.notes.guess(dp+".luks.keyfile", "NOT FOUND on %s: no forced command serving a key and no file that opens %s; borgkit would look for %s", s.srv.Name, dev, layout.LUKSKeyfile(o.Name, d.Name))
		s.leave("the LUKS keyfile of %s:%s on %s", o.Name, dev, s.srv.Name)
	}
	o.Disks = append(o.Disks, d)
	o.Unlock = &config.Unlock{Server: s.srv.Name}
	s.notes.add(op+".unlock", "borgkit's unlock timer replaces the old one (retire it below)")
	return nil
}

func (s *survey) offsiteGuessDisk(o *config.Host, op, root string) {
	o.Disks = []config.Disk{{Name: "backup", Mountpoint: root, Backup: true, UUID: "00000000-0000-0000-0000-000000000000"}}
	s.notes.guess(op+".disks[0]", "fill in the disk's UUID")
}

// luksDevice finds the LUKS container under the mount's source: the
// device behind a /dev/mapper source, else the only LUKS device there is.
func (s *survey) luksDevice(pi host.Host, source string) (dev, mapper, how string) {
	if m, ok := strings.CutPrefix(source, "/dev/mapper/"); ok {
		if res, err := pi.Run(s.ctx, host.Command(tools.Cryptsetup, "status", m)); err == nil {
			for _, l := range strings.Split(string(res.Stdout), "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(l), "device:"); ok {
					return strings.TrimSpace(v), m, "the device under /dev/mapper/" + m
				}
			}
		}
	}
	// The old unlock names its device and mapper.
	udev, mapper := s.unlockTarget(pi)
	if udev != "" {
		if u, ok := strings.CutPrefix(udev, "/dev/disk/by-uuid/"); ok {
			if _, err := pi.Lstat(s.ctx, udev); err != nil {
				// No udev links (a container): blkid finds the container by its UUID.
				if res, err := pi.Run(s.ctx, host.Command(tools.Blkid, "-U", u)); err == nil {
					udev = strings.TrimSpace(string(res.Stdout))
				}
			}
		}
		if _, err := pi.Run(s.ctx, host.Command(tools.Cryptsetup, "isLuks", udev)); err == nil {
			return udev, mapper, "the device the old unlock opens"
		}
	}
	res, err := pi.Run(s.ctx, host.Command(tools.Blkid, "-t", "TYPE=crypto_LUKS", "-o", "device"))
	if err != nil {
		return "", "", ""
	}
	devs := strings.Fields(string(res.Stdout))
	if len(devs) != 1 {
		if len(devs) > 1 {
			s.leave("the offsite host has %d LUKS devices (%s): say which holds the mirror", len(devs), strings.Join(devs, ", "))
		}
		return "", "", ""
	}
	return devs[0], mapper, "the only LUKS device there; its mount is not through device-mapper here"
}

// unlockTarget is the device and mapper name the old unlock script opens
// ("cryptsetup open DEVICE NAME"), "" where it says none plainly.
func (s *survey) unlockTarget(pi host.Host) (dev, mapper string) {
	jobs, err := legacy.Scan(s.ctx, pi)
	if err != nil {
		return "", ""
	}
	for _, j := range jobs {
		for _, c := range j.Cmds() {
			a := c.Args()
			if len(a) < 4 || path.Base(a[0]) != "cryptsetup" || a[1] != "open" && a[1] != "luksOpen" {
				continue
			}
			var pos []string
			for i := 2; i < len(a); i++ {
				switch w := a[i]; {
				case w == "--key-file" || w == "-d" || w == "--type" || w == "--header":
					i++
				case strings.HasPrefix(w, "-"):
				default:
					pos = append(pos, w)
				}
			}
			if len(pos) >= 2 && !strings.ContainsAny(pos[0]+pos[1], "$`") {
				return pos[0], pos[1]
			}
		}
	}
	return "", ""
}

// stableName is dev's /dev/disk/by-id (else by-uuid) name, or dev.
func (s *survey) stableName(pi host.Host, dev string) string {
	for _, dir := range []string{"/dev/disk/by-id", "/dev/disk/by-uuid"} {
		res, err := pi.Run(s.ctx, host.Command(tools.Find, dir, "-mindepth", "1", "-maxdepth", "1", "-type", "l", "-printf", "%f %l\\n"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(res.Stdout), "\n") {
			name, target, ok := strings.Cut(l, " ")
			if ok && path.Base(target) == path.Base(dev) {
				return path.Join(dir, name)
			}
		}
	}
	return dev
}

var catRE = regexp.MustCompile(`^(?:/usr)?(?:/bin/)?cat\s+(/\S+)$`)

// luksKeyfile is where the server keeps the container's key: the file a
// forced command in the server's authorized_keys serves to the offsite
// host. It is checked against the header on the offsite host
// (cryptsetup open --test-passphrase reads, it does not open).
func (s *survey) luksKeyfile(pi host.Host, o *config.Host, dev string) string {
	ak, err := s.h.ReadFile(s.ctx, layout.AuthorizedKeys)
	if err != nil {
		return ""
	}
	var files []string
	for _, fc := range forcedCommands(ak) {
		if m := catRE.FindStringSubmatch(fc.cmd); m != nil && !slices.Contains(files, m[1]) {
			files = append(files, m[1])
		}
	}
	for _, f := range files {
		key, err := s.h.ReadFile(s.ctx, f)
		if err != nil {
			continue
		}
		c := host.Command(tools.Cryptsetup, "open", "--test-passphrase", "--key-file", "-", dev)
		c.Stdin = bytes.NewReader(key)
		if _, err := pi.Run(s.ctx, c); err == nil {
			s.notes.add("hosts[1].disks[0].luks.keyfile", "served to %s by a forced command in %s on %s; it opens %s's header (cryptsetup --test-passphrase)", o.Name, layout.AuthorizedKeys, s.srv.Name, dev)
			s.leave("on %s, the old forced command in %s that serves %s: remove it once borgkit's unlock works (borgkit revoke-unlock does not reach it)", s.srv.Name, layout.AuthorizedKeys, f)
			return f
		}
	}
	return ""
}

// offsiteJobs reads the offsite host's own schedules: the watchdog, the
// old unlock; both are listed for retiring.
func (s *survey) offsiteJobs(pi host.Host, o *config.Host, op string) {
	jobs, err := legacy.Scan(s.ctx, pi)
	if err != nil {
		s.leave("the offsite host's schedules could not be read: %v", err)
		return
	}
	var watch []string
	for _, d := range o.Disks {
		watch = append(watch, d.Mountpoint)
		if d.Device != "" {
			watch = append(watch, d.Device)
		}
	}
	var files []string
	for _, j := range jobs {
		touches := j.Touches(watch)
		unlock := false
		for _, c := range j.Cmds() {
			if a := c.Args(); len(a) > 1 && path.Base(a[0]) == "cryptsetup" && (a[1] == "open" || a[1] == "luksOpen") {
				unlock = true
			}
		}
		if len(touches) == 0 && !unlock {
			continue
		}
		for _, f := range j.Files() {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
		if unlock {
			continue
		}
		// A job reading the heartbeat is the watchdog.
		hb := false
		for _, sc := range j.Scripts {
			for _, c := range sc.Cmds {
				if strings.Contains(strings.Join(c.Words, " "), layout.HeartbeatDir) {
					hb = true
				}
			}
			for k, v := range sc.Vars {
				if strings.Contains(v, layout.HeartbeatDir) {
					hb = true
				}
				if strings.Contains(k, "THRESHOLD_HOURS") {
					if n, err := strconv.Atoi(v); err == nil && n > 0 {
						o.Thresholds.HeartbeatMaxAge = fmt.Sprintf("%dh", n)
						s.notes.add(op+".thresholds.heartbeat_max_age", "%s=%s in %s", k, v, sc.Path)
					}
				}
			}
			if bytes.Contains([]byte(strings.Join(allWords(sc), " ")), []byte("[WATCHDOG]")) && o.Alerts == nil {
				o.Alerts = &config.Alerts{SubjectPrefix: "[WATCHDOG]"}
				s.notes.add(op+".alerts", "the old watchdog's subjects start with [WATCHDOG]")
			}
		}
		if hb && j.Cron != "" {
			o.Schedules.Set(layout.JobWatchdog, j.Cron)
			s.notes.add(op+".schedules.watchdog", "from %s", where(j))
		}
	}
	s.retire[o.Name] = files
}

func allWords(sc *legacy.Script) []string {
	var out []string
	for _, c := range sc.Cmds {
		out = append(out, c.Words...)
	}
	return out
}

// forcedCommand is a key of authorized_keys with its command= option.
type forcedCommand struct {
	key ssh.PublicKey
	cmd string
}

// forcedCommands are the keys of an authorized_keys file that may only
// run one command.
func forcedCommands(ak []byte) []forcedCommand {
	var out []forcedCommand
	for rest := ak; len(rest) > 0; {
		k, _, opts, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break
		}
		rest = r
		for _, o := range opts {
			if cmd, ok := strings.CutPrefix(o, "command="); ok {
				out = append(out, forcedCommand{key: k, cmd: strings.Trim(cmd, `"`)})
			}
		}
	}
	return out
}
