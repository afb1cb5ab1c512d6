package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/borgkit/borgkit/provision/layout"
)

// What a host adopted from a hand-built setup carries: the offsite mirror
// kept where it is, the files retired, the secrets imported once.

// archivePrefixRE keeps a prefix literal in borg's --glob-archives
// (no * ? [ ]) and in an archive name (no / or ::), and out of borg's
// {placeholder} syntax.
var archivePrefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+@-]*$`)

// ownPaths are borgkit's own files and directories: retiring one of them
// would move aside what provisioning writes next.
var ownPaths = []string{layout.EtcDir, layout.VarDir, layout.LogDir, layout.Binary, layout.CronFile,
	layout.LogrotateFile, layout.Fstab, layout.SSHConfig, layout.KnownHosts, layout.AuthorizedKeys, layout.SSHKey}

func (v *validator) adopted(p string, h *Host) {
	if h.MirrorRoot != "" {
		mp := p + ".mirror_root"
		// It ends up in rrsync's command= in authorized_keys.
		if v.path(mp, "mirror_root", h.MirrorRoot, false) && v.shellWord(mp, "mirror_root", h.MirrorRoot) {
			switch d := h.BackupDisk(); {
			case h.Role != RoleOffsite:
				v.add(mp, ErrRoleMismatch, "mirror_root is where servers push on an offsite host (this one is %s)", h.Role)
			case d == nil:
				v.add(mp, ErrBadPath, "mirror_root %q: the host has no backup disk to hold it", h.MirrorRoot)
			case !layout.Under(h.MirrorRoot, d.Mountpoint):
				v.add(mp, ErrBadPath, "mirror_root %q is not on the backup disk mounted at %s: a push while it is unmounted would fill the root filesystem", h.MirrorRoot, d.Mountpoint)
			case layout.Under(h.MirrorRoot, layout.SnapshotRoot(d.Mountpoint)):
				v.add(mp, ErrBadPath, "mirror_root %q is inside %s, where the host keeps its snapshots out of the push key's reach", h.MirrorRoot, layout.SnapshotRoot(d.Mountpoint))
			}
		}
	}
	seen := map[string]string{}
	for i, f := range h.Retire {
		rp := fmt.Sprintf("%s.retire[%d]", p, i)
		if !v.path(rp, "retired file", f, true) {
			continue
		}
		v.unique(seen, rp, "retired file", f)
		v.retired(rp, h, f)
	}
	for j := range h.Repos {
		r := &h.Repos[j]
		rp := fmt.Sprintf("%s.repos[%d]", p, j)
		if r.ArchivePrefix != "" && (!archivePrefixRE.MatchString(r.ArchivePrefix) || strings.Contains(r.ArchivePrefix, "::") || len(r.ArchivePrefix) > 64) {
			v.add(rp+".archive_prefix", ErrBadValue, "archive_prefix %q: letters, digits and . _ + @ -, starting with a letter or digit (it is matched literally by borg --glob-archives)", r.ArchivePrefix)
		}
		if v.path(rp+".passphrase_from", "passphrase_from", r.PassphraseFrom, false) {
			switch {
			case !r.Encrypted():
				v.add(rp+".passphrase_from", ErrBadValue, "passphrase_from is set but the repo is not encrypted (encryption: %s)", r.EncryptionMode())
			case r.PassphraseFrom == r.PassphrasePath():
				v.add(rp+".passphrase_from", ErrBadValue, "passphrase_from is passphrase_file itself; leave passphrase_from out")
			}
		}
		if v.path(rp+".key_export", "key_export", r.KeyExport, false) {
			switch {
			case !r.Encrypted():
				v.add(rp+".key_export", ErrBadValue, "key_export is set but the repo is not encrypted (encryption: %s): it has no key", r.EncryptionMode())
			case r.Path != "" && layout.Under(r.KeyExport, r.Path):
				v.add(rp+".key_export", ErrBadPath, "key_export %q is inside the repo it opens: a lost repo would take its key along", r.KeyExport)
			}
		}
	}
}

// retired refuses to retire what borgkit itself writes or reads, and the
// data it protects.
func (v *validator) retired(rp string, h *Host, f string) {
	if why := RetireProblem(h, f); why != "" {
		v.add(rp, ErrBadPath, "%s", why)
	}
}

// RetireProblem says why f cannot be retired on h ("" when it can): a
// file of borgkit's own, a file other lines share (a crontab), a retired
// copy, a repo or a disk's mountpoint. --retire is checked with it too.
func RetireProblem(h *Host, f string) string {
	if !filepath.IsAbs(f) || filepath.Clean(f) != f || hasCtl(f) {
		return fmt.Sprintf("%q: write an absolute, clean path", f)
	}
	for _, own := range ownPaths {
		if layout.Under(f, own) || layout.Under(own, f) {
			return fmt.Sprintf("%s is borgkit's own (%s); it cannot be retired", f, own)
		}
	}
	for _, shared := range []string{"/etc/crontab", "/var/spool/cron", "/etc/passwd", "/etc/ssh"} {
		if layout.Under(f, shared) || layout.Under(shared, f) {
			return fmt.Sprintf("%s holds more than the old setup (%s): edit it by hand instead", f, shared)
		}
	}
	if strings.HasSuffix(f, layout.RetiredSuffix) {
		return fmt.Sprintf("%s is already a retired copy", f)
	}
	for _, r := range h.Repos {
		if r.Path != "" && (layout.Under(f, r.Path) || layout.Under(r.Path, f)) {
			return fmt.Sprintf("%s is (inside) repo %q; only files of the old setup's scripts and schedule are retired", f, r.Name)
		}
	}
	for _, d := range h.Disks {
		if d.Mountpoint != "" && layout.Under(d.Mountpoint, f) {
			return fmt.Sprintf("%s holds the mountpoint of disk %q; only files are retired", f, d.Name)
		}
	}
	for _, sh := range h.Shares {
		if sh.Mountpoint != "" && layout.Under(sh.Mountpoint, f) {
			return fmt.Sprintf("%s holds the mountpoint of share %q; only files are retired", f, sh.Name)
		}
	}
	return ""
}
