package status

import (
	"slices"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Level is how an item stands. The renderers colour by it and scripts
// reading `borgkit status --json` can filter on it without parsing words.
type Level string

const (
	LevelOK      Level = "ok"
	LevelWarning Level = "warning"
	LevelFailed  Level = "failed"
	// LevelRunning is a job at work right now: neither good nor bad yet.
	LevelRunning Level = "running"
	// LevelUnknown is something never measured (a job that never ran, a
	// mount nobody looked at).
	LevelUnknown Level = "unknown"
)

// Dashboard is everything `borgkit status` shows, computed once by Build so
// that the text, JSON and HTML renderings cannot disagree. Ages are
// included next to the times they derive from so JSON consumers need not
// redo the arithmetic against Generated.
type Dashboard struct {
	Host      string      `json:"host"`
	Role      config.Role `json:"role"`
	Generated time.Time   `json:"generated"`

	Storage []Storage `json:"storage"`
	// Repos, Mirrors and VMs are a server's (or archive's); Heartbeats an
	// offsite host's.
	Repos      []Repo      `json:"repos,omitempty"`
	Mirrors    []Mirror    `json:"mirrors,omitempty"`
	VMs        []VM        `json:"vms,omitempty"`
	Containers []VM        `json:"containers,omitempty"`
	Heartbeats []Heartbeat `json:"heartbeats,omitempty"`
	// Proxmox is the watched Proxmox server's guests (config proxmox:).
	Proxmox *Proxmox `json:"proxmox,omitempty"`

	Monitoring []Check `json:"monitoring"`
	// Issues is never nil, so the JSON always carries a list to count.
	Issues  []Issue `json:"issues"`
	Summary string  `json:"summary"`
}

// Storage kinds.
const (
	KindBackup = "backup" // the disk holding this host's repos (or the mirror, offsite)
	KindDisk   = "disk"
	KindShare  = "share"
	KindMirror = "mirror" // a local mirror path not on any listed mount
)

// Storage sources: where the figures came from.
const (
	SourceLive     = "live"     // statfs by the caller, now
	SourceRecorded = "recorded" // what a job recorded at its last run
	SourceNone     = "none"     // nothing known
)

// Storage is one mounted filesystem the appliance depends on.
type Storage struct {
	Label string `json:"label"` // "USB Backup Disk", "NAS"
	Kind  string `json:"kind"`
	state.DiskUsage
	Source string `json:"source"`
	// RecordedAt is when a job measured it (Source recorded).
	RecordedAt  time.Time `json:"recorded_at,omitzero"`
	AgeSeconds  int64     `json:"age_seconds,omitempty"`
	WarnPercent int       `json:"warn_percent"`
	Level       Level     `json:"level"`
}

// Repo is one borg repository as the last nightly left it.
type Repo struct {
	Name string `json:"name"`
	Path string `json:"path"`
	// Server is a remote repo's borg server (HOST:PORT), and LastArchive
	// the archive its last nightly made there, from the records: the
	// dashboard never asks the server.
	Server      string `json:"server,omitempty"`
	LastArchive string `json:"last_archive,omitempty"`
	// Status is the last nightly's for this repo (ok | failed | skipped),
	// empty when the nightly recorded nothing about it.
	Status     string    `json:"status,omitempty"`
	Level      Level     `json:"level"`
	Archives   int       `json:"archives"`
	LastBackup time.Time `json:"last_backup,omitzero"`
	AgeSeconds int64     `json:"age_seconds,omitempty"`

	OriginalSize     uint64   `json:"original_bytes"`
	CompressedSize   uint64   `json:"compressed_bytes"`
	DeduplicatedSize uint64   `json:"deduplicated_bytes"`
	VMs              []string `json:"vms,omitempty"`
}

// Mirror is one copy of the repos made by the sync job.
type Mirror struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	// Offsite is a mirror on another host, reached over SSH.
	Offsite bool `json:"offsite"`
	// Status is the last sync's (ok | failed | refused), or, when the sync
	// recorded nothing about this mirror, its record's (running |
	// terminated | aborted ...); empty if the sync never ran.
	Status     string    `json:"status,omitempty"`
	Level      Level     `json:"level"`
	LastRun    time.Time `json:"last_run,omitzero"`
	AgeSeconds int64     `json:"age_seconds,omitempty"`
	Repos      []string  `json:"repos,omitempty"`
	Failed     []string  `json:"failed,omitempty"`
	SentBytes  uint64    `json:"sent_bytes,omitempty"`
	Heartbeat  time.Time `json:"heartbeat,omitzero"`
	// Audit is the last audit of this copy; nil when none ran.
	Audit *CopyAudit `json:"audit,omitempty"`
	// SnapshotsAudit is the last audit of an offsite mirror's snapshots
	// (the files only they hold: the segments compaction removed).
	SnapshotsAudit *CopyAudit `json:"snapshots_audit,omitempty"`
}

