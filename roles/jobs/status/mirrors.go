package status

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

func (b *builder) mirrors() {
	r := b.rec(layout.JobSync)
	var st state.SyncStats
	b.decodeStats(r, &st)
	maxAge := b.self.Thresholds.SyncMaxAgeOrDefault()
	for _, cm := range b.self.Mirrors {
		m := Mirror{Name: cm.Name, Target: cm.Path, Offsite: cm.Host != "", Level: LevelUnknown}
		if cm.Host != "" {
			m.Target = cm.Host + ":" + cm.Path
		}
		if i := slices.IndexFunc(st.Mirrors, func(ms state.MirrorStats) bool { return ms.Name == cm.Name }); i >= 0 {
			ms := st.Mirrors[i]
			if ms.Target != "" {
				m.Target = ms.Target
			}
			m.Status, m.SentBytes = ms.Status, ms.SentBytes
			m.Repos, m.Failed = nonEmpty(ms.Repos), nonEmpty(ms.Failed)
			m.Heartbeat = b.at(ms.Heartbeat)
			m.LastRun, m.AgeSeconds = b.at(ended(r)), b.age(ended(r))
			m.Level = mirrorLevel(ms.Status, len(ms.Failed) > 0, b.now.Sub(ended(r)) > maxAge)
		} else if r != nil {
			// No word about this mirror: a run in progress (Begin drops the
			// last stats), one that died, or a writer without stats. The
			// record's own state is all there is to show.
			switch {
			case dead(r):
				m.Status, m.Level = "terminated", LevelFailed
				m.LastRun, m.AgeSeconds = b.at(r.Started), b.age(r.Started)
			case r.Status == state.Running:
				m.Status, m.Level = "running", LevelRunning
				m.LastRun, m.AgeSeconds = b.at(r.Started), b.age(r.Started)
			default:
				m.Status = string(r.Status)
				if r.Status.Succeeded() {
					m.Status = "ok"
				}
				m.LastRun, m.AgeSeconds = b.at(ended(r)), b.age(ended(r))
				m.Level = mirrorLevel(m.Status, false, b.now.Sub(ended(r)) > maxAge)
			}
		}
		m.Audit = b.copyAudit(cm.Name)
		if cm.Host != "" {
			m.SnapshotsAudit = b.copyAudit(layout.SnapshotsCopy(cm.Name))
		}
		for _, a := range []*CopyAudit{m.Audit, m.SnapshotsAudit} {
			if a != nil && a.Level == LevelFailed {
				m.Level = LevelFailed
			}
		}
		b.d.Mirrors = append(b.d.Mirrors, m)
	}
}

