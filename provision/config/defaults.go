package config

import (
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
)

// Defaults that callers must not re-implement: every one of them is read
// through an accessor below.
const (
	DefaultSubjectPrefix = "[BACKUP]"
	DefaultCompression   = "zstd"
	DefaultFSType        = "ext4"
	DefaultSSHUser       = "root"
	DefaultSSHPort       = 22
	DefaultSMTPPort      = 587
	DefaultMaxAge        = 30 * time.Hour
	DefaultDatasetMode   = "0700"
	DefaultScheduler     = SchedulerCron
	// DefaultCompactThreshold makes one compaction re-send at most 3x the
	// space it frees (borg's own default, 10, allows 9x).
	DefaultCompactThreshold = 25
)

// DefaultCompactWeekdays are the days the nightly job compacts on: once a
// week, so the offsite mirror sees at most one re-send night a week.
func DefaultCompactWeekdays() []string { return []string{"sun"} }

// Schedulers a host can install its jobs with.
const (
	SchedulerCron    = "cron"
	SchedulerSystemd = "systemd"
)

// DefaultSendmail is the alert command when none is configured.
func DefaultSendmail() []string {
	return []string{"/usr/bin/msmtp", "--read-envelope-from", "-t"}
}

// jobDefault is a job's default schedule and timer jitter: a random delay
// of up to jitter, fixed per host and job (systemd's FixedRandomDelay), so
// hosts that share a NAS, a mail server or an ntfy server do not all start
// on the same second, while each keeps a steady time the stale checks can
// count on. Each is well under the job's period and its stale threshold.
type jobDefault struct {
	job, spec string
	jitter    time.Duration
}

// roleJobs are the first seed's cron file (server and offsite) and the
// second seed's timers (archive), in the order a listing should show them.
var roleJobs = map[Role][]jobDefault{
	RoleServer: {
		{layout.JobNightly, "0 0 * * *", 15 * time.Minute},
		{layout.JobSync, "0 2 * * *", 15 * time.Minute},
		{layout.JobStale, "0 */6 * * *", 5 * time.Minute},
		{layout.JobCheck, "0 9 * * 6", 30 * time.Minute},
		{layout.JobVerify, "0 3 * * *", 30 * time.Minute},
		{layout.JobAudit, "0 5 * * *", 15 * time.Minute},
		{layout.JobRestoreTest, "0 10 1 * *", 30 * time.Minute},
		{layout.JobSummary, "0 8 * * 1", 10 * time.Minute},
	},
	RoleOffsite: {
		{layout.JobWatchdog, "0 * * * *", 5 * time.Minute},
		// Every quarter of an hour, to snapshot a push soon after it
		// arrived; a run with no new push returns without a record.
		{layout.JobSnapshot, "*/15 * * * *", 5 * time.Minute},
	},
	RoleArchive: {
		{layout.JobPull, "0 1 * * *", 15 * time.Minute},
		{layout.JobNightly, "30 2 * * *", 15 * time.Minute},
		{layout.JobStale, "0 */6 * * *", 5 * time.Minute},
		{layout.JobCheck, "30 4 * * 0", 30 * time.Minute},
		{layout.JobVerify, "45 4 * * *", 30 * time.Minute},
		{layout.JobScrub, "0 5 * * 0", 30 * time.Minute},
		{layout.JobSmartShort, "0 6 * * 3", 30 * time.Minute},
		{layout.JobSmartLong, "0 6 1 * *", 30 * time.Minute},
		{layout.JobSummary, "0 8 * * 1", 10 * time.Minute},
	},
}

// RoleJobs lists the jobs a role can run, enabled or not.
func RoleJobs(r Role) []string {
	var out []string
	for _, j := range roleJobs[r] {
		out = append(out, j.job)
	}
	return out
}

