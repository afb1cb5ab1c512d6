// Package config is borgkit's site description, version 1: one YAML file for
// every host of a 3-2-1 backup appliance, decoded strictly and validated.
package config

// Version is the only schema version this borgkit reads.
const Version = 1

// Config is the whole site.
type Config struct {
	Version int `yaml:"version"`
	// Site names the appliance in mails and the runbook.
	Site string `yaml:"site,omitempty"`
	// Defaults apply to every host that does not set its own.
	Alerts    Alerts    `yaml:"alerts"`
	Retention Retention `yaml:"retention"`
	// Compaction is when the nightly job runs borg compact (see Compaction).
	Compaction *Compaction `yaml:"compaction,omitempty"`
	Hosts      []Host      `yaml:"hosts"`

	// File is the path the config was read from ("" for the embedded
	// example); rendered files name it in their "managed by" line.
	File string `yaml:"-"`

	// src places problems found by Validate in the file; nil for a Config
	// built in code.
	src *srcIndex
}

// Role is what a host is in the appliance.
type Role string

const (
	RoleServer  Role = "server"  // john-ai: borg repos on a USB disk, mirrors, alerts
	RoleOffsite Role = "offsite" // the Pi: LUKS disk unlocked at boot, rrsync target, watchdog
	RoleArchive Role = "archive" // the ZFS backup server of the second seed
)

// Host is one machine.
type Host struct {
	Name string `yaml:"name"`
	// Address is how the other hosts and borgkit reach it (Tailscale IP or name).
	Address string `yaml:"address"`
	Role    Role   `yaml:"role"`
	SSH     SSH    `yaml:"ssh,omitempty"`
	// Scheduler installs the jobs as cron lines or systemd timers.
	Scheduler string `yaml:"scheduler,omitempty"` // cron (default) | systemd

	Disks    []Disk    `yaml:"disks,omitempty"`
	Shares   []Share   `yaml:"shares,omitempty"`
	Datasets []Dataset `yaml:"datasets,omitempty"`
	Repos    []Repo    `yaml:"repos,omitempty"`
	Mirrors  []Mirror  `yaml:"mirrors,omitempty"`

	Schedules Schedules `yaml:"schedules,omitempty"`
	// Jitter is systemd's RandomizedDelaySec per job, keyed as schedules:
	// is ("nightly: 30m", "0" for none), over each job's default (see
	// Host.Jitter). Timers only: cron has no random delay.
	Jitter map[string]string `yaml:"jitter,omitempty"`
	// Alerts fields set here replace the site's one by one, so a host can
	// change only its From (see Config.HostAlerts); Retention, when set,
	// replaces the site's whole (see Config.RepoRetention).
	Alerts    *Alerts    `yaml:"alerts,omitempty"`
	Retention *Retention `yaml:"retention,omitempty"`
	// Compaction, when set, replaces the site's whole, as Retention does.
	Compaction *Compaction `yaml:"compaction,omitempty"`

	// Thresholds for the stale check (server) and the watchdog (offsite).
	Thresholds Thresholds `yaml:"thresholds,omitempty"`
	// Audit is the rolling comparison of every copy with the repos and the
	// rolling data verification of the repos (see Audit).
	Audit *Audit `yaml:"audit,omitempty"`
	// Timeouts bound each kind of borg run (see Timeouts).
	Timeouts *Timeouts `yaml:"timeouts,omitempty"`
	// Nightly is how many repos the nightly job backs up at once (see
	// Nightly).
	Nightly *Nightly `yaml:"nightly,omitempty"`
	// Unlock is the offsite host's boot-time key fetch.
	Unlock *Unlock `yaml:"unlock,omitempty"`
	// Snapshots is how many read-only snapshots of its mirror the offsite
	// host keeps (default 7 daily, 4 weekly).
	Snapshots *Snapshots `yaml:"snapshots,omitempty"`
	// Pull is the archive host's syncoid replication from a live server.
	Pull *Pull `yaml:"pull,omitempty"`
	// Proxmox is a Proxmox VE server whose backups this host watches.
	Proxmox *Proxmox `yaml:"proxmox,omitempty"`
	// BorgServer is what a borg-server host serves (see BorgServer).
	BorgServer *BorgServer `yaml:"borg_server,omitempty"`

	// MirrorRoot is, on an offsite host, the directory of its backup disk
	// the servers push into (the rrsync root), one directory per repo
	// below it. Default: MOUNTPOINT/borgkit. A hand-built mirror kept at
	// the top of the disk (/mnt/backup/REPO) is adopted in place with
	// mirror_root: /mnt/backup, so nothing is sent again.
	MirrorRoot string `yaml:"mirror_root,omitempty"`
	// Retire lists files of a hand-built backup setup (its cron file,
	// timers, scripts, unlock service, msmtprc) that provisioning moves
	// aside (FILE.borgkit-old), so two nightly jobs never run on one repo.
	// A schedule that runs borg on this host's repos is a conflict until
	// it is listed here or given with --retire.
	Retire []string `yaml:"retire,omitempty"`
}

