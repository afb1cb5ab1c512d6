package layout

import (
	"path"
	"strings"
	"time"
)

// borgkit's own places on every host.
const (
	EtcDir     = "/etc/borgkit"
	ConfigFile = EtcDir + "/borgkit.yaml"
	// HostFile names the host a machine is in the config, for its jobs: a
	// Tailscale name or a renamed machine must not change what a job does.
	HostFile = EtcDir + "/host"
	// KeysDir holds generated secrets (0700): passphrases, key exports,
	// LUKS keyfiles and header backups, unlock key pairs.
	KeysDir = EtcDir + "/keys"
	// RevokedDir holds a marker per offsite host whose unlock was revoked.
	RevokedDir = EtcDir + "/revoked"
	// SSHDir is the offsite host's unlock side: the server's host key and
	// the identity the unlock fetches its LUKS key with.
	SSHDir           = EtcDir + "/ssh"
	UnlockKnownHosts = SSHDir + "/known_hosts"
	UnlockIdentity   = SSHDir + "/unlock_ed25519"
	// ReportIdentity is the offsite host's key for its watchdog report to
	// the server (the forced command watchdog-report there); it checks the
	// server's host key against UnlockKnownHosts too.
	ReportIdentity = SSHDir + "/report_ed25519"
	// RepoIdentity is the key borg logs in to a remote repo's borg server
	// with (BORG_RSH), and RepoKnownHosts the host keys of those servers,
	// written from the repos' host_key: borg never trusts a key on first
	// use, nor one root's own known_hosts happens to hold.
	RepoIdentity   = SSHDir + "/repo_ed25519"
	RepoKnownHosts = SSHDir + "/repo_known_hosts"

	VarDir = "/var/lib/borgkit"
	// KitCache keeps the Debian packages of the recovery bundle's offline
	// kit between bundles, with apt's own state for fetching them.
	KitCache = "/var/cache/borgkit/kit"
	StateDir = VarDir + "/state"
	// LastGoodConfig is the last config a job loaded, kept in the state
	// directory (0600: it may hold the ping URL): a job that cannot load
	// the config alerts through this one's mail, ping and textfile.
	LastGoodConfig = ".last-good-config.yaml"
	// WatchdogReports is the directory under the state directory where a
	// server keeps the last report of each offsite host's watchdog.
	WatchdogReports = "watchdog-reports"
	// SnapshotRetentionFile is the offsite host's own record of the
	// snapshot retention it keeps: a config pushed from the server can
	// raise it, never lower it (see `borgkit snapshots lower-retention`).
	SnapshotRetentionFile = VarDir + "/snapshot-retention.json"
	// VMXMLDir keeps the definition of each configured VM (NAME.xml), as
	// virsh dumpxml gave it before the VM's backup.
	VMXMLDir = VarDir + "/vm-xml"
	// MachinesDir holds systemd-nspawn machines (a directory or NAME.raw
	// each); NspawnDir their NAME.nspawn settings.
	MachinesDir = "/var/lib/machines"
	NspawnDir   = "/etc/systemd/nspawn"
	LogDir      = "/var/log/borgkit"
	// LockFile is the host-wide borg lock every job holds while borg runs.
	LockFile = "/run/borgkit/borg.lock"

	Binary        = "/usr/local/bin/borgkit"
	CronFile      = "/etc/cron.d/borgkit"
	LogrotateFile = "/etc/logrotate.d/borgkit"
	SystemdDir    = "/etc/systemd/system"
)

