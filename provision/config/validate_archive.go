package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The ZFS archive host: datasets and the pull from the live server.

var (
	zfsNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*$`)
	zfsPropRE = regexp.MustCompile(`^[a-z][a-z0-9_.:-]*$`)
	modeRE    = regexp.MustCompile(`^0?[0-7]{3}$`)
)

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
	s, ok := v.hosts[pl.Host]
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
