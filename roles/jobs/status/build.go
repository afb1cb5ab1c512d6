package status

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// DrillMaxAge is how old the last drill may get: a yearly rehearsal with a
// month's slack, since a recovery path nobody has walked is a guess.
const DrillMaxAge = 13 // months

// overdueGrace is how late a scheduled job may start before it counts as
// missed: cron starts jobs on the minute and Begin records at once, so an
// hour only absorbs a slow boot or a clock step.
const overdueGrace = time.Hour

// scheduledJobs are the jobs whose only sign of a dead cron line is a
// record that stops changing; nightly and sync have their own thresholds.
var scheduledJobs = []string{layout.JobStale, layout.JobCheck, layout.JobVerify, layout.JobRestoreTest, layout.JobWatchdog}

// jobTitles name jobs in issue texts.
var jobTitles = map[string]string{
	layout.JobNightly:     "Nightly backup",
	layout.JobSync:        "Mirror sync",
	layout.JobStale:       "Staleness check",
	layout.JobCheck:       "Integrity check",
	layout.JobVerify:      "Deep verify",
	layout.JobRestoreTest: "Restore test",
	layout.JobSummary:     "Weekly summary",
	layout.JobWatchdog:    "Watchdog",
	layout.JobScrub:       "ZFS scrub",
	layout.JobSmartShort:  "SMART short test",
	layout.JobSmartLong:   "SMART long test",
	layout.JobPull:        "Dataset pull",
	layout.JobDrill:       "Recovery drill",
}

func jobTitle(job string) string {
	if t, ok := jobTitles[job]; ok {
		return t
	}
	return job
}

// timeLayout is how the dashboard prints a moment, as the seed's
// SELF-MONITORING lines do ("2026-06-12 00:42").
const timeLayout = "2006-01-02 15:04"

// StorageMounts lists the mountpoints Build shows for h, in order, so the
// caller knows which filesystems to statfs before calling it.
func StorageMounts(h *config.Host) []string {
	var out []string
	for _, s := range storageSpecs(h) {
		out = append(out, s.mount)
	}
	return out
}

type mountSpec struct{ label, kind, mount string }

// storageSpecs: the backup disk first (the one everything hangs on), then
// the other disks and shares in file order, then local mirror targets that
// live on none of those (they still fill some filesystem).
func storageSpecs(h *config.Host) []mountSpec {
	var out []mountSpec
	bd := h.BackupDisk()
	if bd != nil {
		label := "Backup Disk"
		if strings.Contains(strings.ToLower(bd.Name), "usb") {
			label = "USB Backup Disk"
		}
		out = append(out, mountSpec{label, KindBackup, bd.Mountpoint})
	}
	for i := range h.Disks {
		if d := &h.Disks[i]; d != bd {
			out = append(out, mountSpec{d.Name, KindDisk, d.Mountpoint})
		}
	}
	for _, s := range h.Shares {
		out = append(out, mountSpec{strings.ToUpper(s.Name), KindShare, s.Mountpoint})
	}
	for _, m := range h.Mirrors {
		if m.Host != "" || m.Path == "" {
			continue
		}
		covered := false
		for _, s := range out {
			if under(m.Path, s.mount) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, mountSpec{strings.ToUpper(m.Name) + " mirror", KindMirror, m.Path})
		}
	}
	return out
}

// under reports whether p is mount or inside it, comparing whole path
// elements so /mnt/nas2 is not under /mnt/nas.
func under(p, mount string) bool {
	p, mount = path.Clean(p), path.Clean(mount)
	return p == mount || mount == "/" || strings.HasPrefix(p, mount+"/")
}

// builder carries Build's inputs through its steps.
type builder struct {
	cfg   *config.Config
	self  *config.Host
	recs  map[string]*state.Record
	disks []state.DiskUsage
	now   time.Time
	d     *Dashboard
	// reported marks jobs that already have a failure issue, so the
	// overdue check does not pile a second one on the same record.
	reported map[string]bool
	// badStats marks records whose stats were found unreadable, reported
	// once though several sections read them.
	badStats map[string]bool
}