// field is the schedules: entry for job, nil for an unknown job.
func (s *Schedules) field(job string) *string {
	switch layout.JobKey(job) {
	case layout.JobNightly:
		return &s.Nightly
	case layout.JobSync:
		return &s.Sync
	case layout.JobStale:
		return &s.Stale
	case layout.JobCheck:
		return &s.Check
	case layout.JobVerify:
		return &s.Verify
	case layout.JobRestoreTest:
		return &s.RestoreTest
	case layout.JobSummary:
		return &s.Summary
	case layout.JobWatchdog:
		return &s.Watchdog
	case layout.JobSnapshot:
		return &s.Snapshot
	case layout.JobScrub:
		return &s.Scrub
	case layout.JobSmartShort:
		return &s.SmartShort
	case layout.JobSmartLong:
		return &s.SmartLong
	case layout.JobPull:
		return &s.Pull
	case layout.JobAudit:
		return &s.Audit
	}
	return nil
}

// Set sets job's schedule; false for a job schedules: has no entry for.
func (s *Schedules) Set(job, spec string) bool {
	f := s.field(job)
	if f != nil {
		*f = spec
	}
	return f != nil
}

// allJobs is every job in schedules:, in field order.
var allJobs = []string{layout.JobNightly, layout.JobSync, layout.JobStale, layout.JobCheck, layout.JobVerify, layout.JobRestoreTest,
	layout.JobSummary, layout.JobWatchdog, layout.JobSnapshot, layout.JobScrub, layout.JobSmartShort, layout.JobSmartLong, layout.JobPull, layout.JobAudit}

// Host finds a host by name.
func (c *Config) Host(name string) (*Host, bool) {
	for i := range c.Hosts {
		if c.Hosts[i].Name == name {
			return &c.Hosts[i], true
		}
	}
	return nil, false
}

// OffsiteServer is the server offsite host h belongs to: the one that
// unlocks it, else the first that mirrors to it; nil when none does. It
// holds h's unlock and report keys and takes its watchdog reports.
func (c *Config) OffsiteServer(h *Host) *Host {
	if h == nil || h.Role != RoleOffsite {
		return nil
	}
	if h.Unlock != nil {
		if s, ok := c.Host(h.Unlock.Server); ok {
			return s
		}
	}
	for i := range c.Hosts {
		for _, m := range c.Hosts[i].Mirrors {
			if m.Host == h.Name {
				return &c.Hosts[i]
			}
		}
	}
	return nil
}

// OffsiteHosts are the offsite hosts that belong to server s (see
// OffsiteServer), in file order: the ones whose watchdog reports to it.
func (c *Config) OffsiteHosts(s *Host) []*Host {
	var out []*Host
	for _, o := range c.HostsByRole(RoleOffsite) {
		if srv := c.OffsiteServer(o); srv != nil && srv.Name == s.Name {
			out = append(out, o)
		}
	}
	return out
}

// HostsByRole lists the hosts of one role, in file order.
func (c *Config) HostsByRole(r Role) []*Host {
	var out []*Host
	for i := range c.Hosts {
		if c.Hosts[i].Role == r {
			out = append(out, &c.Hosts[i])
		}
	}
	return out
}

// EnvelopeFrom is the bare address of From ("backup@example.com" for
// "Backup <backup@example.com>"): what msmtp's configuration carries as
// the envelope sender, where a display name would be taken as the address.
func (a Alerts) EnvelopeFrom() string {
	if addr, err := mail.ParseAddress(a.From); err == nil {
		return addr.Address
	}
	return a.From
}