// Files borgkit shares with the system: it edits only its marked block in
// the first four and writes the others whole.
const (
	Fstab          = "/etc/fstab"
	RootSSHDir     = "/root/.ssh"
	SSHConfig      = RootSSHDir + "/config"
	KnownHosts     = RootSSHDir + "/known_hosts"
	AuthorizedKeys = RootSSHDir + "/authorized_keys"
	// SSHKey is the server's push key (and an archive host's pull key).
	SSHKey = RootSSHDir + "/borgkit_ed25519"
	// HashKey is the server's key for the offsite copies' hashes: the
	// offsite host authorizes it for serve-hashes only.
	HashKey          = RootSSHDir + "/borgkit_hash_ed25519"
	Msmtprc          = "/etc/msmtprc"
	ServerHostKeyPub = "/etc/ssh/ssh_host_ed25519_key.pub"
	// BorgHome is the home borg keeps its cache, security and keys
	// directories under (root's: the jobs run as root).
	BorgHome = "/root"
)

// Marker starts the first line of every file borgkit writes whole; a file
// without it is someone else's and is never overwritten.
const Marker = "Managed by borgkit"

// Managed is that first line's text (after the comment sign).
func Managed() string {
	return Marker + " from " + ConfigFile + "; local edits are overwritten."
}

// PassphraseFile is the default file of a repo's passphrase.
func PassphraseFile(repo string) string { return path.Join(KeysDir, repo+".pass") }

// KeyExport is where the server keeps a repo's `borg key export`.
func KeyExport(repo string) string { return path.Join(KeysDir, repo+".borg-key") }

// LUKSKeyfile is the default keyfile of disk on host, kept by the host
// that serves it (the server), never by the host that owns the disk.
func LUKSKeyfile(host, disk string) string { return path.Join(KeysDir, host+"-"+disk+".key") }

// HeaderBackup is where the server keeps an offsite disk's LUKS header
// backup, for the recovery bundle.
func HeaderBackup(host, disk string) string {
	return path.Join(KeysDir, host+"-"+disk+"-header.img")
}

// UnlockKey is where the server keeps the key pair an offsite host uses to
// fetch its LUKS key at boot.
func UnlockKey(offsite string) string { return path.Join(KeysDir, offsite+"-unlock_ed25519") }

// ReportKey is where the server keeps the key pair an offsite host sends
// its watchdog report with.
func ReportKey(offsite string) string { return path.Join(KeysDir, offsite+"-report_ed25519") }

// RevokedMarker is the file whose presence stops serving offsite's key.
func RevokedMarker(offsite string) string { return path.Join(RevokedDir, offsite) }

// Mapper is /dev/mapper/NAME.
func Mapper(name string) string { return "/dev/mapper/" + name }

// On an offsite host's backup disk.
const (
	// MirrorDir is the directory on an offsite host's backup disk that
	// servers push to: the rrsync root, one directory per repo below it.
	MirrorDir = "borgkit"
	// HeartbeatDir is where servers leave their heartbeats, relative to the
	// mirror root (so the rrsync key reaches it).
	HeartbeatDir = ".heartbeat"
	// heartbeatSuffix ends every heartbeat file's name.
	heartbeatSuffix = "-last-success"
)

// MirrorRoot is the push target on a backup disk mounted at mount.
func MirrorRoot(mount string) string { return path.Join(mount, MirrorDir) }

// The roots serve-hashes answers for on an offsite host, by the names
// requests give them: the mirror, and its snapshots (SnapshotRoot), whose
// top-level directories are versions of the mirror's tree.
const (
	HashRootMirror    = "mirror"
	HashRootSnapshots = "snapshots"
)

// SnapshotsCopy names an offsite mirror's snapshots as a copy in the
// audit's mails, records and the dashboard.
func SnapshotsCopy(mirror string) string { return mirror + "-snapshots" }

// ServeHashesCommand is the forced command of the server's hash key on an
// offsite host: names, sizes and SHA-256 sums of the files under each
// root (NAME=DIR), nothing else.
func ServeHashesCommand(roots ...string) string {
	return Binary + " job serve-hashes " + strings.Join(roots, " ")
}