// Proxmox is a Proxmox VE server that writes its vzdump backups to a share
// this host mounts (the first seed's NAS). Its guests' newest dumps join
// the stale check and the dashboard, so one view covers both machines.
type Proxmox struct {
	// DumpDir is the directory vzdump writes to, as mounted here.
	DumpDir string `yaml:"dump_dir"`
	// MaxAge is how old a guest's newest dump may get before the stale
	// check alerts (a Go duration; default 30h).
	MaxAge string `yaml:"max_age,omitempty"`
	// Guests are the VMIDs watched: each must have a fresh dump, and
	// dumps of other guests (one deleted on the Proxmox side, whose dumps
	// Proxmox keeps) are ignored. Empty watches every guest with a dump.
	// The time in a dump's name is read in this host's zone, so both
	// machines should keep the same one.
	Guests []int `yaml:"guests,omitempty"`
}

// SSH is how borgkit reaches the host when not run with --local.
type SSH struct {
	User string `yaml:"user,omitempty"` // default root
	Port int    `yaml:"port,omitempty"` // default 22
	// HostKey pins the host's key by fingerprint (SHA256:...), for hosts not
	// yet in known_hosts.
	HostKey string `yaml:"host_key,omitempty"`
	// HostPublicKey is the host's public key line as in
	// /etc/ssh/ssh_host_ed25519_key.pub ("ssh-ed25519 AAAA..."); hosts
	// that connect to it get it in their known_hosts.
	HostPublicKey string `yaml:"host_public_key,omitempty"`
}

// Disk is a block device carrying a filesystem borgkit mounts.
type Disk struct {
	Name string `yaml:"name"`
	// UUID is the filesystem UUID, as blkid shows it; fstab names it by UUID=.
	UUID string `yaml:"uuid,omitempty"`
	// Device is a stable path (/dev/disk/by-id/...), required for LUKS.
	Device     string   `yaml:"device,omitempty"`
	Mountpoint string   `yaml:"mountpoint"`
	FSType     string   `yaml:"fstype,omitempty"` // default ext4
	Options    []string `yaml:"options,omitempty"`
	// Backup marks the disk that holds this host's borg repos (the nightly
	// preflight checks it is mounted with this UUID).
	Backup bool  `yaml:"backup,omitempty"`
	LUKS   *LUKS `yaml:"luks,omitempty"`
}

// LUKS is a LUKS2 container whose key never rests on the host that has it.
type LUKS struct {
	// Mapper is the /dev/mapper name when open (default: the disk name).
	Mapper string `yaml:"mapper,omitempty"`
	// KeyHost is the host that keeps the keyfile and serves it at boot.
	KeyHost string `yaml:"key_host"`
	// Keyfile is its path on KeyHost (default /etc/borgkit/keys/HOST-DISK.key).
	Keyfile string `yaml:"keyfile,omitempty"`
}