// Build computes the dashboard of host self from its job records recs (as
// state.Store.LoadAll returns them), the live statfs results disks (may be
// nil: the figures the jobs recorded are used instead), at time now. It
// reads nothing but /proc, to tell a running job from one that died.
func Build(cfg *config.Config, self *config.Host, recs map[string]*state.Record, disks []state.DiskUsage, now time.Time) *Dashboard {
	if cfg == nil {
		cfg = &config.Config{}
	}
	if self == nil {
		self = &config.Host{}
	}
	if recs == nil {
		recs = map[string]*state.Record{}
	}
	// Round(0) drops the monotonic reading: it does not survive JSON, and
	// the model must.
	now = now.Round(0)
	b := &builder{cfg: cfg, self: self, recs: recs, disks: disks, now: now, reported: map[string]bool{}, badStats: map[string]bool{},
		d: &Dashboard{Host: self.Name, Role: self.Role, Generated: now, Issues: []Issue{}}}

	b.storage()
	b.jobFailures()
	if self.Role == config.RoleOffsite {
		b.heartbeats()
		b.offsiteMonitoring()
	} else {
		b.repos()
		b.vms()
		b.proxmox()
		b.mirrors()
		b.monitoring()
		b.staleness()
		b.drill()
	}
	b.overdue()

	// Failures first, so the subject of the weekly mail names the worst.
	sort.SliceStable(b.d.Issues, func(i, j int) bool {
		return rank(b.d.Issues[i].Level) < rank(b.d.Issues[j].Level)
	})
	switch n := len(b.d.Issues); n {
	case 0:
		b.d.Summary = Healthy
	case 1:
		b.d.Summary = "1 issue detected."
	default:
		b.d.Summary = fmt.Sprintf("%d issues detected.", n)
	}
	return b.d
}

func rank(l Level) int {
	switch l {
	case LevelFailed:
		return 0
	case LevelWarning:
		return 1
	}
	return 2
}

func (b *builder) issue(l Level, job, format string, args ...any) {
	b.d.Issues = append(b.d.Issues, Issue{Level: l, Job: job, Text: oneLine(fmt.Sprintf(format, args...))})
}

// at puts t in the dashboard's zone, so every time shown reads as the
// "Generated:" line does.
func (b *builder) at(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.In(b.now.Location())
}

// age is whole seconds since t; a time in the future (clock skew between
// hosts) counts as now.
func (b *builder) age(t time.Time) int64 {
	if t.IsZero() || t.After(b.now) {
		return 0
	}
	return int64(b.now.Sub(t) / time.Second)
}

func (b *builder) rec(job string) *state.Record { return b.recs[job] }

// dead reports a record left running by a process that is gone: the run
// was killed before it could finish its record.
func dead(r *state.Record) bool { return r.Status == state.Running && !state.ProcessAlive(r) }

// lastSuccess is when job last did its work: carried in the record, or the
// record's own end for writers that predate LastSuccess.
func lastSuccess(r *state.Record) time.Time {
	if r == nil {
		return time.Time{}
	}
	if !r.LastSuccess.IsZero() {
		return r.LastSuccess
	}
	if r.Status.Succeeded() {
		return r.Finished
	}
	return time.Time{}
}

// ended is when r's run ended, or began when it has no end.
func ended(r *state.Record) time.Time {
	if !r.Finished.IsZero() {
		return r.Finished
	}
	return r.Started
}

// decodeStats unmarshals a record's stats; a record without stats leaves v
// alone. Unreadable stats become an issue rather than an error: the rest of
// the dashboard is still worth showing.
func (b *builder) decodeStats(r *state.Record, v any) bool {
	if r == nil || len(r.Stats) == 0 {
		return false
	}
	if err := json.Unmarshal(r.Stats, v); err != nil {
		if b.badStats[r.Job] {
			return false
		}
		b.badStats[r.Job] = true
		b.issue(LevelWarning, r.Job, "%s: unreadable stats in its record: %v", jobTitle(r.Job), err)
		return false
	}
	return true
}

