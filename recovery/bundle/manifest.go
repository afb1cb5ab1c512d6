package bundle

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/borgkit/borgkit/recovery/kit"
)

// Format names the layout of bundle.json; a reader refuses any other.
const Format = "borgkit-recovery-bundle/1"

// Fixed names inside a bundle.
const (
	IndexName    = "bundle.json"
	ManifestName = "MANIFEST.sha256"
	RunbookMD    = "runbook.md"
	RunbookHTML  = "runbook.html"
	// DrillLogDir is where a drill leaves its report when the bundle is
	// writable (it is 0500 as written, so normally the report goes elsewhere).
	DrillLogDir = "drill-log"
)

// Roles of the files in a bundle.
const (
	RoleLUKSKeyfile = "luks-keyfile"
	RoleLUKSHeader  = "luks-header"
	RoleBorgKey     = "borg-key-export"
	RolePaperKey    = "borg-paper-key"
	RolePassphrase  = "borg-passphrase"
	RoleZFSKey      = "zfs-key"
	RoleCredentials = "share-credentials"
	RoleKnownHosts  = "known-hosts"
	RoleConfig      = "config"
	RoleRunbook     = "runbook"
	RoleIndex       = "index"
	// The offline install kit: Debian packages, their flat repository's
	// index (Packages, Release) and borgkit's builds.
	RoleKitDeb     = "kit-deb"
	RoleKitIndex   = "kit-index"
	RoleKitBorgkit = "kit-borgkit"
)

// Manifest is what bundle.json records: the site as the bundle knows it
// and every file with its role. Write returns it; Open reads it back.
type Manifest struct {
	Format  string    `json:"format"`
	Site    string    `json:"site,omitempty"`
	Server  string    `json:"server"`
	Created time.Time `json:"created"`
	Version string    `json:"borgkit_version,omitempty"`
	Hosts   []Host    `json:"hosts"`
	Disks   []Disk    `json:"disks"`
	// Datasets are the encrypted ZFS datasets whose key the bundle holds
	// (or, for keylocation=prompt, whose passphrase a person must type).
	Datasets []Dataset `json:"datasets,omitempty"`
	Repos    []Repo    `json:"repos"`
	Files    []File    `json:"files"`
	// Stick is the encrypted USB stick the bundle was written onto
	// (recovery-bundle --encrypt); nil for a plain directory.
	Stick *Stick `json:"stick,omitempty"`
	// Kit is the offline install kit; nil when the bundle was written
	// without one.
	Kit *Kit `json:"kit,omitempty"`

	// Dir is where the bundle lives; Warnings are what Write wants the user
	// to know (not on a removable device, a paper key skipped); Digest is the
	// SHA-256 of MANIFEST.sha256, worth writing down next to the stick.
	Dir      string   `json:"-"`
	Warnings []string `json:"-"`
	Digest   string   `json:"-"`
}

// Stick is an encrypted USB stick holding the bundle: LUKS2 on the whole
// device, opened with a passphrase a person types, ext4 inside.
type Stick struct {
	LUKSUUID string `json:"luks_uuid"`
	FSUUID   string `json:"fs_uuid"`
	// Mapper is the name the runbook opens it as; Dir the bundle's
	// directory on its filesystem.
	Mapper string `json:"mapper"`
	Dir    string `json:"dir"`
}

// Kit is what the rescue machine installs from the bundle, with no
// network: Debian's packages for restoring, and borgkit itself.
type Kit struct {
	Debian  []KitRepo   `json:"debian,omitempty"`
	Borgkit []KitBinary `json:"borgkit,omitempty"`
	// Missing says, part by part, what the kit lacks and why (the mirror
	// could not be reached and no earlier fetch was cached).
	Missing []string `json:"missing,omitempty"`
}

// KitRepo is one architecture's packages, a flat apt repository in Dir.
type KitRepo struct {
	Arch    string    `json:"arch"`
	Suite   string    `json:"suite"`
	Base    string    `json:"base"`
	Mirror  string    `json:"mirror"`
	Fetched time.Time `json:"fetched"`
	Stale   string    `json:"stale,omitempty"`
	Wanted  []string  `json:"wanted"`
	Dir     string    `json:"dir"`
	// Debs are pinned by name, version, architecture and SHA-256.
	Debs []kit.Deb `json:"debs"`
}

// KitBinary is borgkit built for one architecture.
type KitBinary struct {
	Arch string `json:"arch"`
	Path string `json:"path"`
}

