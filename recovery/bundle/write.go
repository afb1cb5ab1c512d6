package bundle

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/digest"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/progress"
	"github.com/borgkit/borgkit/recovery/kit"
	"github.com/borgkit/borgkit/recovery/luks2"
)

// Source is the server's filesystem as Write reads it: paths are as on
// the server, and Path maps one to what this process opens. A
// host.NewLocal is the live server; a host.NewRooted is a provisioned
// --root tree (tests, or a server's disk mounted elsewhere).
type Source interface {
	Path(p string) string
	ReadFile(ctx context.Context, p string) ([]byte, error)
	// Live is false for a rooted tree: borg then gets BORG_BASE_DIR inside
	// it, as provisioning gave it.
	Live() bool
	Run(ctx context.Context, c host.Cmd) (host.Result, error)
}

// Options tune Write.
type Options struct {
	// Paper also renders each borg key export the way `borg key export
	// --paper` prints it, for typing back in from a printout.
	Paper bool
	// ConfigData is the site config to include as borgkit.yaml; nil reads
	// /etc/borgkit/borgkit.yaml from the source when it is there.
	ConfigData []byte
	// Version is borgkit's version, recorded in bundle.json.
	Version string
	// Owner, when set, owns every file and directory of the bundle, so a
	// user can verify it without root; default the writing user (root).
	Owner *host.Owner
	// Now defaults to time.Now.
	Now func() time.Time
	// Reach opens another host of the site, for the secrets that host
	// keeps itself: an archive host's repo passphrase, key export and ZFS
	// dataset keys, a LUKS keyfile whose key host is not the server. nil
	// reads only the server, and a secret kept elsewhere fails the bundle.
	Reach func(ctx context.Context, h *config.Host) (Source, error)
	// Progress shows each phase: the key checks take seconds each.
	Progress *progress.Line
	// Stick, when the bundle goes onto an encrypted stick, is recorded in
	// bundle.json and gives the runbook its first step: opening the stick.
	Stick *Stick
	// Kit, when set, puts the offline install kit into the bundle.
	Kit *KitInput
}

// KitInput is the offline install kit as fetched: each architecture's
// packages (in the kit cache) and borgkit's builds.
type KitInput struct {
	Debian  []*kit.Repo
	Borgkit []KitBuild
	// Missing is what could not be had, and why; the bundle records it.
	Missing []string
}

// KitBuild is borgkit's executable for one architecture.
type KitBuild struct {
	Arch string
	Data []byte
	// Source is where it was read from.
	Source string
}

// pending is a bundle file before it is written.
type pending struct {
	File
	data []byte
	// keptOn is the host a secret was read from ("" for what is not a
	// secret): the bundle's fingerprint record goes there.
	keptOn string
}

// Write collects the recovery bundle of server from src into dir. dir
// must not exist or be empty, and must not lie on the server's backup
// disk, in a repo or local mirror, or in anything a repo backs up: Write
// refuses those before writing anything (errors wrap ErrUnsafeTarget).
// It proves each LUKS keyfile opens its header backup and each borg key
// export opens with its passphrase before it finishes; a bundle that
// would not unlock is an error, not a warning. Nothing is left behind on
// failure.
func Write(ctx context.Context, cfg *config.Config, server *config.Host, src Source, dir string, opts Options) (*Manifest, error) {
	if cfg == nil || server == nil || src == nil {
		return nil, errors.New("write bundle: config, server and source are required")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	target, err := checkTarget(server, src, dir)
	if err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	c := &collector{ctx: ctx, src: src, reach: opts.Reach, p: opts.Progress}
	defer c.p.Done()
	if err := c.collect(cfg, server, now(), opts); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	m := c.m

	w := &writer{target: target, owner: opts.Owner}
	if err := w.begin(); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			w.abort()
		}
	}()
	if err := c.writeAndProve(w); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	if err := c.finish(w); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	if err := w.seal(); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	ok = true
	m.Dir = target
	m.Warnings = append(m.Warnings, c.leaveFingerprints(now())...)
	if warn := removableWarning(target); warn != "" {
		m.Warnings = append(m.Warnings, warn)
	}
	return m, nil
}