// copyAudit is what the last audit found of copy name, with an issue for
// a mismatch or a segment left uncompared past the cover period.
func (b *builder) copyAudit(name string) *CopyAudit {
	r := b.rec(layout.JobAudit)
	var st state.AuditStats
	b.decodeStats(r, &st)
	i := slices.IndexFunc(st.Copies, func(c state.CopyAudit) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	c := st.Copies[i]
	a := &CopyAudit{At: b.at(ended(r)), AgeSeconds: b.age(ended(r)), Status: c.Status, CoverDays: st.CoverDays, Covered: c.Covered,
		OldestSeconds: int64(c.Oldest / time.Second), Files: c.Files, Bytes: c.Bytes, HashedBytes: c.HashedBytes,
		LastMismatch: b.at(c.LastMismatch), MismatchAgeSeconds: b.age(c.LastMismatch), LastMismatchFiles: nonEmpty(c.LastMismatchFiles), Level: LevelOK}
	cover := time.Duration(st.CoverDays) * 24 * time.Hour
	// A mismatch or a failure is the audit record's own issue (jobs.go).
	switch {
	case c.Status == "mismatch", c.Status == "failed":
		a.Level = LevelFailed
	case cover > 0 && c.Oldest > cover:
		a.Level = LevelWarning
		b.issue(LevelWarning, layout.JobAudit, "Copy %s has segments not compared for %s (cover period %s)", name, ago(int64(c.Oldest/time.Second)), alert.Limit(cover))
	}
	return a
}

func mirrorLevel(status string, someFailed, stale bool) Level {
	switch {
	case status == "revoked":
		return LevelWarning
	case status != "ok" || someFailed:
		return LevelFailed
	case stale:
		return LevelFailed
	}
	return LevelOK
}

// offsiteHeartbeat is the newest heartbeat the sync wrote to an offsite
// mirror: what the Pi's watchdog sees, judged by the Pi's own threshold.
func (b *builder) offsiteHeartbeat() (Check, bool) {
	var maxAge time.Duration
	for _, m := range b.self.Mirrors {
		if m.Host == "" {
			continue
		}
		d := config.DefaultMaxAge
		if h, ok := b.cfg.Host(m.Host); ok {
			d = h.Thresholds.HeartbeatMaxAgeOrDefault()
		}
		maxAge = max(maxAge, d)
	}
	if maxAge == 0 {
		return Check{}, false
	}
	c := Check{Name: "Offsite heartbeat", Job: layout.JobSync, Status: "Never", Level: LevelUnknown}
	var last time.Time
	for _, m := range b.d.Mirrors {
		if m.Offsite && m.Heartbeat.After(last) {
			last = m.Heartbeat
		}
	}
	if last.IsZero() {
		// No stats name a heartbeat (a sync at work, or one that died,
		// has none): a sync succeeds only once its offsite copies are
		// done and the heartbeat written, so its last success dates it.
		last = lastSuccess(b.rec(layout.JobSync))
	}
	if last.IsZero() {
		return c, true
	}
	c.At, c.AgeSeconds = b.at(last), b.age(last)
	c.Note = ago(c.AgeSeconds) + " ago"
	if b.now.Sub(last) > maxAge {
		c.Status, c.Level = "STALE", LevelFailed
	} else {
		c.Status, c.Level = "Fresh", LevelOK
	}
	return c, true
}

// heartbeats is the offsite host's view: each server's last good sync.
func (b *builder) heartbeats() {
	r := b.rec(layout.JobWatchdog)
	var st state.WatchdogStats
	b.decodeStats(r, &st)
	maxAge := b.self.Thresholds.HeartbeatMaxAgeOrDefault()
	for _, hb := range st.Heartbeats {
		h := Heartbeat{Host: hb.Host, File: hb.File, At: b.at(hb.At), AgeSeconds: b.age(hb.At),
			MaxAgeSeconds: int64(maxAge / time.Second), Level: LevelOK}
		switch {
		case hb.At.IsZero():
			h.Level = LevelFailed
			b.issue(LevelFailed, layout.JobWatchdog, "No heartbeat from %s (%s)", hb.Host, hb.File)
		case hb.At.Sub(b.now) > alert.ClockSkew:
			h.Level = LevelFailed
			b.issue(LevelFailed, layout.JobWatchdog, "Heartbeat from %s is dated %s in the future: a clock is wrong", hb.Host, alert.Age(hb.At.Sub(b.now)))
		case b.now.Sub(hb.At) > maxAge:
			h.Level = LevelFailed
			b.issue(LevelFailed, layout.JobWatchdog, "Heartbeat from %s is stale: last %s ago (threshold: %s)",
				hb.Host, ago(h.AgeSeconds), alert.Limit(maxAge))
		}
		b.d.Heartbeats = append(b.d.Heartbeats, h)
	}
}

func (b *builder) offsiteMonitoring() {
	b.d.Monitoring = append(b.d.Monitoring, b.jobCheck("Last watchdog", layout.JobWatchdog, "OK", "FAILED"))
	if _, ok := b.self.Schedule(layout.JobWatchdog); ok && b.rec(layout.JobWatchdog) == nil {
		b.issue(LevelWarning, layout.JobWatchdog, "Watchdog has never run")
	}
	var st state.WatchdogStats
	b.decodeStats(b.rec(layout.JobWatchdog), &st)
	if strings.HasPrefix(st.Report, "not sent") {
		b.issue(LevelWarning, layout.JobWatchdog, "Watchdog report %s", st.Report)
	}
	b.snapshots(st.Snapshots)
}

// snapshots is the offsite host's view of its snapshots: the last one the
// snapshot job took, and whether a push waits too long for one (the
// watchdog's judgement, which it also mails).
func (b *builder) snapshots(sw *state.SnapshotWatch) {
	r := b.rec(layout.JobSnapshot)
	c := b.jobCheck("Last snapshot", layout.JobSnapshot, "OK", "FAILED")
	var st state.SnapshotStats
	if b.decodeStats(r, &st) && r.Status == state.OK {
		c.Note += fmt.Sprintf(", %d kept, %s beyond the mirror", st.Usage.Snapshots, alert.Size(uint64(max(st.Usage.Total(), 0))))
	}
	if r != nil && r.Status == state.Aborted {
		c.Status, c.Level = "DEFERRED", LevelWarning
	}
	if st.Retention.Note != "" {
		b.issue(LevelWarning, layout.JobSnapshot, "%s", st.Retention.Note)
	}
	if sw != nil && sw.Overdue {
		c.Level = LevelFailed
		b.issue(LevelFailed, layout.JobSnapshot, "A push arrived and no snapshot holds it past snapshot_max_lag (%s): %s",
			alert.Limit(b.self.Thresholds.SnapshotMaxLagOrDefault()), firstLine(lastMessage(r)))
	}
	b.d.Monitoring = append(b.d.Monitoring, c)
}

func lastMessage(r *state.Record) string {
	if r == nil {
		return "the snapshot job never ran"
	}
	return "last snapshot run " + string(r.Status) + ": " + r.Message
}
