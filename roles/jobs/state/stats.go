package state

import (
	"time"

	"github.com/borgkit/borgkit/recovery/fingerprint"
)

// What each job records in its record's stats: the writers (the jobs, the
// drill) and the readers (`borgkit status`, the weekly summary) share
// these types, so no record is read through a hand-made map.

// DiskUsage is a mounted filesystem's fill.
type DiskUsage struct {
	Mount   string `json:"mount"`
	UUID    string `json:"uuid,omitempty"`
	Mounted bool   `json:"mounted"`
	Size    uint64 `json:"size_bytes"`
	Used    uint64 `json:"used_bytes"`
	Avail   uint64 `json:"avail_bytes"`
	Percent int    `json:"percent"`
}

// RepoStats is one repo after a nightly run.
type RepoStats struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Status string `json:"status"` // ok | failed | skipped
	// Archive is the archive this run created; LastBackup its time.
	Archive    string    `json:"archive,omitempty"`
	LastBackup time.Time `json:"last_backup,omitzero"`
	// Archives is how many archives the repo keeps after pruning.
	Archives int `json:"archives"`
	// Sizes of all archives (borg's cache stats): original, compressed,
	// and deduplicated (what the repo really holds).
	OriginalSize     uint64 `json:"original_bytes"`
	CompressedSize   uint64 `json:"compressed_bytes"`
	DeduplicatedSize uint64 `json:"deduplicated_bytes"`
	Files            int64  `json:"files,omitempty"`
	// ArchiveBytes is what the night's archive holds, NewBytes what it
	// added to the repo after deduplication.
	ArchiveBytes uint64        `json:"archive_bytes,omitempty"`
	NewBytes     uint64        `json:"new_bytes,omitempty"`
	Duration     time.Duration `json:"duration_ns"`
	VMs          []string      `json:"vms,omitempty"`
	// Guests are the repo's VMs and containers, each in its own archive.
	Guests []GuestStats `json:"guests,omitempty"`
}

// GuestStats is one VM or container after a nightly run.
type GuestStats struct {
	Kind   string `json:"kind"` // vm | container
	Name   string `json:"name"`
	Status string `json:"status"` // ok | warning | failed
	// Archive is the archive this run created, LastBackup its time.
	Archive    string        `json:"archive,omitempty"`
	LastBackup time.Time     `json:"last_backup,omitzero"`
	Duration   time.Duration `json:"duration_ns"`
	// Archives is how many archives of the guest the repo keeps.
	Archives int `json:"archives"`
	// Problem is the warning or failure, in a line (a disk that changed
	// while it was read, a domain that is not defined).
	Problem string `json:"problem,omitempty"`
}

// NightlyStats is the nightly job's record.
type NightlyStats struct {
	Disk  DiskUsage   `json:"disk"`
	Repos []RepoStats `json:"repos"`
}

// MirrorStats is one mirror after a sync.
type MirrorStats struct {
	Name   string   `json:"name"`
	Target string   `json:"target"` // pi:/mnt/backup or /mnt/nas/backups
	Status string   `json:"status"` // ok | failed | refused | revoked
	Repos  []string `json:"repos"`
	// Failed names the repos whose transfer failed or was refused;
	// Refused those of them the guards refused (the mirror untouched).
	Failed  []string `json:"failed,omitempty"`
	Refused []string `json:"refused,omitempty"`
	// Verified names the repos whose copy was compared with the source
	// after the transfer and found the same.
	Verified []string `json:"verified,omitempty"`
	// Remote names the repos on a borg server, never mirrored: borg
	// writes them there, and an rsync of one is no copy borg can trust.
	Remote []string `json:"remote,omitempty"`
	// SentBytes is what rsync reported sending.
	SentBytes uint64 `json:"sent_bytes"`
	// Heartbeat is when the heartbeat was written to an offsite target.
	Heartbeat time.Time `json:"heartbeat,omitzero"`
}

// SyncStats is the sync job's record.
type SyncStats struct {
	Mirrors []MirrorStats `json:"mirrors"`
}

// CheckStats is the check and verify jobs' record.
type CheckStats struct {
	Repos []RepoCheck `json:"repos"`
	// PeriodDays is the rolling verify's period (audit.verify_days).
	PeriodDays int `json:"period_days,omitempty"`
}

// RepoCheck is one repo's integrity result. The rolling verify reads one
// repo on a night it is due: the others keep their last result, with its
// time, and say so (Checked false).
type RepoCheck struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"` // ok | failed | never
	Duration time.Duration `json:"duration_ns"`
	// At is when this result was made; Checked says it was tonight.
	At      time.Time `json:"at,omitzero"`
	Checked bool      `json:"checked,omitempty"`
}

