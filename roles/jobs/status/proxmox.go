package status

import (
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// proxmox shows what the stale check recorded of the Proxmox dumps.
func (b *builder) proxmox() {
	cp := b.self.Proxmox
	if cp == nil {
		return
	}
	maxAge := cp.MaxAgeOrDefault()
	p := &Proxmox{Dir: cp.DumpDir, MaxAgeSeconds: int64(maxAge.Seconds()), Level: LevelUnknown, Guests: []ProxmoxGuest{}}
	b.d.Proxmox = p
	r := b.rec(layout.JobStale)
	var st state.StaleStats
	if r != nil && len(r.Stats) > 0 {
		b.decodeStats(r, &st)
	}
	ps := st.Proxmox
	if ps == nil || ps.Dir != cp.DumpDir {
		// Begin drops the last run's stats: a stale check at work now
		// lists them in a moment. Otherwise nothing watches them yet.
		if r != nil && r.Status == state.Running && !dead(r) {
			p.Level = LevelRunning
			return
		}
		b.issue(LevelWarning, layout.JobStale, "Proxmox dumps in %s not listed yet: the stale check lists them", cp.DumpDir)
		return
	}
	p.CheckedAt = b.at(ended(r))
	if ps.Error != "" {
		p.Error, p.Level = ps.Error, LevelFailed
		b.issue(LevelFailed, layout.JobStale, "Proxmox dumps in %s could not be listed: %s", cp.DumpDir, ps.Error)
		return
	}
	p.Level = LevelOK
	for _, d := range ps.Dumps {
		g := ProxmoxGuest{VMID: d.VMID, Kind: d.Kind, File: d.File, Bytes: d.Bytes, Level: LevelOK}
		switch {
		case d.At.IsZero():
			g.Level = LevelFailed
			b.issue(LevelFailed, layout.JobStale, "Proxmox guest %d has no dump in %s", d.VMID, cp.DumpDir)
		default:
			g.At, g.AgeSeconds = b.at(d.At), b.age(d.At)
			if b.now.Sub(d.At) > maxAge {
				g.Level = LevelFailed
				b.issue(LevelFailed, layout.JobStale, "Proxmox guest %d dump is stale: %s old (threshold: %s)", d.VMID, ago(g.AgeSeconds), alert.Limit(maxAge))
			}
		}
		if g.Level == LevelFailed {
			p.Level = LevelFailed
		}
		p.Guests = append(p.Guests, g)
	}
}