func (b *builder) storage() {
	warn := b.self.DiskWarnPercent()
	// What the jobs recorded, for mounts the caller did not measure.
	var recorded []state.DiskUsage
	var recordedAt []time.Time
	if r := b.rec(layout.JobNightly); r != nil && b.self.Role != config.RoleOffsite {
		var st state.NightlyStats
		if b.decodeStats(r, &st) && st.Disk.Mount != "" {
			recorded, recordedAt = append(recorded, st.Disk), append(recordedAt, ended(r))
		}
	}
	if r := b.rec(layout.JobWatchdog); r != nil && b.self.Role == config.RoleOffsite {
		var st state.WatchdogStats
		if b.decodeStats(r, &st) && st.Disk.Mount != "" {
			recorded, recordedAt = append(recorded, st.Disk), append(recordedAt, ended(r))
		}
	}

	for _, spec := range storageSpecs(b.self) {
		s := Storage{Label: spec.label, Kind: spec.kind, Source: SourceNone, WarnPercent: warn, Level: LevelUnknown}
		s.Mount = spec.mount
		if i := slices.IndexFunc(b.disks, func(u state.DiskUsage) bool { return path.Clean(u.Mount) == path.Clean(spec.mount) }); i >= 0 {
			s.DiskUsage, s.Source = b.disks[i], SourceLive
		} else if i := slices.IndexFunc(recorded, func(u state.DiskUsage) bool { return path.Clean(u.Mount) == path.Clean(spec.mount) }); i >= 0 {
			s.DiskUsage, s.Source = recorded[i], SourceRecorded
			s.RecordedAt = b.at(recordedAt[i])
			s.AgeSeconds = b.age(recordedAt[i])
		}
		s.Mount = spec.mount
		where := fmt.Sprintf("%s (%s)", s.Label, s.Mount)
		switch {
		case s.Source == SourceNone:
		case !s.Mounted:
			s.Level = LevelWarning
			if s.Kind == KindBackup {
				s.Level = LevelFailed
			}
			if s.Source == SourceLive {
				b.issue(s.Level, "", "%s is not mounted", where)
			} else {
				b.issue(s.Level, "", "%s was not mounted at the last run, %s ago", where, ago(s.AgeSeconds))
			}
		case s.Percent >= warn:
			s.Level = LevelWarning
			b.issue(LevelWarning, "", "%s is %d%% full (%s of %s used, warning at %d%%)",
				where, s.Percent, alert.Size(s.Used), alert.Size(s.Size), warn)
		default:
			s.Level = LevelOK
		}
		b.d.Storage = append(b.d.Storage, s)
	}
}

// jobFailures reports every record that ended badly or was left running by
// a dead process, whatever the job: a failure is news even from a job the
// config no longer schedules.
func (b *builder) jobFailures() {
	for _, job := range orderedJobs(b.recs) {
		r := b.recs[job]
		title := jobTitle(job)
		when := b.at(ended(r)).Format(timeLayout)
		switch {
		case dead(r):
			b.reported[job] = true
			b.issue(LevelFailed, job, "%s left running by pid %d since %s: the process is gone (terminated abnormally)",
				title, r.PID, b.at(r.Started).Format(timeLayout))
		case r.Status == state.Failed, r.Status == state.Aborted, r.Status == state.Terminated:
			b.reported[job] = true
			what := fmt.Sprintf("%s %s (%s", title, strings.ToUpper(string(r.Status)), when)
			if r.ExitCode != 0 {
				what += fmt.Sprintf(", exit code %d", r.ExitCode)
			}
			if r.Signal != "" {
				what += ", " + r.Signal
			}
			what += ")"
			if why := b.failureDetail(r); why != "" {
				what += ": " + why
			}
			b.issue(LevelFailed, job, "%s", what)
		case r.Status == state.Warning && !b.judgedHere(r):
			b.reported[job] = true
			what := fmt.Sprintf("%s ended with a warning (%s)", title, when)
			if why := firstLine(r.Message); why != "" {
				what += ": " + why
			}
			b.issue(LevelWarning, job, "%s", what)
		}
	}
}

// judgedHere reports a warning the dashboard already raises on its own
// evidence: the stale check and the summary warn about other jobs' records
// and the watchdog about heartbeats and its disk, all of which Build judges
// itself. Counting them twice would inflate the summary's count of issues.
func (b *builder) judgedHere(r *state.Record) bool {
	switch r.Job {
	case layout.JobStale, layout.JobSummary, layout.JobWatchdog:
		return true
	}
	return false
}

// orderedJobs lists the jobs of recs as a listing should show them: the
// server's schedule order, then the drill, then the rest by name.
func orderedJobs(recs map[string]*state.Record) []string {
	order := append(config.RoleJobs(config.RoleServer), layout.JobWatchdog, layout.JobDrill)
	var out []string
	for _, j := range order {
		if recs[j] != nil && !slices.Contains(out, j) {
			out = append(out, j)
		}
	}
	for _, j := range state.Jobs(recs) {
		if !slices.Contains(out, j) {
			out = append(out, j)
		}
	}
	return out
}

