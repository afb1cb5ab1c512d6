package config

import (
	"fmt"
	"net/mail"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/layout"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"
)

// Validate checks everything decoding cannot: names, paths, references
// between hosts, what each role may carry. It reports every problem at
// once, as Problems placed in the file when c came from Parse.
func (c *Config) Validate() error {
	v := &validator{c: c, ix: c.src, seen: map[string]bool{}}
	v.config()
	if len(v.probs) == 0 {
		return nil
	}
	v.probs.sort()
	return v.probs
}

type validator struct {
	c     *Config
	ix    *srcIndex
	probs Problems
	seen  map[string]bool
}

func (v *validator) add(path string, sentinel error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	key := path + "\x00" + msg
	if v.seen[key] {
		return
	}
	v.seen[key] = true
	p := v.ix.problemAt(v.ix.lookup(path), path, sentinel, msg)
	p.File = v.c.File
	v.probs = append(v.probs, p)
}

// present tells an explicit zero from an omitted field, where the file is
// known: "port: 0" is a mistake, no port is the default.
func (v *validator) present(path string) bool { return v.ix.has(path) }

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	addressRE  = regexp.MustCompile(`^[A-Za-z0-9:][A-Za-z0-9._:-]*$`)
	userRE     = regexp.MustCompile(`^[a-z_][a-z0-9_-]*\$?$`)
	hostKeyRE  = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)
	vfatRE     = regexp.MustCompile(`^[0-9A-F]{4}-[0-9A-F]{4}$`)
	ntfsRE     = regexp.MustCompile(`^[0-9A-F]{16}$`)
	fstypeRE   = regexp.MustCompile(`^[a-z0-9]+(\.[a-z0-9]+)*$`)
	optionRE   = regexp.MustCompile(`^[^\s,#"'\\]+$`)
	shareRE    = regexp.MustCompile(`^//[^/\s]+/[^\s]+$`)
	zfsNameRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*$`)
	zfsPropRE  = regexp.MustCompile(`^[a-z][a-z0-9_.:-]*$`)
	modeRE     = regexp.MustCompile(`^0?[0-7]{3}$`)
	compLevels = map[string][2]int{"zstd": {1, 22}, "zlib": {0, 9}, "lzma": {0, 9}}
)

const maxNameLen = 64

func hasCtl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func (v *validator) name(path, what, s string) bool {
	switch {
	case s == "":
		v.add(path, ErrRequired, "%s name is required", what)
	case len(s) > maxNameLen:
		v.add(path, ErrBadName, "%s name %q is longer than %d characters", what, s, maxNameLen)
	case !nameRE.MatchString(s):
		v.add(path, ErrBadName, "%s name %q: use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit (it ends up in paths, unit names and mail subjects)", what, s)
	default:
		return true
	}
	return false
}

// unique reports a name already used earlier in the same list.
func (v *validator) unique(seen map[string]string, path, what, s string) {
	if s == "" {
		return
	}
	if first, ok := seen[s]; ok {
		v.add(path, ErrDuplicateName, "%s %q is already used at %s", what, s, displayPath(first))
		return
	}
	seen[s] = path
}

// path checks an absolute, clean path: every path ends up in fstab, unit
// files or argv, where "..", a relative path or a line break means a
// different file than the one reviewed.
func (v *validator) path(path, what, s string, required bool) bool {
	switch {
	case s == "":
		if required {
			v.add(path, ErrRequired, "%s is required", what)
		}
		return false
	case hasCtl(s):
		v.add(path, ErrBadPath, "%s %q contains a control character or line break", what, s)
	case !filepath.IsAbs(s):
		v.add(path, ErrBadPath, "%s %q must be an absolute path", what, s)
	case slices.Contains(strings.Split(s, "/"), ".."):
		v.add(path, ErrBadPath, "%s %q must not contain \"..\"", what, s)
	case filepath.Clean(s) != s:
		v.add(path, ErrBadPath, "%s %q is not clean, write %q", what, s, filepath.Clean(s))
	default:
		return true
	}
	return false
}

// mountpoint is a path fstab can carry without escaping.
func (v *validator) mountpoint(path, s string) bool {
	if !v.path(path, "mountpoint", s, true) {
		return false
	}
	if s == "/" {
		v.add(path, ErrBadPath, "mountpoint cannot be /")
		return false
	}
	if strings.ContainsAny(s, " \t") {
		v.add(path, ErrBadPath, "mountpoint %q contains whitespace, which fstab cannot hold as written", s)
		return false
	}
	return true
}

func (v *validator) noCtl(path, what, s string) bool {
	if hasCtl(s) {
		v.add(path, ErrBadValue, "%s %q contains a control character or line break", what, s)
		return false
	}
	return true
}

func (v *validator) uuid(path, s string) {
	if len(s) == 36 {
		if u, err := uuid.Parse(s); err == nil {
			if u.String() != s {
				v.add(path, ErrBadUUID, "uuid %q: write it in lowercase, as blkid prints it (%q)", s, u.String())
			}
			return
		}
	}
	if vfatRE.MatchString(s) || ntfsRE.MatchString(s) {
		return
	}
	v.add(path, ErrBadUUID, "uuid %q is not a filesystem UUID as blkid prints it (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, or XXXX-XXXX for vfat, 16 hex digits for NTFS)", s)
}

func (v *validator) duration(path, what, s string) {
	if s == "" {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		v.add(path, ErrBadDuration, "%s %q is not a duration such as 30h or 90m", what, s)
		return
	}
	if d <= 0 {
		v.add(path, ErrBadDuration, "%s %q must be positive", what, s)
	}
}

func (v *validator) port(path string, n int) {
	if n < 0 || n > 65535 || n == 0 && v.present(path) {
		v.add(path, ErrBadValue, "port %d is out of range 1..65535", n)
	}
}

func (v *validator) address(path, what, s string) {
	switch {
	case s == "":
		v.add(path, ErrRequired, "%s is required", what)
	case len(s) > 253 || !addressRE.MatchString(s):
		v.add(path, ErrBadValue, "%s %q is not a host name or IP address", what, s)
	}
}

func (v *validator) zfsName(path, what, s string, required bool) {
	if s == "" {
		if required {
			v.add(path, ErrRequired, "%s is required", what)
		}
		return
	}
	ok := len(s) <= 255 && zfsNameRE.MatchString(s)
	for _, part := range strings.Split(s, "/") {
		if part == "." || part == ".." {
			ok = false
		}
	}
	if !ok {
		v.add(path, ErrBadName, "%s %q is not a ZFS dataset name (pool/path)", what, s)
	}
}

func (v *validator) options(path string, opts []string) {
	for i, o := range opts {
		if !optionRE.MatchString(o) {
			v.add(fmt.Sprintf("%s[%d]", path, i), ErrBadValue, "mount option %q: one option per entry, without spaces, commas or quotes", o)
		}
	}
}

func (v *validator) config() {
	c := v.c
	if c.Version != Version {
		v.add("$.version", ErrVersion, "version %d is not supported: this borgkit reads version %d", c.Version, Version)
	}
	v.noCtl("$.site", "site", c.Site)
	v.alertsBlock("$.alerts", &c.Alerts)
	v.retentionBlock("$.retention", c.Retention)
	v.compaction("$.compaction", c.Compaction)
	if len(c.Hosts) == 0 {
		v.add("$.hosts", ErrRequired, "hosts is required: describe at least the server")
	}
	names := map[string]string{}
	for i := range c.Hosts {
		h := &c.Hosts[i]
		p := fmt.Sprintf("$.hosts[%d]", i)
		if v.name(p+".name", "host", h.Name) {
			v.unique(names, p+".name", "host name", h.Name)
		}
		v.host(p, h)
	}
}

func (v *validator) knownHosts() string {
	var names []string
	for _, h := range v.c.Hosts {
		names = append(names, fmt.Sprintf("%q", h.Name))
	}
	return strings.Join(names, ", ")
}

// refHost resolves a reference to another host of the config.
func (v *validator) refHost(path, what, name string) *Host {
	if name == "" {
		v.add(path, ErrRequired, "%s is required", what)
		return nil
	}
	h, ok := v.c.Host(name)
	if !ok {
		v.add(path, ErrUnknownHost, "%s %q is not one of the hosts (%s)", what, name, v.knownHosts())
		return nil
	}
	return h
}

func validRole(r Role) bool { return r == RoleServer || r == RoleOffsite || r == RoleArchive }

func (v *validator) host(p string, h *Host) {
	v.address(p+".address", "address", h.Address)
	switch {
	case h.Role == "":
		v.add(p+".role", ErrRequired, "role is required: server, offsite or archive")
	case !validRole(h.Role):
		v.add(p+".role", ErrBadValue, "role %q: must be server, offsite or archive", h.Role)
	}
	v.ssh(p+".ssh", h.SSH)
	switch h.Scheduler {
	case "", SchedulerCron, SchedulerSystemd:
	default:
		v.add(p+".scheduler", ErrBadValue, "scheduler %q: must be cron or systemd", h.Scheduler)
	}

	mounts := map[string]string{}
	v.disks(p, h, mounts)
	v.shares(p, h, mounts)
	v.datasets(p, h)
	v.repos(p, h)
	v.mirrors(p, h)
	v.schedules(p, h)

	if h.Alerts != nil {
		v.alertsBlock(p+".alerts", h.Alerts)
	}
	v.effectiveAlerts(p, h)
	if h.Retention != nil {
		v.retentionBlock(p+".retention", *h.Retention)
	}
	v.compaction(p+".compaction", h.Compaction)
	v.thresholds(p+".thresholds", h.Thresholds)
	v.unlock(p, h)
	v.pull(p, h)
	v.roleFit(p, h)
}

func (v *validator) ssh(p string, s SSH) {
	if s.User != "" && (len(s.User) > 32 || !userRE.MatchString(s.User)) {
		v.add(p+".user", ErrBadValue, "user %q is not a login name", s.User)
	}
	v.port(p+".port", s.Port)
	if s.HostKey != "" && !hostKeyRE.MatchString(s.HostKey) {
		v.add(p+".host_key", ErrBadValue, "host_key %q: want the fingerprint ssh-keygen -lf prints, SHA256: and 43 base64 characters", s.HostKey)
	}
	if s.HostPublicKey != "" {
		if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s.HostPublicKey)); err != nil || strings.ContainsAny(s.HostPublicKey, "\n\r") || len(rest) > 0 {
			v.add(p+".host_public_key", ErrBadValue, "host_public_key: want one public key line as in /etc/ssh/ssh_host_ed25519_key.pub")
		}
	}
}

func (v *validator) disks(p string, h *Host, mounts map[string]string) {
	names, mappers, uuids := map[string]string{}, map[string]string{}, map[string]string{}
	backup := ""
	for j := range h.Disks {
		d := &h.Disks[j]
		dp := fmt.Sprintf("%s.disks[%d]", p, j)
		if v.name(dp+".name", "disk", d.Name) {
			v.unique(names, dp+".name", "disk name", d.Name)
		}
		switch {
		case d.UUID != "":
			v.uuid(dp+".uuid", d.UUID)
			v.unique(uuids, dp+".uuid", "uuid", d.UUID)
		case d.LUKS == nil:
			v.add(dp+".uuid", ErrRequired, "uuid is required: fstab mounts the disk by UUID= (see blkid)")
		}
		switch {
		case d.Device != "":
			if v.path(dp+".device", "device", d.Device, true) && !strings.HasPrefix(d.Device, "/dev/") {
				v.add(dp+".device", ErrBadPath, "device %q must be under /dev/ (best /dev/disk/by-id/...)", d.Device)
			}
		case d.LUKS != nil:
			v.add(dp+".device", ErrRequired, "device is required for a LUKS disk: the stable /dev/disk/by-id/ path of the encrypted partition")
		}
		if v.mountpoint(dp+".mountpoint", d.Mountpoint) {
			v.unique(mounts, dp+".mountpoint", "mountpoint", d.Mountpoint)
		}
		if d.FSType != "" && !fstypeRE.MatchString(d.FSType) {
			v.add(dp+".fstype", ErrBadValue, "fstype %q is not a filesystem type", d.FSType)
		}
		v.options(dp+".options", d.Options)
		if d.Backup {
			if backup != "" {
				v.add(dp+".backup", ErrBadValue, "only one disk per host can be the backup disk (already %s)", displayPath(backup))
			} else {
				backup = dp
			}
		}
		if l := d.LUKS; l != nil {
			lp := dp + ".luks"
			if l.Mapper == "" || v.name(lp+".mapper", "LUKS mapper", l.Mapper) {
				v.unique(mappers, lp+".mapper", "LUKS mapper name", l.MapperName(d))
			}
			if kh := v.refHost(lp+".key_host", "key_host", l.KeyHost); kh == h {
				v.add(lp+".key_host", ErrBadValue, "key_host is this host itself: the key must not rest next to the disk it opens")
			}
			v.path(lp+".keyfile", "keyfile", l.Keyfile, false)
		}
	}
}

func (v *validator) shares(p string, h *Host, mounts map[string]string) {
	names := map[string]string{}
	for j := range h.Shares {
		s := &h.Shares[j]
		sp := fmt.Sprintf("%s.shares[%d]", p, j)
		if v.name(sp+".name", "share", s.Name) {
			v.unique(names, sp+".name", "share name", s.Name)
		}
		switch {
		case s.Source == "":
			v.add(sp+".source", ErrRequired, "source is required: //server/share")
		case !shareRE.MatchString(s.Source):
			v.add(sp+".source", ErrBadValue, "source %q: want //server/share, without whitespace", s.Source)
		}
		if v.mountpoint(sp+".mountpoint", s.Mountpoint) {
			v.unique(mounts, sp+".mountpoint", "mountpoint", s.Mountpoint)
		}
		v.path(sp+".credentials", "credentials", s.Credentials, true)
		v.options(sp+".options", s.Options)
	}
}

func (v *validator) datasets(p string, h *Host) {
	names := map[string]string{}
	for j := range h.Datasets {
		d := &h.Datasets[j]
		dp := fmt.Sprintf("%s.datasets[%d]", p, j)
		v.zfsName(dp+".name", "dataset name", d.Name, true)
		v.unique(names, dp+".name", "dataset", d.Name)
		keys := make([]string, 0, len(d.Properties))
		for k := range d.Properties {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			pp := dp + ".properties." + k
			if !zfsPropRE.MatchString(k) {
				v.add(pp, ErrBadValue, "%q is not a ZFS property name", k)
			}
			val := d.Properties[k]
			if val == "" || hasCtl(val) {
				v.add(pp, ErrBadValue, "property %q: value %q must be non-empty, without control characters", k, val)
			}
		}
		if d.Mode != "" && !modeRE.MatchString(d.Mode) {
			v.add(dp+".mode", ErrBadValue, "mode %q: want an octal mode such as 0700", d.Mode)
		}
	}
}

func under(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// excludePath is the subtree an exclude pattern covers, when it is a plain
// path (borg's default fm: style, or pp:/pf:); false for globs and regexes,
// whose reach is not worth guessing.
func excludePath(e string) (string, bool) {
	if len(e) > 3 && e[2] == ':' {
		switch e[:3] {
		case "fm:", "pp:", "pf:":
			e = e[3:]
		default:
			return "", false
		}
	}
	if !strings.HasPrefix(e, "/") || strings.ContainsAny(e, "*?[") {
		return "", false
	}
	return filepath.Clean(e), true
}

func validCompression(s string) bool {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return false
	}
	parts := strings.Split(s, ",")
	switch parts[0] {
	case "auto":
		return len(parts) > 1 && validCompression(strings.Join(parts[1:], ","))
	case "obfuscate":
		if len(parts) < 3 {
			return false
		}
		var n int
		if _, err := fmt.Sscanf(parts[1], "%d", &n); err != nil || n < 1 || n > 250 {
			return false
		}
		return validCompression(strings.Join(parts[2:], ","))
	case "none", "lz4":
		return len(parts) == 1
	case "zstd", "zlib", "lzma":
		if len(parts) == 1 {
			return true
		}
		if len(parts) != 2 || len(parts[1]) > 2 {
			return false
		}
		var n int
		if _, err := fmt.Sscanf(parts[1], "%d", &n); err != nil || fmt.Sprint(n) != parts[1] {
			return false
		}
		r := compLevels[parts[0]]
		return n >= r[0] && n <= r[1]
	}
	return false
}

func (v *validator) repos(p string, h *Host) {
	names, paths := map[string]string{}, map[string]string{}
	for j := range h.Repos {
		r := &h.Repos[j]
		rp := fmt.Sprintf("%s.repos[%d]", p, j)
		if v.name(rp+".name", "repo", r.Name) {
			v.unique(names, rp+".name", "repo name", r.Name)
		}
		if v.path(rp+".path", "path", r.Path, true) {
			if r.Path == "/" {
				v.add(rp+".path", ErrBadPath, "repo path cannot be /")
			}
			v.unique(paths, rp+".path", "repo path", r.Path)
			for k := range j {
				o := h.Repos[k].Path
				if o != "" && o != r.Path && (under(r.Path, o) || under(o, r.Path)) {
					v.add(rp+".path", ErrBadPath, "repo path %q nests with %q of repo %q: borg repos cannot contain each other", r.Path, o, h.Repos[k].Name)
				}
			}
			v.repoOnDisk(rp, h, r)
		}
		if len(r.Sources) == 0 {
			v.add(rp+".sources", ErrRequired, "sources is required: the paths borg create backs up")
		}
		for k, s := range r.Sources {
			v.path(fmt.Sprintf("%s.sources[%d]", rp, k), "source", s, true)
		}
		for k, e := range r.Excludes {
			ep := fmt.Sprintf("%s.excludes[%d]", rp, k)
			switch {
			case e == "":
				v.add(ep, ErrBadValue, "exclude is empty")
			case strings.ContainsAny(e, "\n\r\x00"):
				v.add(ep, ErrBadValue, "exclude %q contains a line break or NUL", e)
			}
		}
		for k, m := range r.MustBeMountpoints {
			v.path(fmt.Sprintf("%s.must_be_mountpoints[%d]", rp, k), "must_be_mountpoint", m, true)
		}
		switch r.Encryption {
		case "", EncNone, EncRepokeyBlake2, EncKeyfileBlake2:
		default:
			v.add(rp+".encryption", ErrBadValue, "encryption %q: must be none, repokey-blake2 or keyfile-blake2", r.Encryption)
		}
		if r.Compression != "" && !validCompression(r.Compression) {
			v.add(rp+".compression", ErrBadValue, "compression %q is not a borg compression spec (none, lz4, zstd[,1-22], zlib[,0-9], lzma[,0-9], auto,SPEC)", r.Compression)
		}
		if v.path(rp+".passphrase_file", "passphrase_file", r.PassphraseFile, false) && !r.Encrypted() {
			v.add(rp+".passphrase_file", ErrBadValue, "passphrase_file is set but the repo is not encrypted (encryption: %s)", r.EncryptionMode())
		}
		v.duration(rp+".timeout", "timeout", r.Timeout)
		for k, vm := range r.VMs {
			if vm == "" || hasCtl(vm) || strings.Contains(vm, "/") {
				v.add(fmt.Sprintf("%s.vms[%d]", rp, k), ErrBadName, "VM name %q must be non-empty, without '/' or control characters", vm)
			}
		}
		v.zfsName(rp+".snapshot", "snapshot dataset", r.Snapshot, false)
		if v.path(rp+".canary", "canary", r.Canary, false) {
			if !slices.ContainsFunc(r.Sources, func(s string) bool { return under(r.Canary, s) }) {
				v.add(rp+".canary", ErrBadPath, "canary %q is under none of the repo's sources, so no archive would hold it", r.Canary)
			}
		}
		if r.Retention != nil {
			v.retentionBlock(rp+".retention", *r.Retention)
		}
		if v.c.RepoRetention(h, r).IsZero() {
			src := "$.retention"
			if r.Retention != nil {
				src = rp + ".retention"
			} else if h.Retention != nil {
				src = p + ".retention"
			}
			if v.ix != nil && !v.ix.has(src) {
				src = rp
			}
			v.add(src, ErrBadValue, "retention keeps nothing: with daily, weekly, monthly and yearly all 0, borg prune would delete every archive (the first seed keeps daily: 3, weekly: 2, monthly: 6)")
		}
		v.repoInSources(rp, h, r)
	}
}

// repoOnDisk insists a repo lives on one of the host's disks, when it
// declares any: a repo under a bare mountpoint fills the root filesystem
// the night the disk is missing.
func (v *validator) repoOnDisk(rp string, h *Host, r *Repo) {
	if len(h.Disks) == 0 {
		return
	}
	var mps []string
	for _, d := range h.Disks {
		if d.Mountpoint == "" {
			return
		}
		if under(r.Path, d.Mountpoint) {
			return
		}
		mps = append(mps, d.Mountpoint)
	}
	v.add(rp+".path", ErrBadPath, "repo path %q is on none of this host's disks (%s)", r.Path, strings.Join(mps, ", "))
}

// repoInSources refuses a source that would carry a repo of this host into
// the archive, which grows without end; an exclude covering it is enough.
func (v *validator) repoInSources(rp string, h *Host, r *Repo) {
	for k, s := range r.Sources {
		if s == "" || !filepath.IsAbs(s) {
			continue
		}
		for _, o := range h.Repos {
			if o.Path == "" || !under(o.Path, s) {
				continue
			}
			covered, unsure := false, false
			for _, e := range r.Excludes {
				if ep, ok := excludePath(e); !ok {
					unsure = true
				} else if under(o.Path, ep) {
					covered = true
				}
			}
			if !covered && !unsure {
				v.add(fmt.Sprintf("%s.sources[%d]", rp, k), ErrBadPath,
					"source %q contains repo path %q and no exclude covers it: borg would back the repository up into itself (add an exclude such as %q)",
					s, o.Path, filepath.Dir(o.Path))
			}
		}
	}
}

func (v *validator) mirrors(p string, h *Host) {
	names := map[string]string{}
	for j := range h.Mirrors {
		m := &h.Mirrors[j]
		mp := fmt.Sprintf("%s.mirrors[%d]", p, j)
		if v.name(mp+".name", "mirror", m.Name) {
			v.unique(names, mp+".name", "mirror name", m.Name)
		}
		pathOK := v.path(mp+".path", "path", m.Path, true)
		if m.MaxDelete < 0 {
			v.add(mp+".max_delete", ErrBadValue, "max_delete %d must be 0 (no bound) or more", m.MaxDelete)
		}
		if m.Host != "" {
			t := v.refHost(mp+".host", "mirror host", m.Host)
			switch {
			case t == nil:
			case t == h:
				v.add(mp+".host", ErrBadValue, "a mirror to the host itself is no offsite copy")
			case t.Role != RoleOffsite:
				v.add(mp+".host", ErrRoleMismatch, "mirror host %q has role %q: mirrors over SSH go to an offsite host", m.Host, t.Role)
			case pathOK && len(t.Disks) > 0 && !slices.ContainsFunc(t.Disks, func(d Disk) bool { return under(m.Path, d.Mountpoint) }):
				v.add(mp+".path", ErrBadPath, "path %q is on none of host %q's disks", m.Path, t.Name)
			}
			continue
		}
		if !pathOK {
			continue
		}
		v.localMirror(mp, h, m)
	}
}

// localMirror keeps a local mirror (the NAS share) a second copy: on a
// mounted share or disk, and not on the disk the repos are on.
func (v *validator) localMirror(mp string, h *Host, m *Mirror) {
	mount := ""
	for _, d := range h.Disks {
		if under(m.Path, d.Mountpoint) && len(d.Mountpoint) > len(mount) {
			mount = d.Mountpoint
		}
	}
	for _, s := range h.Shares {
		if under(m.Path, s.Mountpoint) && len(s.Mountpoint) > len(mount) {
			mount = s.Mountpoint
		}
	}
	if mount == "" {
		if len(h.Disks)+len(h.Shares) > 0 {
			v.add(mp+".path", ErrBadPath, "path %q is on none of this host's disks or shares: unmounted, the mirror would fill the root filesystem", m.Path)
		}
		return
	}
	for _, r := range h.Repos {
		if r.Path != "" && (under(m.Path, r.Path) || under(r.Path, m.Path)) {
			v.add(mp+".path", ErrBadPath, "path %q overlaps repo %q", m.Path, r.Name)
			return
		}
		if r.Path != "" && under(r.Path, mount) && mount != "/" {
			v.add(mp+".path", ErrBadPath, "path %q is on %s, the same filesystem as repo %q: that is no second copy", m.Path, mount, r.Name)
			return
		}
	}
}

func (v *validator) schedules(p string, h *Host) {
	jobs := RoleJobs(h.Role)
	for _, job := range allJobs {
		val := strings.TrimSpace(*h.Schedules.field(job))
		if val == "" {
			continue
		}
		sp := p + ".schedules." + job
		if validRole(h.Role) && !slices.Contains(jobs, job) {
			v.add(sp, ErrRoleMismatch, "a %s host does not run %s (its jobs: %s)", h.Role, job, strings.Join(jobs, ", "))
			continue
		}
		if val == "off" {
			continue
		}
		sc, err := ParseSchedule(val)
		if err != nil {
			v.add(sp, ErrBadSchedule, "%s", strings.TrimPrefix(err.Error(), ErrBadSchedule.Error()+" "))
			continue
		}
		if h.SchedulerKind() == SchedulerSystemd {
			if _, err := sc.OnCalendar(); err != nil {
				v.add(sp, ErrBadSchedule, "%s", strings.TrimPrefix(err.Error(), ErrBadSchedule.Error()+" "))
			}
		}
	}
}

func (v *validator) alertsBlock(p string, a *Alerts) {
	if a.To != "" {
		if strings.ContainsAny(a.To, "\r\n") {
			v.add(p+".to", ErrBadValue, "to %q contains a line break, which would inject mail headers", a.To)
		} else if _, err := mail.ParseAddressList(a.To); err != nil {
			v.add(p+".to", ErrBadValue, "to %q is not a mail address list: %v", a.To, err)
		}
	}
	if a.From != "" {
		if strings.ContainsAny(a.From, "\r\n") {
			v.add(p+".from", ErrBadValue, "from %q contains a line break, which would inject mail headers", a.From)
		} else if _, err := mail.ParseAddress(a.From); err != nil {
			v.add(p+".from", ErrBadValue, "from %q is not a mail address: %v", a.From, err)
		}
	}
	if hasCtl(a.SubjectPrefix) {
		v.add(p+".subject_prefix", ErrBadValue, "subject_prefix %q contains a control character or line break", a.SubjectPrefix)
	}
	for i, arg := range a.Sendmail {
		ap := fmt.Sprintf("%s.sendmail[%d]", p, i)
		if i == 0 {
			if v.path(ap, "sendmail command", arg, true) && strings.HasSuffix(arg, "/") {
				v.add(ap, ErrBadPath, "sendmail command %q is a directory", arg)
			}
			continue
		}
		if strings.ContainsAny(arg, "\n\r\x00") {
			v.add(ap, ErrBadValue, "sendmail argument %q contains a line break or NUL", arg)
		}
	}
	if s := a.SMTP; s != nil {
		sp := p + ".smtp"
		v.address(sp+".host", "smtp host", s.Host)
		v.port(sp+".port", s.Port)
		if s.User != "" && (hasCtl(s.User) || strings.ContainsAny(s.User, " \t")) {
			v.add(sp+".user", ErrBadValue, "user %q contains whitespace or a control character", s.User)
		}
		v.path(sp+".password_file", "password_file", s.PasswordFile, false)
	}
	if a.PingURL != "" {
		if err := CheckPingURL(a.PingURL); err != nil {
			v.add(p+".ping_url", ErrBadValue, "%v", err)
		}
	}
	v.path(p+".textfile_dir", "textfile_dir", a.TextfileDir, false)
}

// effectiveAlerts insists every host can mail: silence must mean healthy,
// never "had nowhere to send the alert".
func (v *validator) effectiveAlerts(p string, h *Host) {
	a := v.c.HostAlerts(h)
	at := "$.alerts"
	if h.Alerts != nil {
		at = p + ".alerts"
	}
	if a.To == "" {
		v.add(at+".to", ErrRequired, "alerts to is required (host %q has nowhere to send alerts): set alerts.to at the top level or in the host", h.Name)
	}
	if a.From == "" {
		v.add(at+".from", ErrRequired, "alerts from is required (host %q): set alerts.from at the top level or in the host", h.Name)
	}
}

func (v *validator) retentionBlock(p string, r Retention) {
	for _, f := range []struct {
		key string
		n   int
	}{{"daily", r.Daily}, {"weekly", r.Weekly}, {"monthly", r.Monthly}, {"yearly", r.Yearly}} {
		if f.n < 0 {
			v.add(p+"."+f.key, ErrBadValue, "%s %d must be 0 or more", f.key, f.n)
		}
	}
}

func (v *validator) compaction(p string, c *Compaction) {
	if c == nil {
		return
	}
	if len(c.Weekdays) == 0 && v.present(p+".weekdays") {
		v.add(p+".weekdays", ErrBadValue, "weekdays is empty: name at least one day (borg compact never running would let the repos grow without end)")
	}
	seen := map[string]string{}
	for i, d := range c.Weekdays {
		dp := fmt.Sprintf("%s.weekdays[%d]", p, i)
		if !slices.Contains(Weekdays[:], d) {
			v.add(dp, ErrBadValue, "weekday %q: use mon, tue, wed, thu, fri, sat or sun", d)
			continue
		}
		v.unique(seen, dp, "weekday", d)
	}
	if c.Threshold < 0 || c.Threshold > 99 || c.Threshold == 0 && v.present(p+".threshold") {
		v.add(p+".threshold", ErrBadValue, "threshold %d is out of range 1..99 (percent of a segment that must be free before borg compact rewrites it)", c.Threshold)
	}
}

func (v *validator) thresholds(p string, t Thresholds) {
	v.duration(p+".nightly_max_age", "nightly_max_age", t.NightlyMaxAge)
	v.duration(p+".sync_max_age", "sync_max_age", t.SyncMaxAge)
	v.duration(p+".heartbeat_max_age", "heartbeat_max_age", t.HeartbeatMaxAge)
	if t.DiskWarnPercent < 0 || t.DiskWarnPercent > 100 || t.DiskWarnPercent == 0 && v.present(p+".disk_warn_percent") {
		v.add(p+".disk_warn_percent", ErrBadValue, "disk_warn_percent %d is out of range 1..100", t.DiskWarnPercent)
	}
}

func (v *validator) unlock(p string, h *Host) {
	hasLUKS := slices.ContainsFunc(h.Disks, func(d Disk) bool { return d.LUKS != nil })
	u := h.Unlock
	if u == nil {
		if h.Role == RoleOffsite && hasLUKS {
			v.add(p+".unlock", ErrRequired, "offsite host %q has a LUKS disk but no unlock: nothing would open it at boot (set unlock.server)", h.Name)
		}
		return
	}
	up := p + ".unlock"
	if s := v.refHost(up+".server", "unlock server", u.Server); s != nil && s.Role != RoleServer {
		v.add(up+".server", ErrRoleMismatch, "unlock server %q has role %q: the key is served by the server host", u.Server, s.Role)
	}
	v.path(up+".identity", "identity", u.Identity, false)
	v.duration(up+".retry", "retry", u.Retry)
	if d, err := time.ParseDuration(u.Retry); err == nil && d > 0 && (d < 10*time.Second || d%time.Second != 0) {
		// A timer firing more often would fill the journal while the server is away.
		v.add(up+".retry", ErrBadDuration, "retry %q must be whole seconds, at least 10s", u.Retry)
	}
	for j, d := range h.Disks {
		if d.LUKS != nil && d.LUKS.KeyHost != "" && u.Server != "" && d.LUKS.KeyHost != u.Server {
			v.add(fmt.Sprintf("%s.disks[%d].luks.key_host", p, j), ErrBadValue,
				"the key is kept on %q but unlock fetches it from %q", d.LUKS.KeyHost, u.Server)
		}
	}
}

func (v *validator) pull(p string, h *Host) {
	pl := h.Pull
	if pl == nil {
		return
	}
	pp := p + ".pull"
	v.address(pp+".host", "pull host", pl.Host)
	v.zfsName(pp+".source", "source dataset", pl.Source, true)
	v.zfsName(pp+".target", "target dataset", pl.Target, true)
	if pl.User != "" && (len(pl.User) > 32 || !userRE.MatchString(pl.User)) {
		v.add(pp+".user", ErrBadValue, "user %q is not a login name", pl.User)
	}
	// A host of this file named as the live server gets the pull key in
	// root's authorized_keys, behind the pull guard: it must be a server,
	// and the pull must log in as root there.
	s, ok := v.c.Host(pl.Host)
	if !ok {
		return
	}
	switch {
	case s == h:
		v.add(pp+".host", ErrBadValue, "host %s cannot pull from itself", h.Name)
	case s.Role != RoleServer:
		v.add(pp+".host", ErrRoleMismatch, "pull host %q has role %q: the live server borgkit authorizes the pull on must be a server host", pl.Host, s.Role)
	case pl.UserOrDefault() != DefaultSSHUser:
		v.add(pp+".user", ErrBadValue, "user %q: the pull key is authorized in root's authorized_keys on %s, so the pull logs in as root", pl.User, s.Name)
	}
}

// roleFit keeps each role to what its jobs and provisioning know about,
// so nothing in the file is silently ignored.
func (v *validator) roleFit(p string, h *Host) {
	if !validRole(h.Role) {
		return
	}
	if len(h.Repos) > 0 && h.Role == RoleOffsite {
		v.add(p+".repos", ErrRoleMismatch, "an offsite host keeps mirrors, not borg repos: repos belong on a server or archive host")
	}
	if len(h.Mirrors) > 0 && h.Role == RoleOffsite {
		v.add(p+".mirrors", ErrRoleMismatch, "an offsite host has no repos to mirror: mirrors belong on the server")
	}
	if h.Compaction != nil && h.Role == RoleOffsite {
		v.add(p+".compaction", ErrRoleMismatch, "an offsite host keeps mirrors, not borg repos: compaction belongs on a server or archive host")
	}
	if len(h.Datasets) > 0 && h.Role != RoleArchive {
		v.add(p+".datasets", ErrRoleMismatch, "datasets are only managed on an archive host (this one is %s)", h.Role)
	}
	if h.Unlock != nil && h.Role != RoleOffsite {
		v.add(p+".unlock", ErrRoleMismatch, "unlock is only for an offsite host (this one is %s)", h.Role)
	}
	if h.Pull != nil && h.Role != RoleArchive {
		v.add(p+".pull", ErrRoleMismatch, "pull is only for an archive host (this one is %s)", h.Role)
	}
	if x := h.Proxmox; x != nil {
		pp := p + ".proxmox"
		if h.Role == RoleOffsite {
			v.add(pp, ErrRoleMismatch, "proxmox is for a host that runs the stale check (server or archive), not %s", h.Role)
		} else if _, on := h.Schedule(layout.JobStale); !on {
			v.add(pp, ErrBadValue, "proxmox is watched by the stale check, whose schedule is off on this host")
		}
		v.path(pp+".dump_dir", "dump_dir", x.DumpDir, true)
		v.duration(pp+".max_age", "max_age", x.MaxAge)
		seen := map[int]bool{}
		for i, id := range x.Guests {
			gp := fmt.Sprintf("%s.guests[%d]", pp, i)
			switch {
			case id < 100 || id > 999999999:
				v.add(gp, ErrBadValue, "guest %d is not a Proxmox VMID (100 to 999999999)", id)
			case seen[id]:
				v.add(gp, ErrBadValue, "guest %d is listed twice", id)
			}
			seen[id] = true
		}
	}
}