// HostAlerts is the alert setup h mails with: each field the host sets
// replaces the site's (so a host can change only its From), then defaults.
// The result shares nothing with the config.
func (c *Config) HostAlerts(h *Host) Alerts {
	a := c.Alerts
	if h != nil && h.Alerts != nil {
		o := h.Alerts
		if o.To != "" {
			a.To = o.To
		}
		if o.From != "" {
			a.From = o.From
		}
		if o.SubjectPrefix != "" {
			a.SubjectPrefix = o.SubjectPrefix
		}
		if len(o.Sendmail) > 0 {
			a.Sendmail = o.Sendmail
		}
		if o.SMTP != nil {
			a.SMTP = o.SMTP
		}
		if o.PingURL != "" {
			a.PingURL = o.PingURL
		}
		if o.TextfileDir != "" {
			a.TextfileDir = o.TextfileDir
		}
		if o.Ntfy != nil {
			a.Ntfy = o.Ntfy
		}
		if o.Webhook != nil {
			a.Webhook = o.Webhook
		}
	}
	if a.SubjectPrefix == "" {
		a.SubjectPrefix = DefaultSubjectPrefix
	}
	if len(a.Sendmail) == 0 {
		a.Sendmail = DefaultSendmail()
	} else {
		a.Sendmail = slices.Clone(a.Sendmail)
	}
	if a.SMTP != nil {
		s := *a.SMTP
		a.SMTP = &s
	}
	if a.Ntfy != nil {
		n := *a.Ntfy
		n.Tags = slices.Clone(n.Tags)
		a.Ntfy = &n
	}
	if a.Webhook != nil {
		w := *a.Webhook
		a.Webhook = &w
	}
	return a
}

// PortOrDefault is the SMTP port (587, submission).
func (s *SMTP) PortOrDefault() int {
	if s == nil || s.Port == 0 {
		return DefaultSMTPPort
	}
	return s.Port
}

// TLSOrDefault is whether msmtp uses TLS (default true: a password crosses).
func (s *SMTP) TLSOrDefault() bool {
	if s == nil || s.TLS == nil {
		return true
	}
	return *s.TLS
}

// RepoRetention is r's keep policy: the repo's own, else the host's, else
// the site's. Each level replaces the one above whole: a merged policy would
// be one nobody wrote down.
func (c *Config) RepoRetention(h *Host, r *Repo) Retention {
	if r != nil && r.Retention != nil {
		return *r.Retention
	}
	if h != nil && h.Retention != nil {
		return *h.Retention
	}
	return c.Retention
}

// HostCompaction is when h's nightly job compacts: the host's own policy,
// else the site's, each replacing the one above whole (as RepoRetention),
// with the defaults for what it leaves out.
func (c *Config) HostCompaction(h *Host) Compaction {
	var p Compaction
	switch {
	case h != nil && h.Compaction != nil:
		p = *h.Compaction
	case c.Compaction != nil:
		p = *c.Compaction
	}
	if len(p.Weekdays) == 0 {
		p.Weekdays = DefaultCompactWeekdays()
	} else {
		p.Weekdays = slices.Clone(p.Weekdays)
	}
	if p.Threshold == 0 {
		p.Threshold = DefaultCompactThreshold
	}
	return p
}

// Weekdays are the day names compaction: weekdays takes, by time.Weekday.
var Weekdays = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Due reports whether a nightly run starting at t compacts.
func (p Compaction) Due(t time.Time) bool {
	return slices.Contains(p.Weekdays, Weekdays[t.Weekday()])
}

// IsZero reports a policy that keeps nothing.
func (r Retention) IsZero() bool {
	return r.Daily == 0 && r.Weekly == 0 && r.Monthly == 0 && r.Yearly == 0
}

// EncryptionMode is the borg init --encryption mode (default none, as the
// first seed ran).
func (r *Repo) EncryptionMode() string {
	if r.Encryption == "" {
		return EncNone
	}
	return r.Encryption
}

// Encrypted reports whether the repo needs a passphrase.
func (r *Repo) Encrypted() bool { return r.EncryptionMode() != EncNone }

// CompressionSpec is borg's --compression value (default zstd).
func (r *Repo) CompressionSpec() string {
	if r.Compression == "" {
		return DefaultCompression
	}
	return r.Compression
}