// Layout is the manifest a bundle written on server would have, from the
// config alone: every host, disk, dataset, repo and bundle file name. No
// file is read and nothing is proven, so it has no checksums and no LUKS
// UUID; RenderRunbook of it shows the runbook a bundle of this config
// gets, for review (and for the runbook's golden tests).
func Layout(cfg *config.Config, server *config.Host, now time.Time) (*Manifest, error) {
	c := &collector{ctx: context.Background(), layoutOnly: true}
	if err := c.collect(cfg, server, now, Options{}); err != nil {
		return nil, fmt.Errorf("bundle layout: %w", err)
	}
	for _, rel := range c.order {
		f := c.files[rel].File
		f.SHA256, f.Size = "", 0
		c.m.Files = append(c.m.Files, f)
	}
	c.m.Files = append(c.m.Files, File{Path: RunbookMD, Role: RoleRunbook}, File{Path: RunbookHTML, Role: RoleRunbook})
	sort.Slice(c.m.Files, func(i, j int) bool { return c.m.Files[i].Path < c.m.Files[j].Path })
	return c.m, nil
}

// collect builds the manifest and gathers every file from the hosts that
// keep them.
func (c *collector) collect(cfg *config.Config, server *config.Host, now time.Time, opts Options) error {
	c.cfg, c.server = cfg, server
	c.files, c.srcs = map[string]*pending{}, map[string]Source{server.Name: c.src}
	c.m = &Manifest{Format: Format, Site: cfg.Site, Server: server.Name, Created: now.UTC().Truncate(time.Second), Version: opts.Version, Stick: opts.Stick}
	for _, h := range cfg.Hosts {
		c.m.Hosts = append(c.m.Hosts, Host{Name: h.Name, Role: string(h.Role), Address: h.Address,
			SSHUser: h.SSH.UserOrDefault(), SSHPort: h.SSH.PortOrDefault(), HostPublicKey: h.SSH.HostPublicKey,
			MirrorRoot: h.MirrorRoot, Retired: h.Retire})
	}
	if err := c.disks(cfg, server); err != nil {
		return err
	}
	if err := c.datasets(cfg); err != nil {
		return err
	}
	if err := c.repos(cfg, server, opts.Paper); err != nil {
		return err
	}
	if len(c.order) == 0 {
		return fmt.Errorf("%s keeps no LUKS keyfile and no borg key: there is nothing to recover with", server.Name)
	}
	c.extras(opts.ConfigData)
	if opts.Kit != nil {
		return c.kit(opts.Kit, now)
	}
	return nil
}

