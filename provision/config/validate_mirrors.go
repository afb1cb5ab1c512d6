package config

import (
	"fmt"
	"slices"

	"github.com/borgkit/borgkit/provision/layout"
)

// Mirrors: where a repo's second and third copies go.

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
			case pathOK && len(t.Disks) > 0 && !slices.ContainsFunc(t.Disks, func(d Disk) bool { return layout.Under(m.Path, d.Mountpoint) }):
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
		if layout.Under(m.Path, d.Mountpoint) && len(d.Mountpoint) > len(mount) {
			mount = d.Mountpoint
		}
	}
	for _, s := range h.Shares {
		if layout.Under(m.Path, s.Mountpoint) && len(s.Mountpoint) > len(mount) {
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
		if r.Path != "" && (layout.Under(m.Path, r.Path) || layout.Under(r.Path, m.Path)) {
			v.add(mp+".path", ErrBadPath, "path %q overlaps repo %q", m.Path, r.Name)
			return
		}
		if r.Path != "" && layout.Under(r.Path, mount) && mount != "/" {
			v.add(mp+".path", ErrBadPath, "path %q is on %s, the same filesystem as repo %q: that is no second copy", m.Path, mount, r.Name)
			return
		}
	}
}