// failureDetail names what failed inside a run (repos, mirrors, files), or
// falls back to the first line of the record's message.
func (b *builder) failureDetail(r *state.Record) string {
	var names []string
	switch r.Job {
	case layout.JobNightly:
		var st state.NightlyStats
		if json.Unmarshal(r.Stats, &st) == nil {
			for _, rs := range st.Repos {
				if rs.Status == "failed" {
					names = append(names, rs.Name)
				}
			}
		}
	case layout.JobSync:
		var st state.SyncStats
		if json.Unmarshal(r.Stats, &st) == nil {
			for _, m := range st.Mirrors {
				if m.Status != "ok" {
					names = append(names, m.Name+" "+m.Status)
				}
			}
		}
	case layout.JobCheck, layout.JobVerify:
		var st state.CheckStats
		if json.Unmarshal(r.Stats, &st) == nil {
			for _, rc := range st.Repos {
				if rc.Status != "ok" {
					names = append(names, rc.Name)
				}
			}
		}
	case layout.JobRestoreTest:
		var st state.RestoreStats
		if json.Unmarshal(r.Stats, &st) == nil {
			for _, f := range st.Files {
				if f.Status != "match" {
					names = append(names, fmt.Sprintf("%s:%s %s", f.Repo, f.Path, f.Status))
				}
			}
		}
	}
	if len(names) > 0 {
		return strings.Join(names, ", ")
	}
	return firstLine(r.Message)
}

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
		case repo.Status == "skipped":
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
		b.d.Mirrors = append(b.d.Mirrors, m)
	}
}

func mirrorLevel(status string, someFailed, stale bool) Level {
	switch {
	case status != "ok" || someFailed:
		return LevelFailed
	case stale:
		return LevelFailed
	}
	return LevelOK
}

// statusWord is the word SELF-MONITORING shows for a record: the seed says
// SUCCESS for the nightly, OK for checks, PASS for the restore test.
func statusWord(r *state.Record, okWord, failWord string) (string, Level) {
	switch {
	case r == nil:
		return "Never", LevelUnknown
	case dead(r):
		return "TERMINATED", LevelFailed
	case r.Status == state.Running:
		return "RUNNING", LevelRunning
	case r.Status == state.OK:
		return okWord, LevelOK
	case r.Status == state.Warning:
		return "WARNING", LevelWarning
	case r.Status == state.Failed:
		return failWord, LevelFailed
	}
	return strings.ToUpper(string(r.Status)), LevelFailed
}

func (b *builder) jobCheck(name, job, okWord, failWord string) Check {
	r := b.rec(job)
	c := Check{Name: name, Job: job}
	c.Status, c.Level = statusWord(r, okWord, failWord)
	if r == nil {
		return c
	}
	t := ended(r)
	c.At, c.AgeSeconds = b.at(t), b.age(t)
	if r.Status == state.Running {
		c.Note = "since " + c.At.Format(timeLayout)
	} else {
		c.Note = c.At.Format(timeLayout)
	}
	return c
}