// kit adds the offline install kit: each architecture's packages as a flat
// apt repository (the .deb files, Packages, Release), pinned in bundle.json,
// and borgkit's builds.
func (c *collector) kit(in *KitInput, now time.Time) error {
	k := &Kit{Missing: append([]string(nil), in.Missing...)}
	for _, r := range in.Debian {
		kr := KitRepo{Arch: r.Arch, Suite: r.Suite, Base: r.Base, Mirror: r.Mirror, Fetched: r.Fetched, Stale: r.Stale,
			Wanted: r.Wanted, Dir: kit.Dir(r.Arch), Debs: r.Debs}
		for _, d := range r.Debs {
			var data []byte
			if !c.layoutOnly {
				c.p.Status("adding %s to the kit", d.File)
				b, err := os.ReadFile(filepath.Join(r.Path, d.File))
				if err != nil {
					return fmt.Errorf("offline kit: %w", err)
				}
				if sumHex(b) != d.SHA256 {
					return fmt.Errorf("offline kit: %s in %s is not the package Debian's index pinned (sha256 %s): fetch it again", d.File, r.Path, d.SHA256)
				}
				data = b
			}
			if err := c.add(kr.Dir+"/"+d.File, RoleKitDeb, "", r.Arch, data); err != nil {
				return err
			}
		}
		index, err := r.Index()
		if err != nil && !c.layoutOnly {
			return fmt.Errorf("offline kit: %w", err)
		}
		if err := c.add(kr.Dir+"/Packages", RoleKitIndex, "", r.Arch, index); err != nil {
			return err
		}
		if err := c.add(kr.Dir+"/Release", RoleKitIndex, "", r.Arch, kit.ReleaseFile(r.Arch, now, index)); err != nil {
			return err
		}
		k.Debian = append(k.Debian, kr)
	}
	for _, b := range in.Borgkit {
		rel := "kit/borgkit/" + b.Arch + "/borgkit"
		if err := c.add(rel, RoleKitBorgkit, b.Source, b.Arch, b.Data); err != nil {
			return err
		}
		k.Borgkit = append(k.Borgkit, KitBinary{Arch: b.Arch, Path: rel})
	}
	c.m.Kit = k
	for _, miss := range k.Missing {
		c.m.Warnings = append(c.m.Warnings, "NO OFFLINE PACKAGES: "+miss)
	}
	for _, r := range k.Debian {
		if r.Stale != "" {
			c.m.Warnings = append(c.m.Warnings, fmt.Sprintf("offline kit for %s: %s", r.Arch, r.Stale))
		}
	}
	return nil
}

type collector struct {
	p      *progress.Line
	ctx    context.Context
	cfg    *config.Config
	server *config.Host
	src    Source // the server's
	reach  func(ctx context.Context, h *config.Host) (Source, error)
	srcs   map[string]Source // by host name, the server's included
	m      *Manifest
	files  map[string]*pending
	order  []string
	// layoutOnly names the files without reading or proving them (Layout).
	layoutOnly bool
}

// on is the filesystem of the host that keeps a secret: the server's, or
// another host's through Options.Reach, opened once.
func (c *collector) on(name string) (Source, error) {
	if s, ok := c.srcs[name]; ok {
		return s, nil
	}
	h, ok := c.cfg.Host(name)
	if !ok {
		return nil, fmt.Errorf("host %s is not in the config", name)
	}
	if c.reach == nil {
		return nil, fmt.Errorf("%s keeps secrets the bundle needs and this run reads only %s", name, c.server.Name)
	}
	s, err := c.reach(c.ctx, h)
	if err != nil {
		return nil, fmt.Errorf("reach %s for the secrets it keeps: %w", name, err)
	}
	c.srcs[name] = s
	return s, nil
}

// missingHint says how a missing secret comes to be, for a file that is
// not there (not for a host that cannot be reached).
func missingHint(err error, how string) string {
	if !host.IsNotExist(err) {
		return ""
	}
	return " (" + how + ")"
}

// readOn reads p from the host name.
func (c *collector) readOn(name, p string) ([]byte, error) {
	if c.layoutOnly {
		return nil, nil
	}
	src, err := c.on(name)
	if err != nil {
		return nil, err
	}
	b, err := src.ReadFile(c.ctx, p)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, name, err)
	}
	return b, nil
}

// addSecret adds a secret read from host on, for the fingerprint record.
func (c *collector) addSecret(on, rel, role, source, forID string, data []byte) error {
	if err := c.add(rel, role, source, forID, data); err != nil {
		return err
	}
	c.files[rel].keptOn = on
	return nil
}

func (c *collector) add(rel, role, source, forID string, data []byte) error {
	if err := checkRel(rel); err != nil {
		return err
	}
	if _, dup := c.files[rel]; dup {
		return fmt.Errorf("two bundle files would be named %s", rel)
	}
	c.files[rel] = &pending{File: File{Path: rel, Role: role, Source: source, For: forID, SHA256: sumHex(data), Size: int64(len(data))}, data: data}
	c.order = append(c.order, rel)
	return nil
}