// PassphrasePath is the path of the file holding the repo's passphrase
// (default /etc/borgkit/keys/REPO.pass), "" for an unencrypted repo.
func (r *Repo) PassphrasePath() string {
	if !r.Encrypted() {
		return ""
	}
	if r.PassphraseFile != "" {
		return r.PassphraseFile
	}
	return layout.PassphraseFile(r.Name)
}

// KeyExportPath is where the export of the repo's key is kept (default
// /etc/borgkit/keys/REPO.borg-key), "" for an unencrypted repo.
func (r *Repo) KeyExportPath() string {
	if !r.Encrypted() {
		return ""
	}
	if r.KeyExport != "" {
		return r.KeyExport
	}
	return layout.KeyExport(r.Name)
}

// ArchivePrefixOrDefault starts the name of the nightly job's archives
// (default "nightly-").
func (r *Repo) ArchivePrefixOrDefault() string {
	if r.ArchivePrefix == "" {
		return layout.ArchivePrefix
	}
	return r.ArchivePrefix
}

// TimeoutDuration bounds one borg create; 0 means no bound.
func (r *Repo) TimeoutDuration() time.Duration {
	d, err := time.ParseDuration(r.Timeout)
	if err != nil || d < 0 {
		return 0
	}
	return d
}

// FSTypeOrDefault is the filesystem type (default ext4).
func (d *Disk) FSTypeOrDefault() string {
	if d.FSType == "" {
		return DefaultFSType
	}
	return d.FSType
}

// MapperName is the /dev/mapper name of d's open LUKS container (default
// the disk name), "" when l is nil.
func (l *LUKS) MapperName(d *Disk) string {
	if l == nil {
		return ""
	}
	if l.Mapper != "" {
		return l.Mapper
	}
	return d.Name
}

// MapperPath is /dev/mapper/NAME, "" for a disk without LUKS.
func (d *Disk) MapperPath() string {
	if d.LUKS == nil {
		return ""
	}
	return layout.Mapper(d.LUKS.MapperName(d))
}

// LUKSKeyfile is where the key host keeps the keyfile of d on host h
// (default /etc/borgkit/keys/HOST-DISK.key), "" for a disk without LUKS.
func (c *Config) LUKSKeyfile(h *Host, d *Disk) string {
	if d.LUKS == nil {
		return ""
	}
	if d.LUKS.Keyfile != "" {
		return d.LUKS.Keyfile
	}
	return layout.LUKSKeyfile(h.Name, d.Name)
}

// IdentityOrDefault is the private key the offsite host fetches its LUKS
// key with.
func (u *Unlock) IdentityOrDefault() string {
	if u == nil || u.Identity == "" {
		return layout.UnlockIdentity
	}
	return u.Identity
}

// DefaultUnlockRetry is how long the unlock timer waits after a failed run.
const DefaultUnlockRetry = 3 * time.Minute

// RetryOrDefault is how long after a failed unlock run the timer tries
// again.
func (u *Unlock) RetryOrDefault() time.Duration {
	if u == nil {
		return DefaultUnlockRetry
	}
	return durationOr(u.Retry, DefaultUnlockRetry)
}

// KeyFile is the file a dataset's keylocation=file:// names: the key that
// opens it and what is below it. "" when ZFS asks a person (prompt) or the
// dataset is not an encryption root.
func (d *Dataset) KeyFile() string {
	f, ok := strings.CutPrefix(d.Properties["keylocation"], "file://")
	if !ok {
		return ""
	}
	return f
}

// ModeOrDefault is the mountpoint mode of the dataset (default 0700, as
// the second seed's chmod -R 700).
func (d *Dataset) ModeOrDefault() string {
	if d.Mode == "" {
		return DefaultDatasetMode
	}
	return d.Mode
}

// UserOrDefault is the login user (default root).
func (s SSH) UserOrDefault() string {
	if s.User == "" {
		return DefaultSSHUser
	}
	return s.User
}

// PortOrDefault is the SSH port (default 22).
func (s SSH) PortOrDefault() int {
	if s.Port == 0 {
		return DefaultSSHPort
	}
	return s.Port
}

