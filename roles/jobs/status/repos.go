package status

import (
	"slices"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
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
		if cr.Remote() {
			repo.Path, repo.Server = cr.BorgLocation(), cr.Location().Addr()
			if i >= 0 {
				repo.LastArchive = st.Repos[i].Archive
			}
		}
		last := time.Time{}
		if i >= 0 {
			rs := st.Repos[i]
			repo.Status, repo.Archives = rs.Status, rs.Archives
			repo.OriginalSize, repo.CompressedSize, repo.DeduplicatedSize = rs.OriginalSize, rs.CompressedSize, rs.DeduplicatedSize
			repo.VMs = nonEmpty(cr.VMs)
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

// guests gives each VM and container of the config's repos its row, from
// its own archive's figures in the last nightly's stats: one guest's
// trouble is that guest's row and issue, not its repo's.
func (b *builder) guests() {
	r := b.rec(layout.JobNightly)
	var st state.NightlyStats
	b.decodeStats(r, &st)
	maxAge := b.self.Thresholds.NightlyMaxAgeOrDefault()
	for _, cr := range b.self.Repos {
		var stats []state.GuestStats
		if i := slices.IndexFunc(st.Repos, func(rs state.RepoStats) bool { return rs.Name == cr.Name }); i >= 0 {
			stats = st.Repos[i].Guests
		}
		for _, g := range cr.Guests() {
			v := VM{Kind: g.Kind, Name: g.Name, Repo: cr.Name, Health: "never backed up", Level: LevelUnknown}
			var last time.Time
			if i := slices.IndexFunc(stats, func(gs state.GuestStats) bool { return gs.Kind == g.Kind && gs.Name == g.Name }); i >= 0 {
				gs := stats[i]
				v.Archives, v.Problem = gs.Archives, gs.Problem
				last = gs.LastBackup
				if gs.Status == "failed" {
					// Tonight made no archive of it; the last good nightly did.
					last = lastSuccess(r)
				}
				switch {
				case gs.Status == "failed":
					v.Health, v.Level = "failed", LevelFailed
				case b.now.Sub(last) > maxAge:
					v.Health, v.Level = "stale", LevelFailed
				case gs.Status == "warning":
					v.Health, v.Level = "warning", LevelWarning
				default:
					v.Health, v.Level = "healthy", LevelOK
				}
			} else if last = lastSuccess(r); !last.IsZero() && len(st.Repos) == 0 {
				// A record without stats: the nightly's success covered it.
				v.Health, v.Level = "healthy", LevelOK
				if b.now.Sub(last) > maxAge {
					v.Health, v.Level = "stale", LevelFailed
				}
			} else {
				last = time.Time{}
			}
			v.LastBackup, v.AgeSeconds = b.at(last), b.age(last)
			what := "VM"
			if g.Kind == config.GuestContainer {
				what = "Container"
			}
			switch v.Health {
			case "failed":
				b.issue(LevelFailed, layout.JobNightly, "%s %s: backup failed: %s", what, g.Name, v.Problem)
			case "stale":
				b.issue(LevelFailed, layout.JobNightly, "%s %s: last backup %s ago (threshold: %s)", what, g.Name, ago(v.AgeSeconds), alert.Limit(maxAge))
			case "warning":
				b.issue(LevelWarning, layout.JobNightly, "%s %s: %s", what, g.Name, v.Problem)
			}
			if g.Kind == config.GuestVM {
				b.d.VMs = append(b.d.VMs, v)
			} else {
				b.d.Containers = append(b.d.Containers, v)
			}
		}
	}
}