// disks collects every LUKS disk of the site from its key host (the
// server, for the first seed's Pi): without the keyfile and a header
// backup, the offsite copy is an encrypted brick once the server is gone.
func (c *collector) disks(cfg *config.Config, server *config.Host) error {
	for hi := range cfg.Hosts {
		o := &cfg.Hosts[hi]
		for di := range o.Disks {
			d := &o.Disks[di]
			if d.LUKS == nil {
				continue
			}
			id := o.Name + "/" + d.Name
			c.p.Status("reading the LUKS keyfile and header backup of %s", id)
			kh := d.LUKS.KeyHost
			kp, hp := cfg.LUKSKeyfile(o, d), layout.HeaderBackup(o.Name, d.Name)
			key, err := c.readOn(kh, kp)
			if err != nil {
				return fmt.Errorf("LUKS keyfile of %s: %w%s", id, err, missingHint(err, "provision "+kh+" first"))
			}
			hdr, err := c.readOn(kh, hp)
			if err != nil {
				return fmt.Errorf("LUKS header backup of %s: %w%s", id, err, missingHint(err, fmt.Sprintf("provisioning %s with --format keeps one on %s; for a disk formatted by hand run `cryptsetup luksHeaderBackup %s --header-backup-file FILE` on %s and copy FILE to %s on %s",
					o.Name, kh, d.Device, o.Name, hp, kh)))
			}
			base := o.Name + "-" + d.Name
			disk := Disk{Host: o.Name, Name: d.Name, Device: d.Device, FSUUID: d.UUID, FSType: d.FSTypeOrDefault(),
				Mountpoint: d.Mountpoint, Mapper: d.LUKS.MapperName(d), Keyslot: -1, KeyHost: kh,
				Keyfile: "luks/" + base + ".key", Header: "luks/" + base + "-header.img"}
			for _, mr := range server.Mirrors {
				if mr.Host == o.Name && layout.Under(path.Clean(mr.Path), d.Mountpoint) {
					// The server pushes into the mirror root on the disk.
					rel, _ := filepath.Rel(d.Mountpoint, o.MirrorRootOrDefault())
					if rel == "." {
						rel = ""
					}
					disk.ReposDir = filepath.ToSlash(rel)
					for _, r := range server.Repos {
						disk.Repos = append(disk.Repos, r.Name)
					}
				}
			}
			if err := c.addSecret(kh, disk.Keyfile, RoleLUKSKeyfile, kp, id, key); err != nil {
				return err
			}
			if err := c.addSecret(kh, disk.Header, RoleLUKSHeader, hp, id, hdr); err != nil {
				return err
			}
			c.m.Disks = append(c.m.Disks, disk)
		}
	}
	return nil
}

// repos collects every repo's borg key export and passphrase from the
// host that runs the repo (the server's from the server, an archive
// host's from the archive host): a repo the bundle cannot open is a
// failed bundle, not a warning.
func (c *collector) repos(cfg *config.Config, server *config.Host, paper bool) error {
	hosts := []*config.Host{server}
	for i := range cfg.Hosts {
		if cfg.Hosts[i].Name != server.Name {
			hosts = append(hosts, &cfg.Hosts[i])
		}
	}
	used := map[string]bool{}
	creds := map[string]string{} // share source -> bundle file
	for _, h := range hosts {
		for ri := range h.Repos {
			r := &h.Repos[ri]
			br := Repo{Host: h.Name, Name: r.Name, Path: r.Path, Encryption: r.EncryptionMode(),
				Sources: append([]string(nil), r.Sources...), Canary: r.Canary, ArchivePrefix: r.ArchivePrefix}
			if r.Remote() {
				f := strings.Fields(r.HostKey)
				br.Path, br.HostKey = r.BorgLocation(), r.Location().KnownHostsName()+" "+f[0]+" "+f[1]
			}
			if len(r.VMs) > 0 {
				br.VMs, br.VMXML = append([]string(nil), r.VMs...), layout.VMXMLDir
			}
			br.Containers = append([]string(nil), r.Containers...)
			for _, mr := range h.Mirrors {
				cp := Copy{Mirror: mr.Name, Host: mr.Host, Path: path.Join(mr.Path, r.Name)}
				if t, ok := cfg.Host(mr.Host); ok && mr.Host != "" {
					cp.Path = path.Join(t.MirrorRootOrDefault(), r.Name)
				}
				for si := range h.Shares {
					sh := &h.Shares[si]
					if mr.Host != "" || !layout.Under(path.Clean(mr.Path), sh.Mountpoint) {
						continue
					}
					cp.Share, cp.ShareMount = sh.Source, sh.Mountpoint
					if sh.InBundle {
						f, err := c.shareCredentials(h, sh, creds)
						if err != nil {
							return err
						}
						cp.Credentials = f
					}
				}
				br.Copies = append(br.Copies, cp)
			}
			if r.Encrypted() {
				if err := c.repoSecrets(h, r, &br, used, paper); err != nil {
					return err
				}
			}
			c.m.Repos = append(c.m.Repos, br)
		}
	}
	return nil
}