// KitArches are the architectures the kit has packages for.
func (k *Kit) KitArches() []string {
	var a []string
	for _, r := range k.Debian {
		a = append(a, r.Arch)
	}
	return a
}

// Host is one machine of the site, for the runbook's address table.
type Host struct {
	Name          string `json:"name"`
	Role          string `json:"role"`
	Address       string `json:"address"`
	SSHUser       string `json:"ssh_user,omitempty"`
	SSHPort       int    `json:"ssh_port,omitempty"`
	HostPublicKey string `json:"host_public_key,omitempty"`
	// MirrorRoot is where an offsite host keeps the mirrors when the site
	// set it (a hand-built mirror adopted in place); Retired are the old
	// setup's files provisioning moved aside there.
	MirrorRoot string   `json:"mirror_root,omitempty"`
	Retired    []string `json:"retired,omitempty"`
}

// Disk is a LUKS disk whose key the bundle carries.
type Disk struct {
	Host string `json:"host"`
	Name string `json:"name"`
	// Device is the stable path from the config (/dev/disk/by-id/...).
	Device     string `json:"device,omitempty"`
	FSUUID     string `json:"fs_uuid,omitempty"` // the filesystem inside the LUKS container
	FSType     string `json:"fstype"`
	Mountpoint string `json:"mountpoint"`
	Mapper     string `json:"mapper"`
	// LUKSUUID, Keyslot and KDF are read from the header backup when the
	// bundle is written; Verify and the drill compare the disk against them.
	LUKSUUID string `json:"luks_uuid,omitempty"`
	Keyslot  int    `json:"keyslot"`
	KDF      string `json:"kdf,omitempty"`
	Keyfile  string `json:"keyfile"`
	Header   string `json:"header"`
	// KeyHost keeps the keyfile and header backup (the server).
	KeyHost string `json:"key_host,omitempty"`
	// ReposDir is where the server's mirror puts the repos on this disk,
	// relative to the disk's root ("" for the root itself); Repos names them.
	ReposDir string   `json:"repos_dir"`
	Repos    []string `json:"repos,omitempty"`
}

// ID names the disk as HOST/DISK.
func (d *Disk) ID() string { return d.Host + "/" + d.Name }

// Dataset is an encryption root of a host's ZFS pool.
type Dataset struct {
	Host      string `json:"host"`
	Name      string `json:"name"` // pool/path
	KeyFormat string `json:"keyformat,omitempty"`
	// Keyfile is bundle-relative; "" when the key is a passphrase typed at
	// a prompt. Source is where the host keeps it (its keylocation).
	Keyfile string `json:"keyfile,omitempty"`
	Source  string `json:"source,omitempty"`
}

// Pool is the pool a dataset lives in.
func (d *Dataset) Pool() string { return strings.SplitN(d.Name, "/", 2)[0] }

// Repo is a borg repository and where the bundle keeps its secrets.
type Repo struct {
	Host       string   `json:"host"`
	Name       string   `json:"name"`
	Path       string   `json:"path"`
	Encryption string   `json:"encryption"`
	Sources    []string `json:"sources,omitempty"`
	Canary     string   `json:"canary,omitempty"`
	// ArchivePrefix is set when the site kept an adopted repo's own
	// archive names (borgkit's are nightly-<date>).
	ArchivePrefix string `json:"archive_prefix,omitempty"`
	// Bundle-relative files; empty when the repo has none or they were not
	// on the server.
	// HostKey is a repo on a borg server's known_hosts line ("[HOST]:PORT
	// TYPE BASE64"), from the config's pinned host_key; Path is then its
	// ssh:// location.
	HostKey    string `json:"host_key,omitempty"`
	KeyExport  string `json:"key_export,omitempty"`
	Passphrase string `json:"passphrase,omitempty"`
	PaperKey   string `json:"paper_key,omitempty"`
	// VMs are the libvirt guests whose disk images and definitions (saved
	// by the nightly job into VMXML) the repo backs up, each in archives
	// of its own (vm:NAME:TIME); Containers the nspawn machines
	// (container:NAME:TIME).
	VMs        []string `json:"vms,omitempty"`
	VMXML      string   `json:"vm_xml,omitempty"`
	Containers []string `json:"containers,omitempty"`
	// Copies are the mirrors holding a copy of the repo.
	Copies []Copy `json:"copies,omitempty"`
}

// Remote reports whether the repo is on a borg server (Path is ssh://).
func (r *Repo) Remote() bool { return r.HostKey != "" }

// KeyfileMode reports whether the repo's key lives outside the repo, so
// the export is the only copy of it.
func (r *Repo) KeyfileMode() bool { return strings.HasPrefix(r.Encryption, "keyfile") }