// The offsite host's push user: the servers' push key logs in as it, and it
// owns the mirror's directories and nothing else, so what the snapshots
// froze (root's inodes) is out of its reach.
const (
	// BorgServeHome is the home of a borg-server host's borg user: root's,
	// so the clients' key file stays root's (sshd reads it as the user);
	// borg serve keeps its own config and cache in the user's directories
	// below it.
	BorgServeHome = "/var/lib/borgkit-serve"
	// BorgServeShell runs the forced command (borg serve); a key allows
	// nothing else.
	BorgServeShell = "/bin/sh"

	PushUser           = "borgkit-push"
	PushHome           = "/var/lib/borgkit-push"
	PushSSHDir         = PushHome + "/.ssh"
	PushAuthorizedKeys = PushSSHDir + "/authorized_keys"
	// PushShell runs the forced command (rrsync); the key allows nothing else.
	PushShell = "/bin/sh"
)

// SnapshotDir holds the offsite host's snapshots of its mirror, beside the
// mirror on the backup disk and outside the push user's reach (root, 0700).
const SnapshotDir = "borgkit-snapshots"

// LostFound is the directory mkfs puts at the root of an ext4 filesystem:
// a mirror kept at the top of its disk has it beside the repos.
const LostFound = "lost+found"

// SnapshotRoot is where the snapshots of the mirror on mount live.
func SnapshotRoot(mount string) string { return path.Join(mount, SnapshotDir) }

// snapshotLayout names a snapshot by its time in UTC: names sort as times
// do, and hold no ':' (which rsync and scp read as host:path).
const snapshotLayout = "2006-01-02T150405Z"

// SnapshotName is the name of a snapshot taken at t.
func SnapshotName(t time.Time) string { return t.UTC().Format(snapshotLayout) }

// SnapshotTime is when the snapshot named name was taken; false for a name
// that is not a snapshot's (a half-made one, anything else).
func SnapshotTime(name string) (time.Time, bool) {
	t, err := time.Parse(snapshotLayout, name)
	return t, err == nil && SnapshotName(t) == name
}

// HeartbeatName is the file a server's sync leaves in HeartbeatDir.
func HeartbeatName(server string) string { return server + heartbeatSuffix }

// HeartbeatServer is the server a heartbeat file name belongs to.
func HeartbeatServer(name string) (string, bool) {
	s, ok := strings.CutSuffix(name, heartbeatSuffix)
	return s, ok && s != ""
}

// GuestArchivePrefix starts the archives of one guest ("vm:NAME:",
// "container:NAME:"), followed by the time. Guest names never hold ':'.
func GuestArchivePrefix(kind, name string) string { return kind + ":" + name + ":" }

// Names borg sees.
const (
	// ArchivePrefix starts every archive the nightly job creates.
	ArchivePrefix = "nightly-"
	// NightlySnapshot is the ZFS snapshot a nightly backs up from.
	NightlySnapshot = "borgkit-nightly"
	// TextfileName is the Prometheus textfile in alerts.textfile_dir.
	TextfileName = "borgkit.prom"
)

// A retired file of a hand-built setup is moved aside, never deleted: the
// change is undone by moving it back.
const (
	// RetiredSuffix ends a retired file's new name (the suffix WriteFile
	// gives a replaced file's previous content too).
	RetiredSuffix = ".borgkit-old"
	// RetiredDir keeps retired files whose directory reads every file in
	// it whatever its name (cron.d, logrotate.d): there a FILE.borgkit-old
	// would still be run.
	RetiredDir = VarDir + "/retired"
)

// dropInDirs are the directories whose every file is read by a daemon:
// cron (other crons than Debian's read dotted names too) and logrotate
// (which skips only its own list of suffixes).
var dropInDirs = []string{"/etc/cron.d", "/etc/logrotate.d"}

// Retired is where a retired file is kept: FILE.borgkit-old beside it, or
// under RetiredDir for a file of a drop-in directory.
func Retired(p string) string {
	p = path.Clean(p)
	for _, d := range dropInDirs {
		if path.Dir(p) == d {
			return RetiredDir + p + RetiredSuffix
		}
	}
	return p + RetiredSuffix
}