// shareCredentials adds a share's credentials file once, when the config
// asks for it (shares[].in_bundle).
func (c *collector) shareCredentials(h *config.Host, sh *config.Share, done map[string]string) (string, error) {
	if f, ok := done[sh.Source]; ok {
		return f, nil
	}
	b, err := c.readOn(h.Name, sh.Credentials)
	if err != nil {
		return "", fmt.Errorf("credentials of share %s (in_bundle is set): %w", sh.Name, err)
	}
	rel := "shares/" + h.Name + "-" + sh.Name + ".credentials"
	if err := c.addSecret(h.Name, rel, RoleCredentials, sh.Credentials, h.Name+"/"+sh.Name, b); err != nil {
		return "", err
	}
	done[sh.Source] = rel
	return rel, nil
}

func (c *collector) repoSecrets(h *config.Host, r *config.Repo, br *Repo, used map[string]bool, paper bool) error {
	id := h.Name + "/" + r.Name
	c.p.Status("checking the borg key of repo %s against its passphrase", id)
	kp, pp := r.KeyExportPath(), r.PassphrasePath()
	export, err := c.readOn(h.Name, kp)
	if err != nil {
		return fmt.Errorf("borg key export of repo %s: %w%s", id, err, missingHint(err, "provisioning "+h.Name+" makes it"))
	}
	pass, err := c.readOn(h.Name, pp)
	if err != nil {
		return fmt.Errorf("passphrase of repo %s: %w", id, err)
	}
	if _, err := CheckBorgKey(export, pass); err != nil && !c.layoutOnly {
		if !errors.Is(err, ErrKeyUnsupported) {
			return fmt.Errorf("repo %s: %s and %s on %s do not go together: %w", id, kp, pp, h.Name, err)
		}
		c.m.Warnings = append(c.m.Warnings, fmt.Sprintf("repo %s: %v; Verify needs a repo copy to prove it", id, err))
	}
	base := r.Name
	if used[base] {
		base = h.Name + "-" + r.Name
	}
	used[base] = true
	br.KeyExport, br.Passphrase = "borg/"+base+".borg-key", "borg/"+base+".pass"
	if err := c.addSecret(h.Name, br.KeyExport, RoleBorgKey, kp, id, export); err != nil {
		return err
	}
	if err := c.addSecret(h.Name, br.Passphrase, RolePassphrase, pp, id, pass); err != nil {
		return err
	}
	if paper {
		c.p.Status("rendering the paper key of repo %s (borg key export --paper)", id)
		data, err := c.paperKey(h, r)
		if err != nil {
			c.m.Warnings = append(c.m.Warnings, fmt.Sprintf("repo %s: no paper key: %v", id, err))
			return nil
		}
		br.PaperKey = "borg/" + base + ".paper-key.txt"
		return c.add(br.PaperKey, RolePaperKey, "", id, data)
	}
	return nil
}

