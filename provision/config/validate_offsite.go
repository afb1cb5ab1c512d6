package config

import (
	"fmt"
	"slices"
	"time"
)

// The offsite host's unlock: how its LUKS disk is opened at boot.

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

// maxSnapshotKeep bounds each snapshot count: a typo of 7000 days would
// quietly keep every compacted segment for twenty years.
const maxSnapshotKeep = 1000

// snapshots checks the offsite host's snapshot retention.
func (v *validator) snapshots(p string, h *Host) {
	s := h.Snapshots
	if s == nil {
		return
	}
	sp := p + ".snapshots"
	if s.Daily < 1 || s.Daily > maxSnapshotKeep {
		v.add(sp+".daily", ErrBadValue, "daily %d is out of range 1..%d (the snapshots of the last DAILY days are kept)", s.Daily, maxSnapshotKeep)
	}
	if s.Weekly < 0 || s.Weekly > maxSnapshotKeep {
		v.add(sp+".weekly", ErrBadValue, "weekly %d is out of range 0..%d", s.Weekly, maxSnapshotKeep)
	}
}