// CopyAudit is a copy's coverage by the rolling audit: the part of its
// segments found equal to the repos' within the cover period, and the
// last mismatch found.
type CopyAudit struct {
	At         time.Time `json:"at"`
	AgeSeconds int64     `json:"age_seconds,omitempty"`
	Status     string    `json:"status"` // ok | mismatch | failed
	CoverDays  int       `json:"cover_days"`
	Covered    float64   `json:"covered"`
	// OldestSeconds is the age of the least recently compared segment.
	OldestSeconds      int64     `json:"oldest_seconds"`
	Files              int       `json:"files"`
	Bytes              uint64    `json:"bytes"`
	HashedBytes        uint64    `json:"hashed_bytes"`
	LastMismatch       time.Time `json:"last_mismatch,omitzero"`
	MismatchAgeSeconds int64     `json:"mismatch_age_seconds,omitempty"`
	LastMismatchFiles  []string  `json:"last_mismatch_files,omitempty"`
	Level              Level     `json:"level"`
}

// VM is a guest a repo backs up into archives of its own: a libvirt
// domain (in Dashboard.VMs) or an nspawn machine (in Dashboard.Containers).
type VM struct {
	Kind       string    `json:"kind"` // vm | container
	Name       string    `json:"name"`
	Repo       string    `json:"repo"`
	LastBackup time.Time `json:"last_backup,omitzero"`
	AgeSeconds int64     `json:"age_seconds,omitempty"`
	// Archives is how many of its archives the repo keeps.
	Archives int    `json:"archives,omitempty"`
	Health   string `json:"health"` // healthy | warning | stale | failed | never backed up
	// Problem is the last night's warning or failure for this guest.
	Problem string `json:"problem,omitempty"`
	Level   Level  `json:"level"`
}

// Proxmox is a Proxmox server's dumps as the stale check last listed them.
// Ages are taken now, from the dumps' times, so they keep growing while
// the stale check is not running.
type Proxmox struct {
	Dir string `json:"dir"`
	// CheckedAt is when the stale check listed the directory; zero: never.
	CheckedAt     time.Time      `json:"checked_at,omitzero"`
	Error         string         `json:"error,omitempty"`
	MaxAgeSeconds int64          `json:"max_age_seconds"`
	Level         Level          `json:"level"`
	Guests        []ProxmoxGuest `json:"guests"`
}

// ProxmoxGuest is one guest's newest dump; a watched guest without any has
// no File.
type ProxmoxGuest struct {
	VMID       int       `json:"vmid"`
	Kind       string    `json:"kind,omitempty"` // qemu | lxc
	File       string    `json:"file,omitempty"`
	At         time.Time `json:"at,omitzero"`
	AgeSeconds int64     `json:"age_seconds,omitempty"`
	Bytes      int64     `json:"bytes,omitempty"`
	Level      Level     `json:"level"`
}

// Heartbeat is a server's last good sync as the offsite watchdog saw it.
type Heartbeat struct {
	Host          string    `json:"host"`
	File          string    `json:"file"`
	At            time.Time `json:"at,omitzero"`
	AgeSeconds    int64     `json:"age_seconds,omitempty"`
	MaxAgeSeconds int64     `json:"max_age_seconds"`
	Level         Level     `json:"level"`
}

// Check is one line of SELF-MONITORING: how a job last ended.
type Check struct {
	Name string `json:"name"` // "Last nightly"
	Job  string `json:"job"`
	// Status is the word shown (SUCCESS, OK, PASS, FAILED, Fresh, Never...).
	Status     string    `json:"status"`
	Level      Level     `json:"level"`
	At         time.Time `json:"at,omitzero"`
	AgeSeconds int64     `json:"age_seconds,omitempty"`
	// Note is shown in parentheses after Status: a time, an age, figures.
	Note string `json:"note,omitempty"`
}

// Issue is one thing that needs attention; the summary counts them.
type Issue struct {
	Level Level  `json:"level"`
	Job   string `json:"job,omitempty"`
	Text  string `json:"text"`
}

// Healthy is the summary when there is nothing to report.
const Healthy = "All backups healthy! No issues detected."

// Failed reports whether the dashboard shows a failure anywhere, an issue
// or an item: `borgkit status` then exits 1. Warnings do not count.
func (d *Dashboard) Failed() bool {
	failed := func(l Level) bool { return l == LevelFailed }
	return slices.ContainsFunc(d.Issues, func(i Issue) bool { return failed(i.Level) }) ||
		slices.ContainsFunc(d.Storage, func(s Storage) bool { return failed(s.Level) }) ||
		slices.ContainsFunc(d.Repos, func(r Repo) bool { return failed(r.Level) }) ||
		slices.ContainsFunc(d.Mirrors, func(m Mirror) bool { return failed(m.Level) }) ||
		slices.ContainsFunc(d.VMs, func(v VM) bool { return failed(v.Level) }) ||
		slices.ContainsFunc(d.Containers, func(v VM) bool { return failed(v.Level) }) ||
		slices.ContainsFunc(d.Heartbeats, func(h Heartbeat) bool { return failed(h.Level) }) ||
		slices.ContainsFunc(d.Monitoring, func(c Check) bool { return failed(c.Level) }) ||
		d.Proxmox != nil && failed(d.Proxmox.Level)
}