// Share is a CIFS share, such as the NAS mirror target.
type Share struct {
	Name        string   `yaml:"name"`
	Source      string   `yaml:"source"` // //server/share
	Mountpoint  string   `yaml:"mountpoint"`
	Credentials string   `yaml:"credentials"` // file with username=/password=, 0600
	Options     []string `yaml:"options,omitempty"`
	ReadOnly    bool     `yaml:"read_only,omitempty"`
	// InBundle puts the credentials file in the recovery bundle. Off by
	// default: the share's password opens more than the backups.
	InBundle bool `yaml:"in_bundle,omitempty"`
}

// Dataset is a ZFS dataset with the properties borgkit keeps set.
type Dataset struct {
	Name       string            `yaml:"name"` // pool/path
	Properties map[string]string `yaml:"properties,omitempty"`
	// Mode and owner of its mountpoint; default 0700 root.
	Mode string `yaml:"mode,omitempty"`
}

// Encryption modes borgkit accepts for borg init.
const (
	EncNone          = "none"
	EncRepokeyBlake2 = "repokey-blake2"
	EncKeyfileBlake2 = "keyfile-blake2"
)

// Repo is one borg repository and what goes into it.
type Repo struct {
	Name string `yaml:"name"`
	// Path is a local directory, or a repo on a borg server over SSH:
	// ssh://USER@HOST[:PORT]/PATH or USER@HOST:PATH (see RepoLocation).
	Path string `yaml:"path"`
	// HostKey pins the borg server's SSH host key of a remote repo ("TYPE
	// BASE64", as in the server's /etc/ssh/ssh_host_ed25519_key.pub, or
	// what ssh-keyscan prints after the host name): borg connects with
	// StrictHostKeyChecking=yes against a known_hosts borgkit writes.
	HostKey string `yaml:"host_key,omitempty"`
	// Sources are backed up in order by borg create, into the repo's own
	// archive; a repo of guests only (the seed's john-ai-vms) has none.
	Sources  []string `yaml:"sources,omitempty"`
	Excludes []string `yaml:"excludes,omitempty"`
	// MustBeMountpoints are refused when not mounted: backing up an empty
	// mountpoint and then pruning would delete good archives.
	MustBeMountpoints []string `yaml:"must_be_mountpoints,omitempty"`
	Encryption        string   `yaml:"encryption,omitempty"`  // none (default) | repokey-blake2 | keyfile-blake2
	Compression       string   `yaml:"compression,omitempty"` // default zstd
	// PassphraseFile holds the passphrase (0600); default /etc/borgkit/keys/REPO.pass.
	PassphraseFile string `yaml:"passphrase_file,omitempty"`
	// Timeout bounds one borg create of this repo, as a Go duration
	// ("6h"); it wins over the host's timeouts.create.
	Timeout string `yaml:"timeout,omitempty"`
	// VMs are libvirt domains, each backed up into its own archive
	// (vm:NAME:TIME): its definition (virsh dumpxml, also kept in
	// /var/lib/borgkit/vm-xml) and its file-backed disks. A defined domain
	// need not run; a disk that changes while borg reads it (a running VM)
	// is a warning for that guest, not a failed night.
	VMs []string `yaml:"vms,omitempty"`
	// Containers are systemd-nspawn machines (machinectl names), each
	// backed up into its own archive (container:NAME:TIME): its directory
	// or NAME.raw image under /var/lib/machines and its .nspawn settings.
	Containers []string `yaml:"containers,omitempty"`
	// Snapshot is a ZFS dataset snapshotted before the create and destroyed after.
	Snapshot string `yaml:"snapshot,omitempty"`
	// Canary is a file the restore test extracts and compares with the live one.
	Canary    string     `yaml:"canary,omitempty"`
	Retention *Retention `yaml:"retention,omitempty"`
	// ArchivePrefix starts the name of every archive the nightly job
	// makes, and prune and the restore test look only at archives that
	// start with it (default "nightly-"). An adopted repo keeps the
	// prefix its archives already have, so retention covers them too.
	ArchivePrefix string `yaml:"archive_prefix,omitempty"`
	// PassphraseFrom is a file of a hand-built setup that holds the
	// passphrase of an existing encrypted repo: a shell file setting
	// BORG_PASSPHRASE='...' (the second seed's /root/.borg_env) or
	// BORG_PASSCOMMAND="cat FILE". Provisioning copies the passphrase
	// into passphrase_file once, after checking that it opens the repo;
	// it never passes it in an argv or an environment.
	PassphraseFrom string `yaml:"passphrase_from,omitempty"`
	// KeyExport is where the export of an encrypted repo's key is kept
	// (default /etc/borgkit/keys/REPO.borg-key). An existing export there
	// (the second seed's /root/borg-key.txt) is checked against the repo's
	// key instead of being written again.
	KeyExport string `yaml:"key_export,omitempty"`
}