// AuditStats is the audit's record.
type AuditStats struct {
	CoverDays int         `json:"cover_days"`
	Copies    []CopyAudit `json:"copies"`
	// FirstSeenFiles and FirstSeenBytes are the repos' segments hashed
	// tonight only to record them as first seen (new ones, and a share of
	// those the repos held when the audit began), for the snapshots'
	// segments compaction removes.
	FirstSeenFiles int    `json:"first_seen_files,omitempty"`
	FirstSeenBytes uint64 `json:"first_seen_bytes,omitempty"`
}

// CopyAudit is one copy after a night's audit.
type CopyAudit struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok | mismatch | failed
	Error  string `json:"error,omitempty"`
	// Files and Bytes are the copy's segments the audit follows.
	Files int    `json:"files"`
	Bytes uint64 `json:"bytes"`
	// Tonight's share: files hashed, bytes read on the copy, and bytes
	// read of the source to compare them.
	HashedFiles int           `json:"hashed_files"`
	HashedBytes uint64        `json:"hashed_bytes"`
	SourceBytes uint64        `json:"source_bytes"`
	Duration    time.Duration `json:"duration_ns"`
	// Covered is the part of Bytes found equal to the source within the
	// cover period (1 when all is); Oldest the age of the least recently
	// compared segment.
	Covered float64       `json:"covered"`
	Oldest  time.Duration `json:"oldest_ns"`
	// Lagging counts the repos' segments the copy does not hold yet.
	Lagging int `json:"lagging,omitempty"`
	// Mismatches are tonight's ("repo/path: how"); LastMismatch the
	// last night any was found, and its files.
	Mismatches        []string  `json:"mismatches,omitempty"`
	LastMismatch      time.Time `json:"last_mismatch,omitzero"`
	LastMismatchFiles []string  `json:"last_mismatch_files,omitempty"`
}

// RestoreStats is the restore test's record.
type RestoreStats struct {
	Files []RestoredFile `json:"files"`
}

// RestoredFile is one file extracted and compared.
type RestoredFile struct {
	Repo string `json:"repo"`
	// Guest is the VM or container whose archive it came from ("vm
	// openclaw"); empty for the repo's own archives.
	Guest   string `json:"guest,omitempty"`
	Archive string `json:"archive"`
	Path    string `json:"path"`
	Status  string `json:"status"` // match | mismatch | error
	SHA256  string `json:"sha256,omitempty"`
	Bytes   int64  `json:"bytes"`
}

// WatchdogStats is the offsite watchdog's record.
type WatchdogStats struct {
	Heartbeats []Heartbeat `json:"heartbeats"`
	Disk       DiskUsage   `json:"disk"`
	// Snapshots is what the watchdog saw of the snapshots: the newest and
	// the pushes no snapshot keeps yet.
	Snapshots *SnapshotWatch `json:"snapshots,omitempty"`
	// Report is how the report to the server went ("" when none is sent).
	Report string `json:"report,omitempty"`
}

// WatchdogReport is an offsite host's watchdog report as its server keeps
// it (the Pi sends it through a key whose forced command is
// `borgkit job watchdog-report HOST`). Everything but Received and From is
// what the Pi said; the server validated it before keeping it.
type WatchdogReport struct {
	Version int    `json:"version"`
	Host    string `json:"host"`
	// Sent is the Pi's clock; Received the server's, which the stale
	// check measures from.
	Sent     time.Time `json:"sent"`
	Received time.Time `json:"received,omitzero"`
	// From is the address the report came from (SSH_CLIENT).
	From string `json:"from,omitempty"`
	// Status and Message are the watchdog run's own.
	Status  Status `json:"status"`
	Message string `json:"message,omitempty"`
	// MailError is why the run's last mail failed: a Pi that can no
	// longer alert by mail.
	MailError   string `json:"mail_error,omitempty"`
	DiskMounted bool   `json:"disk_mounted"`
	DiskPercent int    `json:"disk_percent"`
	// Snapshots is how many the Pi keeps and LatestSnapshot the newest.
	Snapshots       int    `json:"snapshots"`
	LatestSnapshot  string `json:"latest_snapshot,omitempty"`
	SnapshotOverdue bool   `json:"snapshot_overdue,omitempty"`
}

// SnapshotWatch is the watchdog's view of the snapshots.
type SnapshotWatch struct {
	Latest     string    `json:"latest,omitempty"`
	LatestTime time.Time `json:"latest_time,omitzero"`
	Count      int       `json:"count"`
	// Waiting are the pushes (by server) that arrived and no snapshot
	// holds, with when they arrived; Overdue those waiting past the lag.
	Waiting []Heartbeat `json:"waiting,omitempty"`
	Overdue bool        `json:"overdue,omitempty"`
}