// UserOrDefault is the SSH user syncoid pulls as (default root).
func (p *Pull) UserOrDefault() string {
	if p == nil || p.User == "" {
		return DefaultSSHUser
	}
	return p.User
}

// SchedulerKind is how the host's jobs are installed: cron (default) or
// systemd.
func (h *Host) SchedulerKind() string {
	if h.Scheduler == "" {
		return DefaultScheduler
	}
	return h.Scheduler
}

// Schedule is the cron expression job runs at on h: the host's own, else
// the role's default. enabled is false for "off", for a job the role does
// not run, and for one with nothing to do (sync without mirrors, pull
// without a pull: source).
func (h *Host) Schedule(job string) (spec string, enabled bool) {
	job = layout.JobKey(job)
	def := ""
	for _, j := range roleJobs[h.Role] {
		if j.job == job {
			def = j.spec
			break
		}
	}
	if def == "" || !h.jobApplies(job) {
		return "", false
	}
	spec = def
	if f := h.Schedules.field(job); f != nil && strings.TrimSpace(*f) != "" {
		spec = strings.TrimSpace(*f)
	}
	if spec == "off" {
		return "", false
	}
	return spec, true
}

func (h *Host) jobApplies(job string) bool {
	switch job {
	case layout.JobSync, layout.JobAudit:
		return len(h.Mirrors) > 0
	case layout.JobPull:
		return h.Pull != nil
	}
	return true
}

// RandomDelay is the random delay h's timer for job gets: the host's jitter:
// entry, else the job's default; 0 for a cron host (cron has none), for
// a job that is not scheduled, and for "0". Boot-time units (unlock,
// zfs-load-key) are not scheduled jobs and never wait.
func (h *Host) RandomDelay(job string) time.Duration {
	job = layout.JobKey(job)
	if h.SchedulerKind() != SchedulerSystemd {
		return 0
	}
	if _, on := h.Schedule(job); !on {
		return 0
	}
	if v, ok := h.Jitter[job]; ok {
		d, _ := time.ParseDuration(strings.TrimSpace(v))
		return d
	}
	for _, j := range roleJobs[h.Role] {
		if j.job == job {
			return j.jitter
		}
	}
	return 0
}

// Jobs lists the jobs enabled on h, in the role's order.
func (h *Host) Jobs() []string {
	var out []string
	for _, j := range roleJobs[h.Role] {
		if _, ok := h.Schedule(j.job); ok {
			out = append(out, j.job)
		}
	}
	return out
}

// BackupDisk is the disk marked backup: true, else the host's only disk;
// nil if there is none or the choice would be a guess.
func (h *Host) BackupDisk() *Disk {
	for i := range h.Disks {
		if h.Disks[i].Backup {
			return &h.Disks[i]
		}
	}
	if len(h.Disks) == 1 {
		return &h.Disks[0]
	}
	return nil
}

// MirrorRootOrDefault is the directory on an offsite host's backup disk
// that servers push into: mirror_root, else MOUNTPOINT/borgkit; "" when
// the host has no backup disk.
func (h *Host) MirrorRootOrDefault() string {
	if h.MirrorRoot != "" {
		return h.MirrorRoot
	}
	if d := h.BackupDisk(); d != nil {
		return layout.MirrorRoot(d.Mountpoint)
	}
	return ""
}

// Repo finds a repo of h by name.
func (h *Host) Repo(name string) (*Repo, bool) {
	for i := range h.Repos {
		if h.Repos[i].Name == name {
			return &h.Repos[i], true
		}
	}
	return nil, false
}

func durationOr(s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return def
	}
	return d
}

// MaxAgeOrDefault is how old a guest's newest dump may get (default 30h).
func (p *Proxmox) MaxAgeOrDefault() time.Duration { return durationOr(p.MaxAge, DefaultMaxAge) }