// Mirror copies every repo of its host somewhere else after the nightly run.
type Mirror struct {
	Name string `yaml:"name"`
	// Host is the target host (over SSH through its rrsync key); empty for a
	// local path such as a mounted NAS share.
	Host string `yaml:"host,omitempty"`
	Path string `yaml:"path"`
	// SizeOnly was the NAS mirror's rsync --size-only. Every mirror now
	// compares segments (immutable: equal size means equal content) by
	// size alone and every other repo file (config, nonce, index, hints:
	// rewritten in place, same size or not) by content, whatever this
	// says; it is still read so that existing configs load.
	SizeOnly bool `yaml:"size_only,omitempty"`
	// MaxDelete bounds how many files one run may delete (0: no bound).
	MaxDelete int `yaml:"max_delete,omitempty"`
}

// Retention is borg prune's keep policy.
type Retention struct {
	Daily   int `yaml:"daily"`
	Weekly  int `yaml:"weekly"`
	Monthly int `yaml:"monthly"`
	Yearly  int `yaml:"yearly,omitempty"`
}

// Compaction is when the nightly job runs borg compact after prune. borg
// compact gives back the space prune freed by rewriting every segment file
// that holds enough deleted data, and each rewritten segment is a new file
// that every mirror then receives whole, the live data in it included. The
// threshold bounds that: a segment is rewritten only when at least
// Threshold percent of it is free, so one compaction re-sends at most
// (100-Threshold)/Threshold times the space it frees. Weekdays bound how
// often the offsite mirror sees such a night.
type Compaction struct {
	// Weekdays the nightly job compacts on: mon, tue, wed, thu, fri, sat,
	// sun (default: sun).
	Weekdays []string `yaml:"weekdays,omitempty"`
	// Threshold is borg compact --threshold, in percent, 1..99 (default 25).
	Threshold int `yaml:"threshold,omitempty"`
}

// Schedules are 5-field cron expressions (minute hour day-of-month month
// day-of-week) or the @daily/@hourly/@weekly/@monthly shorthands. An empty
// field means the role's default; "off" disables the job.
type Schedules struct {
	Nightly     string `yaml:"nightly,omitempty"`
	Sync        string `yaml:"sync,omitempty"`
	Stale       string `yaml:"stale,omitempty"`
	Check       string `yaml:"check,omitempty"`
	Verify      string `yaml:"verify,omitempty"`
	RestoreTest string `yaml:"restore_test,omitempty"`
	Summary     string `yaml:"summary,omitempty"`
	Watchdog    string `yaml:"watchdog,omitempty"`
	Snapshot    string `yaml:"snapshot,omitempty"`
	Scrub       string `yaml:"scrub,omitempty"`
	SmartShort  string `yaml:"smart_short,omitempty"`
	SmartLong   string `yaml:"smart_long,omitempty"`
	Pull        string `yaml:"pull,omitempty"`
	Audit       string `yaml:"audit,omitempty"`
}