func (b *builder) monitoring() {
	b.d.Monitoring = append(b.d.Monitoring, b.jobCheck("Last nightly", layout.JobNightly, "SUCCESS", "FAILED"))
	if _, ok := b.self.Schedule(layout.JobCheck); ok || b.rec(layout.JobCheck) != nil {
		b.d.Monitoring = append(b.d.Monitoring, b.jobCheck("Last integrity check", layout.JobCheck, "OK", "FAILED"))
	}
	if _, ok := b.self.Schedule(layout.JobVerify); ok || b.rec(layout.JobVerify) != nil {
		b.d.Monitoring = append(b.d.Monitoring, b.jobCheck("Last deep verify", layout.JobVerify, "OK", "FAILED"))
	}
	if _, ok := b.self.Schedule(layout.JobRestoreTest); ok || b.rec(layout.JobRestoreTest) != nil {
		b.d.Monitoring = append(b.d.Monitoring, b.jobCheck("Last restore test", layout.JobRestoreTest, "PASS", "FAIL"))
	}
	if hb, ok := b.offsiteHeartbeat(); ok {
		b.d.Monitoring = append(b.d.Monitoring, hb)
	}
	b.d.Monitoring = append(b.d.Monitoring, b.drillCheck())
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

func (b *builder) drillCheck() Check {
	r := b.rec(layout.JobDrill)
	c := b.jobCheck("Last drill", layout.JobDrill, "OK", "FAILED")
	if r == nil {
		return c
	}
	var st state.DrillStats
	b.decodeStats(r, &st)
	if !st.Finished.IsZero() && r.Status != state.Running {
		c.At, c.AgeSeconds = b.at(st.Finished), b.age(st.Finished)
		c.Note = c.At.Format(timeLayout)
	}
	var figs []string
	if st.Repos > 0 {
		figs = append(figs, fmt.Sprintf("%d repos", st.Repos))
	}
	if st.RTO > 0 {
		figs = append(figs, "RTO "+duration(st.RTO))
	}
	if st.RPO > 0 {
		figs = append(figs, "RPO "+ago(int64(st.RPO/time.Second)))
	}
	if len(figs) > 0 && r.Status != state.Running {
		c.Note += ", " + strings.Join(figs, ", ")
	}
	if c.Level == LevelOK && b.drillTooOld(c.At) {
		c.Level = LevelWarning
	}
	return c
}

func (b *builder) drillTooOld(t time.Time) bool {
	return t.Before(b.now.AddDate(0, -DrillMaxAge, 0))
}

// staleness applies the stale check's rules: the nightly and the sync must
// have succeeded within the host's thresholds.
func (b *builder) staleness() {
	for _, j := range []struct {
		job    string
		maxAge time.Duration
	}{
		{layout.JobNightly, b.self.Thresholds.NightlyMaxAgeOrDefault()},
		{layout.JobSync, b.self.Thresholds.SyncMaxAgeOrDefault()},
	} {
		if _, ok := b.self.Schedule(j.job); !ok {
			continue
		}
		last := lastSuccess(b.rec(j.job))
		switch {
		case last.IsZero():
			b.issue(LevelFailed, j.job, "%s has never succeeded (threshold: %s)", jobTitle(j.job), alert.Limit(j.maxAge))
		case b.now.Sub(last) > j.maxAge:
			b.issue(LevelFailed, j.job, "%s is stale: last success %s ago (threshold: %s)",
				jobTitle(j.job), ago(b.age(last)), alert.Limit(j.maxAge))
		}
	}
	if _, ok := b.self.Schedule(layout.JobCheck); ok && b.rec(layout.JobCheck) == nil {
		b.reported[layout.JobCheck] = true
		b.issue(LevelWarning, layout.JobCheck, "Integrity check has never run")
	}
}

// drill warns when the recovery path has not been rehearsed within
// DrillMaxAge months: the bundle may no longer match the disks.
func (b *builder) drill() {
	c := b.drillCheck()
	switch r := b.rec(layout.JobDrill); {
	case r == nil:
		b.issue(LevelWarning, layout.JobDrill, "No recovery drill recorded: rehearse a restore from the recovery bundle")
	case b.reported[layout.JobDrill] || r.Status == state.Running:
	case b.drillTooOld(c.At):
		b.issue(LevelWarning, layout.JobDrill, "Last recovery drill was %s, over %d months ago", c.At.Format("2006-01-02"), DrillMaxAge)
	}
}

// overdue catches a job whose cron line stopped firing: its record stays
// as it was while its next start passes.
func (b *builder) overdue() {
	for _, job := range scheduledJobs {
		r := b.rec(job)
		spec, ok := b.self.Schedule(job)
		if !ok || r == nil || b.reported[job] || r.Status == state.Running {
			continue
		}
		sched, err := config.ParseSchedule(spec)
		if err != nil {
			continue // Validate refuses bad schedules; nothing to judge by
		}
		next := sched.Next(b.at(r.Started))
		if !next.IsZero() && b.now.Sub(next) > overdueGrace {
			b.issue(LevelWarning, job, "%s missed its schedule: last run %s, due %s",
				jobTitle(job), b.at(r.Started).Format(timeLayout), next.Format(timeLayout))
		}
	}
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
}

// ago formats an age in seconds as the seed does ("6h", "45m"), in days
// once hours stop being easy to read.
func ago(secs int64) string {
	d := time.Duration(secs) * time.Second
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return alert.Age(d)
}

// duration is a span such as an RTO: "42m", "1h 30m", "45s". Seconds
// past the first minute are noise here.
func duration(d time.Duration) string {
	if d < time.Minute {
		return alert.Elapsed(d)
	}
	return alert.Limit(d.Round(time.Minute))
}

// nonEmpty keeps nil for an empty list: an empty list is omitted from the
// JSON and comes back nil, and the model must round-trip.
func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// maxIssue bounds an issue's text: it ends up in a mail subject.
const maxIssue = 200

// oneLine keeps issue texts to a single bounded line: a record's message
// may carry borg's multi-line output, and a subject must not break.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxIssue {
		r := []rune(s)
		s = string(r[:maxIssue-3]) + "..."
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}