// paperKey runs `borg key export --paper` on the host of the repo, which
// prints it. It needs the repo itself (a repokey lives in its config), so
// an unmounted backup disk means no paper key, not a failed bundle.
func (c *collector) paperKey(h *config.Host, r *config.Repo) ([]byte, error) {
	src, err := c.on(h.Name)
	if err != nil {
		return nil, err
	}
	loc := r.BorgLocation()
	if !r.Remote() {
		// A repo on a borg server is asked over SSH; a local one must be there.
		cfgData, err := src.ReadFile(c.ctx, path.Join(r.Path, "config"))
		if err != nil || !borg.IsRepoConfig(cfgData) {
			return nil, fmt.Errorf("repository %s is not reachable from here", r.Path)
		}
		loc = src.Path(r.Path)
	}
	// borg 1.2 exports the key blob without decrypting it; the passphrase
	// command is there for versions that ask. On a rooted tree borg's keys
	// dir is inside it, as provisioning made it.
	res, err := src.Run(c.ctx, borg.Cmd(borg.OnHost(src, r.PassphrasePath()), "key", "export", "--paper", loc))
	if err != nil {
		return nil, err
	}
	return res.Stdout, nil
}

// datasets collects the keys of every host's encrypted ZFS datasets from
// the host itself (the second seed lists the dataset key as required to
// restore). A dataset whose key is typed at a prompt has nothing to
// collect: the runbook says so, and so does a warning now.
func (c *collector) datasets(cfg *config.Config) error {
	for hi := range cfg.Hosts {
		h := &cfg.Hosts[hi]
		for di := range h.Datasets {
			d := &h.Datasets[di]
			enc := d.Properties["encryption"]
			if enc == "" || enc == "off" {
				continue
			}
			id := h.Name + "/" + d.Name
			ds := Dataset{Host: h.Name, Name: d.Name, KeyFormat: d.Properties["keyformat"], Source: d.KeyFile()}
			if ds.Source == "" {
				c.m.Warnings = append(c.m.Warnings, fmt.Sprintf("dataset %s: its key is typed at a prompt (keylocation), so it is not in the bundle: keep the passphrase with the bundle", id))
				c.m.Datasets = append(c.m.Datasets, ds)
				continue
			}
			c.p.Status("reading the ZFS key of %s", id)
			key, err := c.readOn(h.Name, ds.Source)
			if err != nil {
				return fmt.Errorf("ZFS key of dataset %s: %w%s", id, err, missingHint(err, "provisioning "+h.Name+" makes it"))
			}
			if err := checkZFSKey(ds.KeyFormat, key); err != nil && !c.layoutOnly {
				return fmt.Errorf("ZFS key of dataset %s (%s on %s): %w", id, ds.Source, h.Name, err)
			}
			ds.Keyfile = "zfs/" + h.Name + "-" + bundleName(d.Name) + ".key"
			if err := c.addSecret(h.Name, ds.Keyfile, RoleZFSKey, ds.Source, id, key); err != nil {
				return err
			}
			c.m.Datasets = append(c.m.Datasets, ds)
		}
	}
	return nil
}

// checkZFSKey refuses a key file zfs load-key would refuse for its
// keyformat, so a truncated or wrong file is caught while the host that
// holds the right one is still there.
func checkZFSKey(format string, key []byte) error {
	switch format {
	case "raw":
		if len(key) != 32 {
			return fmt.Errorf("a raw key is 32 bytes, this one is %d", len(key))
		}
	case "hex":
		k := bytes.TrimSuffix(key, []byte("\n"))
		if _, err := hex.DecodeString(string(k)); err != nil || len(k) != 64 {
			return fmt.Errorf("a hex key is 64 hex digits, this one is not (%d bytes)", len(k))
		}
	case "passphrase":
		k := bytes.TrimSuffix(key, []byte("\n"))
		if len(k) < 8 || len(k) > 512 {
			return fmt.Errorf("a passphrase key is 8 to 512 bytes, this one is %d", len(k))
		}
	default:
		return fmt.Errorf("keyformat %q: want raw, hex or passphrase", format)
	}
	return nil
}

