package status

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/recovery/fingerprint"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

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
	// reports are the watched offsite hosts' last watchdog reports, by
	// host; nil for one that never reported.
	reports map[string]*state.WatchdogReport
	// bundle is the last recovery bundle compared with this host's
	// secrets as they are now (nil: no bundle holds them).
	bundle *fingerprint.Status
}

// Build computes the dashboard of host self from its job records recs (as
// state.Store.LoadAll returns them), the live statfs results disks (may be
// nil: the figures the jobs recorded are used instead), at time now, and on
// a server the last watchdog report of each offsite host it watches
// (reports: a nil value for one that never reported). It reads nothing
// but /proc, to tell a running job from one that died.
func Build(cfg *config.Config, self *config.Host, recs map[string]*state.Record, disks []state.DiskUsage, now time.Time, reports map[string]*state.WatchdogReport) *Dashboard {
	return BuildWithBundle(cfg, self, recs, disks, now, reports, nil)
}

// BuildWithBundle is Build with the recovery bundle's fingerprint record
// compared with the host's secrets now (fingerprint.Check): a key,
// passphrase, keyfile or header changed since the bundle was written shows
// as RECOVERY BUNDLE OUT OF DATE.
func BuildWithBundle(cfg *config.Config, self *config.Host, recs map[string]*state.Record, disks []state.DiskUsage, now time.Time, reports map[string]*state.WatchdogReport, bundle *fingerprint.Status) *Dashboard {
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
	b := &builder{cfg: cfg, self: self, recs: recs, disks: disks, now: now, reports: reports, bundle: bundle, reported: map[string]bool{}, badStats: map[string]bool{},
		d: &Dashboard{Host: self.Name, Role: self.Role, Generated: now, Issues: []Issue{}}}

	b.storage()
	b.jobFailures()
	if self.Role == config.RoleOffsite {
		b.heartbeats()
		b.offsiteMonitoring()
	} else {
		b.repos()
		b.guests()
		b.proxmox()
		b.mirrors()
		b.monitoring()
		b.staleness()
		b.drill()
	}
	b.bundleFreshness()
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