// SnapshotStats is the offsite snapshot job's record.
type SnapshotStats struct {
	// Snapshot is the one this run took ("" when it took none), and
	// Pushes the heartbeats it keeps.
	Snapshot    string      `json:"snapshot,omitempty"`
	Pushes      []Heartbeat `json:"pushes,omitempty"`
	Files       int         `json:"files"`
	Bytes       int64       `json:"bytes"`
	Frozen      int         `json:"frozen"`
	FrozenBytes int64       `json:"frozen_bytes"`
	Skipped     []string    `json:"skipped,omitempty"`
	// LockWaitSeconds is how long it waited for a push to end.
	LockWaitSeconds float64 `json:"lock_wait_seconds,omitempty"`
	// Removed are the snapshots retention removed; Kept the rest, oldest
	// first.
	Removed   []string          `json:"removed,omitempty"`
	Kept      []string          `json:"kept,omitempty"`
	Retention SnapshotRetention `json:"retention"`
	Usage     SnapshotUsage     `json:"usage"`
}

// SnapshotRetention is the retention kept and what the config asks for.
type SnapshotRetention struct {
	Daily        int `json:"daily"`
	Weekly       int `json:"weekly"`
	ConfigDaily  int `json:"config_daily"`
	ConfigWeekly int `json:"config_weekly"`
	// Note says when the two differ and what to do about it.
	Note string `json:"note,omitempty"`
}

// SnapshotUsage is the disk the snapshots take beyond the mirror.
type SnapshotUsage struct {
	Snapshots int `json:"snapshots"`
	// HeldBytes are files only snapshots still hold (segments compaction
	// removed, replaced indexes), each counted once; DirBytes the
	// snapshots' directories; MirrorBytes the mirror itself, for scale.
	HeldFiles   int   `json:"held_files"`
	HeldBytes   int64 `json:"held_bytes"`
	DirBytes    int64 `json:"dir_bytes"`
	MirrorBytes int64 `json:"mirror_bytes"`
	// HeldSegmentBytes is the part of HeldBytes in borg segment files
	// (REPO/data/N/M); the rest is replaced indexes, hints and the like.
	HeldSegmentBytes int64 `json:"held_segment_bytes"`
}

// Total is the disk the snapshots take beyond the mirror.
func (u SnapshotUsage) Total() int64 { return u.HeldBytes + u.DirBytes }

// Heartbeat is the last success a server reported to this host.
type Heartbeat struct {
	Host string    `json:"host"`
	File string    `json:"file"`
	At   time.Time `json:"at,omitzero"`
}

// Dump is a Proxmox guest's newest vzdump archive.
type Dump struct {
	VMID int `json:"vmid"`
	// Kind is vzdump's: qemu (a VM) or lxc (a container).
	Kind  string    `json:"kind"`
	File  string    `json:"file"`
	At    time.Time `json:"at"`
	Bytes int64     `json:"bytes"`
}

// ProxmoxStats is what the stale check saw of the Proxmox dumps.
type ProxmoxStats struct {
	Dir string `json:"dir"`
	// Dumps are the newest dump of each guest, by VMID; a watched guest
	// without any has a zero At.
	Dumps         []Dump `json:"dumps"`
	MaxAgeSeconds int64  `json:"max_age_seconds"`
	// Error says why the directory could not be read.
	Error string `json:"error,omitempty"`
}

// StaleStats is the stale check's record.
type StaleStats struct {
	Proxmox *ProxmoxStats `json:"proxmox,omitempty"`
	// Bundle is the last recovery bundle against this host's secrets.
	Bundle *fingerprint.Status `json:"recovery_bundle,omitempty"`
}

// UnlockStats is the unlock job's record.
type UnlockStats struct {
	Server string `json:"server"`
	// Tries is how many key fetches this run made (0: no disk needed the key).
	Tries int            `json:"tries"`
	Disks []UnlockedDisk `json:"disks"`
}

// UnlockedDisk is one LUKS disk after the unlock.
type UnlockedDisk struct {
	Name   string `json:"name"`
	Device string `json:"device"`
	Mapper string `json:"mapper"`
	Mount  string `json:"mount"`
	// Status is ok (opened and mounted now), open (was already open and
	// mounted), verified (TestOpenOnly: the key opens it) or failed.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// DrillStats is the disaster drill's record: the figures the dashboard
// shows. The drill's full result is in its own report files.
type DrillStats struct {
	OK     bool   `json:"ok"`
	Target string `json:"target"`
	// RepoCount is how many repositories the drill restored from.
	RepoCount int       `json:"repo_count"`
	Finished  time.Time `json:"finished,omitzero"`
	// RPO is the age of the oldest newest-archive at the drill's start;
	// RTO the time from the drill's start to the last file verified.
	RPO             time.Duration `json:"rpo_ns"`
	RTO             time.Duration `json:"rto_ns"`
	TimeToFirstFile time.Duration `json:"time_to_first_file_ns"`
	Files           int           `json:"files"`
	Bytes           int64         `json:"bytes"`
	Throughput      float64       `json:"throughput_bytes_per_second"`
	ReportFiles     []string      `json:"report_files,omitempty"`
}