// bundleName makes a ZFS name into one file name ("tank/Secure" ->
// "tank-Secure"); ':' (legal in ZFS names) becomes '-' too.
func bundleName(zfsName string) string {
	return strings.NewReplacer("/", "-", ":", "-").Replace(zfsName)
}

// extras are the files that help but do not decide a recovery: the
// server's known_hosts (the offsite host's key, to trust the Pi again
// from a new machine) and the site config (to provision a replacement).
func (c *collector) extras(configData []byte) {
	if c.layoutOnly {
		_ = c.add("ssh/known_hosts", RoleKnownHosts, layout.KnownHosts, c.m.Server, nil)
		_ = c.add("borgkit.yaml", RoleConfig, layout.ConfigFile, "", nil)
		return
	}
	if b, err := c.src.ReadFile(c.ctx, layout.KnownHosts); err == nil && len(b) > 0 {
		_ = c.add("ssh/known_hosts", RoleKnownHosts, layout.KnownHosts, c.m.Server, b)
	}
	if configData == nil {
		if b, err := c.src.ReadFile(c.ctx, layout.ConfigFile); err == nil {
			configData = b
		}
	}
	if configData != nil {
		_ = c.add("borgkit.yaml", RoleConfig, layout.ConfigFile, "", configData)
	}
}

// writeAndProve writes the collected files, then proves on the written
// copies — not on the server's — that each keyfile opens its header
// backup, recording what the header says (UUID, slot, KDF) for the
// runbook and for checking the disk later.
func (c *collector) writeAndProve(w *writer) error {
	c.p.Status("writing %d files to %s", len(c.order), w.target)
	for _, rel := range c.order {
		if err := w.file(rel, c.files[rel].data); err != nil {
			return err
		}
	}
	for i := range c.m.Disks {
		d := &c.m.Disks[i]
		c.p.Status("proving the keyfile of %s opens its header backup (%s)", d.ID(), d.Header)
		res, err := luks2.CheckKey(filepath.Join(w.target, d.Header), filepath.Join(w.target, d.Keyfile))
		if err != nil {
			return fmt.Errorf("the keyfile of %s does not open its header backup (%s): %w — a stale header backup? make a new one with cryptsetup luksHeaderBackup on %s", d.ID(), c.files[d.Header].Source, err, d.Host)
		}
		d.LUKSUUID, d.Keyslot, d.KDF = res.UUID, res.Slot, res.KDF
	}
	return nil
}

// finish renders the runbook, bundle.json and MANIFEST.sha256, writes
// them, and reads every file back: a stick that lies about its capacity or
// a failing medium shows up now, not on the day it is needed.
func (c *collector) finish(w *writer) error {
	c.p.Status("writing the runbook and MANIFEST.sha256, then reading every file back")
	for _, rel := range c.order {
		c.m.Files = append(c.m.Files, c.files[rel].File)
	}
	c.m.Files = append(c.m.Files,
		File{Path: RunbookMD, Role: RoleRunbook}, File{Path: RunbookHTML, Role: RoleRunbook})
	md, html, err := RenderRunbook(c.m)
	if err != nil {
		return err
	}
	for i := range c.m.Files {
		f := &c.m.Files[i]
		switch f.Path {
		case RunbookMD:
			f.SHA256, f.Size = sumHex(md), int64(len(md))
		case RunbookHTML:
			f.SHA256, f.Size = sumHex(html), int64(len(html))
		}
	}
	sort.Slice(c.m.Files, func(i, j int) bool { return c.m.Files[i].Path < c.m.Files[j].Path })
	index, err := json.MarshalIndent(c.m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", IndexName, err)
	}
	index = append(index, '\n')
	sums := map[string]string{IndexName: sumHex(index)}
	for _, f := range c.m.Files {
		sums[f.Path] = f.SHA256
	}
	manifest := renderManifest(sums)
	for _, f := range []struct {
		name string
		data []byte
	}{{RunbookMD, md}, {RunbookHTML, html}, {IndexName, index}, {ManifestName, manifest}} {
		if err := w.file(f.name, f.data); err != nil {
			return err
		}
	}
	c.m.Digest = sumHex(manifest)
	if err := w.syncAll(); err != nil {
		return err
	}
	for name, want := range sums {
		got, _, err := digest.File(filepath.Join(w.target, name))
		if err != nil || got != want {
			return fmt.Errorf("reading back %s gave different bytes than were written (%v): the medium is faulty", name, err)
		}
	}
	return nil
}