// Alerts is how a host mails its operator.
type Alerts struct {
	To            string `yaml:"to,omitempty"`
	From          string `yaml:"from,omitempty"`
	SubjectPrefix string `yaml:"subject_prefix,omitempty"` // default [BACKUP]
	// Sendmail is the argv of a sendmail-compatible program that reads the
	// message on stdin (default: /usr/bin/msmtp --read-envelope-from -t).
	Sendmail []string `yaml:"sendmail,omitempty"`
	// SMTP, when set, makes provisioning write /etc/msmtprc for msmtp.
	SMTP *SMTP `yaml:"smtp,omitempty"`
	// PingURL, when set, is a Healthchecks-style check every job pings:
	// URL/start when it starts, URL/EXIT_CODE when it ends (0 is success).
	// {host} and {job} in it are replaced, so one line serves every job
	// of every host ("https://hc-ping.com/KEY/{host}-{job}").
	PingURL string `yaml:"ping_url,omitempty"`
	// TextfileDir, when set, gets borgkit.prom after every job, for
	// node_exporter's textfile collector: last success, last run, exit
	// code, duration and running, per job.
	TextfileDir string `yaml:"textfile_dir,omitempty"`
	// Ntfy and Webhook, when set, get every alert the mail gets (see
	// notify.go). A host's own replaces the site's whole.
	Ntfy    *Ntfy    `yaml:"ntfy,omitempty"`
	Webhook *Webhook `yaml:"webhook,omitempty"`
}

// SMTP is msmtp's account.
type SMTP struct {
	Host         string `yaml:"host"`
	Port         int    `yaml:"port,omitempty"` // default 587
	TLS          *bool  `yaml:"tls,omitempty"`  // default true
	User         string `yaml:"user,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"` // read by msmtp's passwordeval, 0600
	// PasswordFrom is an msmtprc of a hand-built setup whose account
	// carries the password inline ("password ..."): provisioning copies
	// it into password_file once, so the config never holds it.
	PasswordFrom string `yaml:"password_from,omitempty"`
}

// Thresholds are ages (Go durations) and percentages that raise alerts.
type Thresholds struct {
	NightlyMaxAge   string `yaml:"nightly_max_age,omitempty"`   // default 30h
	SyncMaxAge      string `yaml:"sync_max_age,omitempty"`      // default 30h
	HeartbeatMaxAge string `yaml:"heartbeat_max_age,omitempty"` // default 30h (offsite watchdog)
	// SnapshotMaxLag is how long a complete push may wait on the offsite
	// host for the snapshot that keeps it before its watchdog alerts.
	SnapshotMaxLag string `yaml:"snapshot_max_lag,omitempty"` // default 3h (offsite watchdog)
	// WatchdogMaxAge is how old an offsite host's last watchdog report may
	// get before the server's stale check alerts: a dead Pi, or one whose
	// network is gone.
	WatchdogMaxAge  string `yaml:"watchdog_max_age,omitempty"`  // default 3h (server stale check)
	DiskWarnPercent int    `yaml:"disk_warn_percent,omitempty"` // default 90 server, 95 offsite
	// Suspicious judges each night's archive against the recent ones.
	Suspicious *Suspicious `yaml:"suspicious,omitempty"`
}

// Suspicious is when the nightly job mails SUSPICIOUS BACKUP: an archive
// with far fewer files or bytes than the median of the recent nights (a
// source emptied, a mount gone, files deleted), or far more new data (a
// mass encryption rewrites every file: it all deduplicates against
// nothing). The night's prune is skipped, so no older archive goes.
type Suspicious struct {
	// DropPercent: fewer files, or fewer bytes, than this percent of the
	// median is suspicious (default 50).
	DropPercent int `yaml:"drop_percent,omitempty"`
	// NewFactor and NewPercent: new data above NewFactor times the median
	// new data and above NewPercent of the archive's size (default 10 and
	// 25).
	NewFactor  int `yaml:"new_factor,omitempty"`
	NewPercent int `yaml:"new_percent,omitempty"`
	// Nights is how many recent archives the median is taken over
	// (default 14); fewer than MinNights (default 5) judges nothing.
	Nights    int `yaml:"nights,omitempty"`
	MinNights int `yaml:"min_nights,omitempty"`
}

