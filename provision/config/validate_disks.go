package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"
)

// Disks and CIFS shares: what ends up in fstab and crypttab.

var (
	vfatRE   = regexp.MustCompile(`^[0-9A-F]{4}-[0-9A-F]{4}$`)
	ntfsRE   = regexp.MustCompile(`^[0-9A-F]{16}$`)
	fstypeRE = regexp.MustCompile(`^[a-z0-9]+(\.[a-z0-9]+)*$`)
	optionRE = regexp.MustCompile(`^[^\s,#"'\\]+$`)
	shareRE  = regexp.MustCompile(`^//[^/\s]+/[^\s]+$`)
)

// mountpoint is a path fstab can carry without escaping.
func (v *validator) mountpoint(path, s string) bool {
	if !v.path(path, "mountpoint", s, true) {
		return false
	}
	if s == "/" {
		v.add(path, ErrBadPath, "mountpoint cannot be /")
		return false
	}
	if why := fstabField(s); why != "" {
		v.add(path, ErrBadPath, "mountpoint %q %s", s, why)
		return false
	}
	// The offsite host's backup disk ends up in rrsync's command line.
	return v.shellWord(path, "mountpoint", s)
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

func (v *validator) options(path string, opts []string) {
	for i, o := range opts {
		if !optionRE.MatchString(o) {
			v.add(fmt.Sprintf("%s[%d]", path, i), ErrBadValue, "mount option %q: one option per entry, without spaces, commas or quotes", o)
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
		case !shareRE.MatchString(s.Source) || hasCtl(s.Source):
			v.add(sp+".source", ErrBadValue, "source %q: want //server/share, without whitespace", s.Source)
		case fstabField(s.Source) != "":
			v.add(sp+".source", ErrBadValue, "source %q %s", s.Source, fstabField(s.Source))
		}
		if v.mountpoint(sp+".mountpoint", s.Mountpoint) {
			v.unique(mounts, sp+".mountpoint", "mountpoint", s.Mountpoint)
		}
		if v.path(sp+".credentials", "credentials", s.Credentials, true) {
			if why := fstabOptionValue(s.Credentials); why != "" {
				v.add(sp+".credentials", ErrBadPath, "credentials %q %s (fstab carries it as credentials=PATH)", s.Credentials, why)
			}
		}
		v.options(sp+".options", s.Options)
	}
}
