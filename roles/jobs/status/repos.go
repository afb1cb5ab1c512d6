package status

import (
	"slices"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// repos fills the nightly section from the config's repos (its order and
// paths), matched with the last nightly's stats by name.
func (b *builder) repos() {
	r := b.rec(layout.JobNightly)
	var st state.NightlyStats
	b.decodeStats(r, &st)
	maxAge := b.self.Thresholds.NightlyMaxAgeOrDefault()
	for _, cr := range b.self.Repos {
		repo := Repo{Name: cr.Name, Path: cr.Path, Level: LevelUnknown}
		i := slices.IndexFunc(st.Repos, func(rs state.RepoStats) bool { return rs.Name == cr.Name })
		last := time.Time{}
		if i >= 0 {
			rs := st.Repos[i]
			repo.Status, repo.Archives = rs.Status, rs.Archives
			repo.OriginalSize, repo.CompressedSize, repo.DeduplicatedSize = rs.OriginalSize, rs.CompressedSize, rs.DeduplicatedSize
			repo.VMs = nonEmpty(rs.VMs)
			last = rs.LastBackup
			switch {
			case !last.IsZero():
			case rs.Status == "ok":
				last = ended(r)
			default:
				// This run made no archive; the last good nightly did.
				last = lastSuccess(r)
			}
		} else {
			// No stats about this repo (nightly running, or a writer
			// without stats): its archives are as old as the nightly's
			// last success, which covered every repo.
			last = lastSuccess(r)
			repo.VMs = nonEmpty(cr.VMs)
		}
		repo.LastBackup, repo.AgeSeconds = b.at(last), b.age(last)
		switch {
		case repo.Status == "failed":
			repo.Level = LevelFailed
		case last.IsZero():
		case b.now.Sub(last) > maxAge:
			repo.Level = LevelFailed
		case repo.Status == "skipped", repo.Status == "suspicious":
			repo.Level = LevelWarning
		default:
			repo.Level = LevelOK
		}
		b.d.Repos = append(b.d.Repos, repo)
	}
}

func (b *builder) vms() {
	for _, r := range b.d.Repos {
		health := "healthy"
		switch r.Level {
		case LevelFailed:
			health = "stale"
			if r.Status == "failed" {
				health = "failed"
			}
		case LevelUnknown:
			health = "never backed up"
		case LevelWarning:
			health = "skipped"
		}
		for _, vm := range r.VMs {
			b.d.VMs = append(b.d.VMs, VM{Name: vm, Repo: r.Name, LastBackup: r.LastBackup, AgeSeconds: r.AgeSeconds, Health: health, Level: r.Level})
		}
	}
}