// Audit sets the rolling checks. Every segment of every copy (the NAS
// mirror, the offsite mirror) is hashed where it lies and compared with
// the repo's within CoverDays, a share of the bytes each night; every repo
// is read whole by borg check --verify-data within VerifyDays, one repo a
// night when it is due.
type Audit struct {
	CoverDays  int `yaml:"cover_days,omitempty"`  // default 30
	VerifyDays int `yaml:"verify_days,omitempty"` // default 30
}

// Timeouts bound each kind of borg run, as Go durations: a hung disk or
// a stuck lock must end a job with a mail, not hold the host's lock for
// ever. A repo's own timeout still bounds its create.
type Timeouts struct {
	Create  string `yaml:"create,omitempty"`  // default 20h
	Prune   string `yaml:"prune,omitempty"`   // default 1h
	Compact string `yaml:"compact,omitempty"` // default 4h
	Check   string `yaml:"check,omitempty"`   // borg check --repository-only, default 12h
	Verify  string `yaml:"verify,omitempty"`  // borg check --verify-data, default 48h
	List    string `yaml:"list,omitempty"`    // borg list (the sync's guard, the restore test), default 15m
	Extract string `yaml:"extract,omitempty"` // the restore test, default 2h
}

// Nightly is the nightly window: repos are independent (each its own
// borg lock, cache and record), so the job backs up several at once. A
// disk does not get faster with more writers (a USB disk's head seeks
// between them), while each repo's borg uses about one CPU: the default
// is one repo per disk at a time, every disk at once.
type Nightly struct {
	// Parallel bounds the repos backed up at once (default: one per
	// disk). Set, it also lifts the one-per-disk rule up to itself, unless
	// PerDisk says otherwise: the user has said what the disks take.
	Parallel int `yaml:"parallel,omitempty"`
	// PerDisk bounds the repos at once on one disk (default 1, or
	// Parallel when that is set).
	PerDisk int `yaml:"per_disk,omitempty"`
}

// Unlock is where the offsite host fetches its LUKS key at boot.
type Unlock struct {
	// Server is the host that serves the key (its serve-key forced command).
	Server string `yaml:"server"`
	// Identity is the Pi's private key for that fetch (default /etc/borgkit/ssh/unlock_ed25519).
	Identity string `yaml:"identity,omitempty"`
	// Retry is how long after a failed unlock run the timer tries again
	// (default 3m, at least 10s): how soon the disk opens once the server
	// is back.
	Retry string `yaml:"retry,omitempty"`
}

// Snapshots is the offsite host's snapshot retention. The host keeps the
// largest retention it has ever been given (see layout.SnapshotRetentionFile):
// a config that asks for less takes effect only after `borgkit snapshots
// lower-retention` on that host, so whoever can edit the config on the
// server cannot shorten the offsite history by provisioning.
type Snapshots struct {
	// Daily keeps the first snapshot of each of the last Daily days that
	// have one (at least 1); Weekly the first of each of the last Weekly
	// ISO weeks. The newest snapshot is always kept.
	Daily  int `yaml:"daily"`
	Weekly int `yaml:"weekly"`
}

// Pull is syncoid replication of a dataset from a live server.
type Pull struct {
	// Host is the live server: an address, or the name of a server host in
	// this file, whose provisioning then authorizes this host's pull key
	// for `borgkit job pull-guard` only.
	Host   string `yaml:"host"`
	Source string `yaml:"source"` // dataset on the live server
	Target string `yaml:"target"` // dataset here
	User   string `yaml:"user,omitempty"`
}