// Encrypted reports whether the repo needs a passphrase.
func (r *Repo) Encrypted() bool { return r.Encryption != "" && r.Encryption != "none" }

// Copy is one mirror of a repo.
type Copy struct {
	Mirror string `json:"mirror"`
	Host   string `json:"host,omitempty"` // "" for a local path such as the NAS share
	Path   string `json:"path"`
	// Share is the CIFS share a local mirror lives on ("//nas/backups"),
	// mounted at ShareMount on the server, so the runbook can say how to
	// reach the copy from another machine.
	Share      string `json:"share,omitempty"`
	ShareMount string `json:"share_mount,omitempty"`
	// Credentials is the bundle-relative credentials file of the share,
	// when the config asks for it (shares[].in_bundle).
	Credentials string `json:"credentials,omitempty"`
}

// File is one file of the bundle.
type File struct {
	Path   string `json:"path"` // relative, slash-separated
	Role   string `json:"role"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Source is where the file came from on the server ("" when rendered).
	Source string `json:"source,omitempty"`
	// For names the disk (HOST/DISK) or repo the file belongs to.
	For string `json:"for,omitempty"`
}

// File finds a file entry by path.
func (m *Manifest) File(p string) (*File, bool) {
	for i := range m.Files {
		if m.Files[i].Path == p {
			return &m.Files[i], true
		}
	}
	return nil, false
}

// Repo finds a repo by name (first match: names are unique per host, and a
// site rarely repeats them across hosts).
func (m *Manifest) Repo(name string) (*Repo, bool) {
	for i := range m.Repos {
		if m.Repos[i].Name == name {
			return &m.Repos[i], true
		}
	}
	return nil, false
}

// Disk finds a disk by HOST/DISK or, when unambiguous, by DISK alone.
func (m *Manifest) Disk(id string) (*Disk, bool) {
	var found *Disk
	n := 0
	for i := range m.Disks {
		d := &m.Disks[i]
		if d.ID() == id {
			return d, true
		}
		if d.Name == id {
			found, n = d, n+1
		}
	}
	return found, n == 1
}

// Open reads a bundle's bundle.json. It checks nothing else: Verify does.
func Open(dir string) (*Manifest, error) {
	b, err := os.ReadFile(path.Join(dir, IndexName))
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("open bundle: %s is damaged: %w", IndexName, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("open bundle: %s has format %q, this borgkit reads %q", IndexName, m.Format, Format)
	}
	m.Dir = dir
	return &m, nil
}

// safeName is what a bundle-relative path may look like: config names are
// lowercase letters, digits, '_', '.' and '-', so nothing sha256sum would
// escape and nothing that leaves the directory.
// Debian's package file names add '+' and '~' (libc6_2.36-9+deb12u4,
// 2.6.1-4~deb12u2), which sha256sum does not escape either.
var safeName = regexp.MustCompile(`^[A-Za-z0-9_.+~-]+(/[A-Za-z0-9_.+~-]+)*$`)

func checkRel(p string) error {
	if !safeName.MatchString(p) || path.Clean(p) != p || strings.HasPrefix(p, "..") || strings.Contains(p, "/../") || strings.HasPrefix(p, ".") {
		return fmt.Errorf("bundle path %q: want plain relative names (letters, digits, '_', '.', '-')", p)
	}
	return nil
}

func sumHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// renderManifest writes sha256sum's own format ("HASH  NAME", text mode,
// sorted), so `sha256sum -c MANIFEST.sha256` checks the bundle on any
// machine without borgkit.
func renderManifest(sums map[string]string) []byte {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	return b.Bytes()
}

var manifestLine = regexp.MustCompile(`^([0-9a-f]{64}) [ *](.+)$`)

// manifestEntry is one line of MANIFEST.sha256.
type manifestEntry struct {
	Line int
	Sum  string
	Name string
}

// parseManifest reads MANIFEST.sha256. Malformed lines are returned as
// problems rather than an error, so Verify can still check the rest.
func parseManifest(b []byte) (entries []manifestEntry, problems []string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		m := manifestLine.FindStringSubmatch(line)
		if m == nil || checkRel(m[2]) != nil {
			problems = append(problems, fmt.Sprintf("%s line %d is malformed: %q", ManifestName, n, truncate(line, 100)))
			continue
		}
		entries = append(entries, manifestEntry{Line: n, Sum: m[1], Name: m[2]})
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		problems = append(problems, ManifestName+" does not end with a newline: it was cut short or damaged")
	}
	return entries, problems
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