// NightlyMaxAgeOrDefault is how old the last good nightly may get before the
// stale check alerts (default 30h).
func (t Thresholds) NightlyMaxAgeOrDefault() time.Duration {
	return durationOr(t.NightlyMaxAge, DefaultMaxAge)
}

// SyncMaxAgeOrDefault is the same for the last good sync (default 30h).
func (t Thresholds) SyncMaxAgeOrDefault() time.Duration {
	return durationOr(t.SyncMaxAge, DefaultMaxAge)
}

// HeartbeatMaxAgeOrDefault is how old the offsite heartbeat may get before
// the watchdog alerts (default 30h).
func (t Thresholds) HeartbeatMaxAgeOrDefault() time.Duration {
	return durationOr(t.HeartbeatMaxAge, DefaultMaxAge)
}

// DefaultSnapshotMaxLag is how long a complete push may wait for its
// snapshot: the snapshot job runs every quarter hour, so this is many
// missed runs, not one slow one.
const DefaultSnapshotMaxLag = 3 * time.Hour

// SnapshotMaxLagOrDefault is how long after a push arrived the watchdog
// alerts when no snapshot holds it (default 3h).
func (t Thresholds) SnapshotMaxLagOrDefault() time.Duration {
	return durationOr(t.SnapshotMaxLag, DefaultSnapshotMaxLag)
}

// DefaultWatchdogMaxAge is how long an offsite host's watchdog, which runs
// hourly, may stay silent.
const DefaultWatchdogMaxAge = 3 * time.Hour

// WatchdogMaxAgeOrDefault is how old the last watchdog report of an
// offsite host may get before the server's stale check alerts (default 3h).
func (t Thresholds) WatchdogMaxAgeOrDefault() time.Duration {
	return durationOr(t.WatchdogMaxAge, DefaultWatchdogMaxAge)
}

// Default snapshot retention of an offsite host.
const (
	DefaultSnapshotDaily  = 7
	DefaultSnapshotWeekly = 4
)

// SnapshotRetention is the retention h's config asks for, with the
// defaults (7 daily, 4 weekly) when it has no snapshots: section. The host
// itself keeps the larger of this and what it kept before.
func (h *Host) SnapshotRetention() Snapshots {
	if h.Snapshots == nil {
		return Snapshots{Daily: DefaultSnapshotDaily, Weekly: DefaultSnapshotWeekly}
	}
	return *h.Snapshots
}

// DiskWarnPercentOrDefault is the fill level that warns: 95 on an offsite
// host (a pure mirror runs full by design), 90 elsewhere.
func (t Thresholds) DiskWarnPercentOrDefault(r Role) int {
	if t.DiskWarnPercent != 0 {
		return t.DiskWarnPercent
	}
	if r == RoleOffsite {
		return 95
	}
	return 90
}

// DiskWarnPercent is DiskWarnPercentOrDefault for h's role.
func (h *Host) DiskWarnPercent() int {
	return h.Thresholds.DiskWarnPercentOrDefault(h.Role)
}

// Guest kinds: a libvirt domain or a systemd-nspawn machine.
const (
	GuestVM        = "vm"
	GuestContainer = "container"
)

// Guest is one VM or container a repo backs up into archives of its own.
type Guest struct {
	Kind string // GuestVM | GuestContainer
	Name string // the libvirt domain or machinectl name
}

// Guests are the repo's VMs, then its containers, in the config's order.
func (r *Repo) Guests() []Guest {
	var gs []Guest
	for _, n := range r.VMs {
		gs = append(gs, Guest{GuestVM, n})
	}
	for _, n := range r.Containers {
		gs = append(gs, Guest{GuestContainer, n})
	}
	return gs
}

// ArchivePrefix starts every archive of the guest and nothing else: its
// name cannot hold ':', so no other guest's archives nor the repo's own
// (whose prefix has no ':') match it.
func (g Guest) ArchivePrefix() string { return layout.GuestArchivePrefix(g.Kind, g.Name) }
