package config

import (
	"fmt"

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
			case pathOK && len(t.Disks) > 0 && v.pathsOf(t).disks.ancestor(m.Path, true) < 0:
				v.add(mp+".path", ErrBadPath, "path %q is on none of host %q's disks", m.Path, t.Name)
			}
			if pathOK {
				// rrsync on the offsite host splits its arguments on spaces.
				v.shellWord(mp+".path", "path", m.Path)
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
	hp := v.pathsOf(h)
	mi := hp.mounts.ancestor(m.Path, true)
	if mi < 0 {
		if len(h.Disks)+len(h.Shares) > 0 {
			v.add(mp+".path", ErrBadPath, "path %q is on none of this host's disks or shares: unmounted, the mirror would fill the root filesystem", m.Path)
		}
		return
	}
	mount := ""
	if mi < len(h.Disks) {
		mount = h.Disks[mi].Mountpoint
	} else {
		mount = h.Shares[mi-len(h.Disks)].Mountpoint
	}
	// The first repo in file order that overlaps the mirror (above it or
	// under it) or, unless the mount is /, shares its filesystem.
	first := -1
	cands := []int{hp.repos.ancestor(m.Path, true), hp.repos.firstUnder(m.Path)}
	if mount != "/" {
		cands = append(cands, hp.repos.firstUnder(mount))
	}
	for _, i := range cands {
		if i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first < 0 {
		return
	}
	r := &h.Repos[first]
	if layout.Under(m.Path, r.Path) || layout.Under(r.Path, m.Path) {
		v.add(mp+".path", ErrBadPath, "path %q overlaps repo %q", m.Path, r.Name)
		return
	}
	v.add(mp+".path", ErrBadPath, "path %q is on %s, the same filesystem as repo %q: that is no second copy", m.Path, mount, r.Name)
}