// writer creates the bundle directory and its files, and removes all of
// it again when the bundle cannot be completed: half a bundle in a drawer
// is worse than none, because someone will trust it.
type writer struct {
	target  string
	owner   *host.Owner
	created string // top-most directory we created, "" if target existed
	dirs    []string
	written []string
}

func (w *writer) begin() error {
	top := ""
	for p := w.target; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		top = p
		if filepath.Dir(p) == p {
			break
		}
	}
	// Parents we create hold nothing secret and must let the bundle's
	// owner through; the bundle directory itself is private.
	if err := os.MkdirAll(filepath.Dir(w.target), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(w.target), err)
	}
	w.created = top
	if err := os.Mkdir(w.target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", w.target, err)
	}
	// The target may have existed (empty) with any mode; we need to write.
	if err := os.Chmod(w.target, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", w.target, err)
	}
	w.dirs = append(w.dirs, w.target)
	return nil
}

func (w *writer) file(rel string, data []byte) error {
	p := filepath.Join(w.target, filepath.FromSlash(rel))
	if err := w.mkdirs(filepath.Dir(p)); err != nil {
		return err
	}
	// O_EXCL: the directory was empty, so an existing file means someone
	// else is writing here at the same time.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	w.written = append(w.written, p)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o400)
	}
	if err == nil && w.owner != nil {
		err = f.Chown(w.owner.UID, w.owner.GID)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}

// mkdirs creates dir and its missing parents below the target, each
// recorded so seal and abort find them (parents first).
func (w *writer) mkdirs(dir string) error {
	if dir == w.target {
		return nil
	}
	if _, err := os.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := w.mkdirs(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	w.dirs = append(w.dirs, dir)
	return nil
}

func (w *writer) syncAll() error {
	for _, d := range w.dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// seal adds the (empty) drill log directory and makes every directory
// 0500: a bundle is read, never changed in place.
func (w *writer) seal() error {
	log := filepath.Join(w.target, DrillLogDir)
	if err := os.Mkdir(log, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", log, err)
	}
	w.dirs = append(w.dirs, log)
	for i := len(w.dirs) - 1; i >= 0; i-- {
		d := w.dirs[i]
		if w.owner != nil {
			if err := os.Chown(d, w.owner.UID, w.owner.GID); err != nil {
				return fmt.Errorf("chown %s: %w", d, err)
			}
		}
		if err := os.Chmod(d, 0o500); err != nil {
			return fmt.Errorf("chmod %s: %w", d, err)
		}
	}
	return w.syncAll()
}

func (w *writer) abort() {
	for _, d := range w.dirs {
		_ = os.Chmod(d, 0o700)
	}
	if w.created != "" {
		_ = os.RemoveAll(w.created)
		return
	}
	for i := len(w.written) - 1; i >= 0; i-- {
		_ = os.Remove(w.written[i])
	}
	for i := len(w.dirs) - 1; i >= 1; i-- {
		_ = os.Remove(w.dirs[i])
	}
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return fmt.Errorf("sync %s: %w", d, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", d, err)
	}
	return nil
}
