package bundle

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/recovery/kit"
	"github.com/borgkit/borgkit/templates"
)

// The runbook is written for someone on a borrowed Debian/Ubuntu machine
// with only the bundle and the disk: every command is complete, names the
// site's real devices, UUIDs and repo names, and reads the bundle's files
// through one variable ($B) set once. Commands are built here, with
// quoting, so the template stays layout.

type runbookData struct {
	Site, Server, Created, Version string
	Packages                       string
	// Kit installs the tools from the bundle; nil without a kit.
	Kit                    *runbookKit
	Files                  []runbookFile
	Hosts                  []Host
	Disks                  []runbookDisk
	Pools                  []runbookPools
	Repos                  []runbookRepo
	VMs                    []runbookVMs
	Shares                 []runbookShare
	Rebuild                []runbookRebuild
	DrillDisk, DrillMirror string
	HasConfig              bool
	// Stick opens the encrypted stick the bundle is on; empty when the
	// bundle was written to a plain directory.
	Stick, StickUUID string
	// KitPart mounts the stick's unencrypted kit partition (KitLabel), the
	// first step on a machine without cryptsetup; empty without one.
	KitPart, KitLabel string
	// Section numbers: a site without disks, datasets, VMs or shares has
	// no such section, and the rest are numbered without gaps.
	SecDisks, SecPools, SecRepos, SecVMs, SecShares, SecDone, SecDrill, SecRebuild, SecAdopted int
	// Adopted says what differs from a site borgkit set up from nothing,
	// when it took over a hand-built setup; empty otherwise.
	Adopted []string
	// DrillSnapshot drills from the newest snapshot on the disk.
	DrillSnapshot string
}

type runbookFile struct {
	Path, What string
}

type runbookDisk struct {
	Disk
	ID, Var, Mount, Keyfile, Header            string
	ByUUID, Find, Open, OpenHeader, MountCmd   string
	Blkid, Umount, Close, HeaderRestore, Repos string
	KDFText, Slot                              string
	// Snapshots is the offsite host's snapshot directory on the disk.
	Snapshots                                   string
	HasFSUUID, HasLUKSUUID, HasRepos, NoLoadOpt bool
}

// runbookKit installs from the bundle's offline kit.
type runbookKit struct {
	// Install is the shell block; empty when the kit has no packages.
	Install, Arches, Base, Fetched, Wanted, WantedText string
	// Extra are packages the site needs that the kit lacks (ZFS, CIFS):
	// those still need a network.
	Extra          string
	Stale, Missing []string
	Borgkit        bool
}

// runbookPools opens one host's encrypted datasets.
type runbookPools struct {
	Host, Commands, Export string
	Prompted               []string // datasets whose key a person types
}

type runbookRepo struct {
	Repo
	ID, Pass, Export, Paper, Where, WhereNote string
	Copies                                    []string
	Setup                                     string
	Keyfile, Repokey, Plain                   bool
	Canary                                    string
}

// runbookVMs brings back the libvirt guests of one repo.
type runbookVMs struct {
	Repo, Host, Commands string
}

type runbookShare struct {
	Source, Mount, Cmd string
	Credentials        bool
}

// runbookRebuild puts one host's secrets back where borgkit keeps them.
type runbookRebuild struct {
	Host, Commands, Provision string
}

// shq quotes s for a POSIX shell when it needs quoting.
func shq(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>()*?[]{}!#~=%") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// inB names a bundle file through $B; bundle names need no quoting, $B may.
func inB(rel string) string { return `"$B/` + rel + `"` }

func fileWhat(f File, m *Manifest) string {
	switch f.Role {
	case RoleLUKSKeyfile:
		return "LUKS keyfile of disk " + f.For + " — opens it with `cryptsetup open --key-file`"
	case RoleLUKSHeader:
		return "LUKS header backup of disk " + f.For + " — use with `--header` when the disk's own header is damaged"
	case RoleBorgKey:
		return "borg key export of repo " + f.For + " (`borg key import`)"
	case RolePaperKey:
		return "printable key of repo " + f.For + " (`borg key import --paper`)"
	case RolePassphrase:
		return "passphrase of repo " + f.For + " (read through `BORG_PASSCOMMAND`)"
	case RoleZFSKey:
		return "ZFS key of dataset " + f.For + " (`zfs load-key -L file://...`)"
	case RoleCredentials:
		return "credentials of share " + f.For + " (`mount -t cifs -o credentials=...`)"
	case RoleKnownHosts:
		return "SSH host keys " + f.For + " trusted (to trust the offsite host again)"
	case RoleConfig:
		return "the site config, to provision a replacement server"
	case RoleRunbook:
		return "this runbook"
	case RoleKitBorgkit:
		return "borgkit for " + f.For + " (the runbook installs it as /usr/local/bin/borgkit)"
	}
	return f.Role
}

func buildRunbook(m *Manifest) runbookData {
	d := runbookData{Site: m.Site, Server: m.Server, Created: m.Created.UTC().Format("2006-01-02 15:04 UTC"), Version: m.Version}
	if d.Site == "" {
		d.Site = m.Server
	}
	for _, f := range m.Files {
		d.HasConfig = d.HasConfig || f.Role == RoleConfig
		if f.Role == RoleKitDeb || f.Role == RoleKitIndex {
			continue // one line per architecture, below
		}
		d.Files = append(d.Files, runbookFile{Path: f.Path, What: fileWhat(f, m)})
	}
	if m.Kit != nil {
		for _, r := range m.Kit.Debian {
			d.Files = append(d.Files, runbookFile{Path: r.Dir + "/", What: fmt.Sprintf("%d Debian 12 packages for %s (%s and what they need), an apt repository for installing with no network", len(r.Debs), r.Arch, strings.Join(r.Wanted, ", "))})
		}
	}
	d.Files = append(d.Files,
		runbookFile{Path: IndexName, What: "what the bundle holds, for `borgkit recovery-bundle verify` and `borgkit drill`"},
		runbookFile{Path: ManifestName, What: "SHA-256 of every file: `sha256sum -c " + ManifestName + "`"},
		runbookFile{Path: DrillLogDir + "/", What: "empty; a drill may leave its report here if you make it writable"})
	d.Hosts = m.Hosts
	d.Adopted = adopted(m)
	if st := m.Stick; st != nil {
		if m.KitApart() {
			d.KitLabel = st.KitLabel
			d.KitPart = strings.Join([]string{
				"KIT=" + KitMount,
				"mkdir -p $KIT",
				"mount -o ro,noload /dev/disk/by-uuid/" + st.KitFSUUID + " $KIT",
				"(cd $KIT && sha256sum -c " + KitManifest + ")",
			}, "\n")
			for i := range d.Files {
				if strings.HasPrefix(d.Files[i].Path, "kit/") {
					d.Files[i].What += " — on the " + st.KitLabel + " partition, not in this directory"
				}
			}
		}
		d.StickUUID = st.LUKSUUID
		mnt := "/mnt/" + st.Mapper
		d.Stick = strings.Join([]string{
			"cryptsetup open --readonly /dev/disk/by-uuid/" + st.LUKSUUID + " " + shq(st.Mapper),
			"mkdir -p " + mnt,
			"mount -o ro,noload /dev/mapper/" + shq(st.Mapper) + " " + mnt,
			"cd " + path.Join(mnt, st.Dir),
		}, "\n")
	}
	mountOf := d.disks(m)
	d.pools(m)
	shares := map[string]bool{}
	for _, r := range m.Repos {
		rr := d.repo(m, r, mountOf, shares)
		d.Repos = append(d.Repos, rr)
		if len(r.VMs)+len(r.Containers) > 0 {
			d.VMs = append(d.VMs, runbookVMs{Repo: r.Host + "/" + r.Name, Host: r.Host, Commands: rr.Setup + "\n" + vmCommands(r)})
		}
	}
	d.rebuild(m)
	d.Packages = packages(m)
	d.Kit = kitRunbook(m)
	n := 2
	next := func(present bool) int {
		if !present {
			return 0
		}
		n++
		return n
	}
	d.SecDisks = next(len(d.Disks) > 0)
	d.SecPools = next(len(d.Pools) > 0)
	d.SecShares = next(len(d.Shares) > 0)
	d.SecRepos = next(true)
	d.SecVMs = next(len(d.VMs) > 0)
	d.SecDone = next(true)
	d.SecDrill = next(true)
	d.SecRebuild = next(true)
	d.SecAdopted = next(len(d.Adopted) > 0)
	return d
}

// disks fills the unlock sections and says where each server repo's copy
// appears once its offsite disk is mounted.
func (d *runbookData) disks(m *Manifest) map[string]string {
	mountOf := map[string]string{} // repo name -> path on an unlocked disk
	for i, disk := range m.Disks {
		rd := runbookDisk{Disk: disk, ID: disk.ID(), Keyfile: inB(disk.Keyfile), Header: inB(disk.Header),
			Mount: "/mnt/recovery/" + disk.Host + "-" + disk.Name, Var: "DEV"}
		if len(m.Disks) > 1 {
			rd.Var = fmt.Sprintf("DEV%d", i+1)
		}
		dev := `"$` + rd.Var + `"`
		mapper := shq(disk.Mapper)
		rd.HasFSUUID, rd.HasLUKSUUID, rd.HasRepos = disk.FSUUID != "", disk.LUKSUUID != "", len(disk.Repos) > 0
		if disk.LUKSUUID != "" {
			rd.ByUUID = "/dev/disk/by-uuid/" + disk.LUKSUUID
		}
		switch {
		case disk.Device != "":
			rd.Find = rd.Var + "=" + shq(disk.Device)
		case disk.LUKSUUID != "":
			rd.Find = rd.Var + "=" + rd.ByUUID
		default:
			rd.Find = rd.Var + "=$(blkid -t TYPE=crypto_LUKS -o device | head -n 1)"
		}
		rd.Open = "cryptsetup open --readonly --key-file " + rd.Keyfile + " " + dev + " " + mapper
		rd.OpenHeader = "cryptsetup open --readonly --header " + rd.Header + " --key-file " + rd.Keyfile + " " + dev + " " + mapper
		opts := "ro"
		switch disk.FSType {
		case "ext4", "ext3":
			// A disk pulled without a clean unmount has a journal to replay;
			// replaying it would write to the only surviving copy.
			opts, rd.NoLoadOpt = "ro,noload", true
		case "xfs":
			opts = "ro,norecovery"
		}
		rd.MountCmd = "mount -o " + opts + " /dev/mapper/" + mapper + " " + rd.Mount
		rd.Blkid = "blkid /dev/mapper/" + mapper
		rd.Umount = "umount " + rd.Mount
		rd.Close = "cryptsetup close " + mapper
		rd.HeaderRestore = "cryptsetup luksHeaderRestore " + dev + " --header-backup-file " + rd.Header
		rd.KDFText, rd.Slot = disk.KDF, "a keyslot"
		if disk.Keyslot >= 0 && disk.KDF != "" {
			rd.Slot = fmt.Sprintf("keyslot %d (%s)", disk.Keyslot, disk.KDF)
		}
		repoDir := rd.Mount
		if disk.ReposDir != "" {
			repoDir = path.Join(rd.Mount, disk.ReposDir)
		}
		rd.Repos = repoDir
		// The snapshots sit beside the mirror (layout.SnapshotRoot).
		rd.Snapshots = path.Join(path.Dir(repoDir), layout.SnapshotDir)
		if disk.ReposDir == "" {
			rd.Snapshots = path.Join(rd.Mount, layout.SnapshotDir)
		}
		for _, r := range disk.Repos {
			if _, ok := mountOf[r]; !ok {
				mountOf[r] = path.Join(repoDir, r)
			}
		}
		d.Disks = append(d.Disks, rd)
		if d.DrillDisk == "" {
			d.DrillDisk = `borgkit drill --bundle "$B" --disk ` + dev
			d.DrillSnapshot = d.DrillDisk + " --snapshot latest"
		}
	}
	return mountOf
}

// pools fills the section that opens each host's encrypted datasets with
// the bundled keys: import the pool read-only unless it is imported,
// load each key from the bundle, mount.
func (d *runbookData) pools(m *Manifest) {
	var hosts []string
	byHost := map[string][]Dataset{}
	for _, ds := range m.Datasets {
		if _, ok := byHost[ds.Host]; !ok {
			hosts = append(hosts, ds.Host)
		}
		byHost[ds.Host] = append(byHost[ds.Host], ds)
	}
	for _, h := range hosts {
		rp := runbookPools{Host: h}
		var cmds, exports []string
		seen := map[string]bool{}
		for _, ds := range byHost[h] {
			if p := ds.Pool(); !seen[p] {
				seen[p] = true
				// -f: the host that last had the pool is gone and never
				// exported it, and a rescue machine's hostid is not its;
				// without -f zpool refuses ("may be in use from other
				// system"). A read-only import writes nothing to the pool.
				cmds = append(cmds, "zpool list "+shq(p)+" >/dev/null 2>&1 || zpool import -f -N -o readonly=on "+shq(p))
				exports = append(exports, "zpool export "+shq(p))
			}
		}
		rp.Export = strings.Join(exports, "\n")
		for _, ds := range byHost[h] {
			if ds.Keyfile == "" {
				rp.Prompted = append(rp.Prompted, ds.Name)
				cmds = append(cmds, "zfs load-key "+shq(ds.Name))
				continue
			}
			cmds = append(cmds, `zfs load-key -L file://"$B/`+ds.Keyfile+`" `+shq(ds.Name))
		}
		cmds = append(cmds, "zfs mount -a")
		for _, ds := range byHost[h] {
			cmds = append(cmds, "zfs get -H -o name,property,value keystatus,mounted "+shq(ds.Name))
		}
		rp.Commands = strings.Join(cmds, "\n")
		d.Pools = append(d.Pools, rp)
	}
}

// repo fills one repo's restore section. Its REPO is the best copy the
// runbook has already opened: the offsite disk's, else a share's, else
// the repo itself on its host (an archive host's, once its datasets are
// open).
func (d *runbookData) repo(m *Manifest, r Repo, mountOf map[string]string, shares map[string]bool) runbookRepo {
	rr := runbookRepo{Repo: r, ID: r.Host + "/" + r.Name, Keyfile: r.KeyfileMode(), Plain: !r.Encrypted()}
	rr.Repokey = r.Encrypted() && !r.KeyfileMode()
	if r.Passphrase != "" {
		rr.Pass = inB(r.Passphrase)
	}
	if r.KeyExport != "" {
		rr.Export = inB(r.KeyExport)
	}
	rr.Paper = r.PaperKey
	if r.Canary != "" {
		rr.Canary = shq(strings.TrimPrefix(r.Canary, "/"))
	}
	where, note := "", ""
	if p, ok := mountOf[r.Name]; ok && r.Host == m.Server {
		where, note = p, "the copy on the offsite disk, unlocked and mounted above"
	}
	for _, c := range r.Copies {
		switch {
		case c.Host != "":
			s := fmt.Sprintf("`%s` on %s", c.Path, c.Host)
			if p, ok := mountOf[r.Name]; ok {
				s += fmt.Sprintf(" — `%s` once its disk is unlocked and mounted", p)
			}
			rr.Copies = append(rr.Copies, s)
		case c.Share != "":
			rel := strings.TrimPrefix(strings.TrimPrefix(c.Path, c.ShareMount), "/")
			mnt := "/mnt/recovery/" + c.Mirror
			local := path.Join(mnt, rel)
			rr.Copies = append(rr.Copies, fmt.Sprintf("`%s` on the %s share `%s` — `%s` once mounted", c.Path, c.Mirror, c.Share, local))
			if where == "" {
				where, note = local, "the copy on the "+c.Mirror+" share, mounted above"
			}
			if !shares[c.Share] {
				shares[c.Share] = true
				sh := runbookShare{Source: c.Share, Mount: mnt, Credentials: c.Credentials != ""}
				opts := `ro,username="$SHARE_USER"`
				cmd := "read -r -p 'User name on " + c.Share + ": ' SHARE_USER\n"
				if sh.Credentials {
					opts, cmd = `ro,credentials="$B/`+c.Credentials+`"`, ""
				}
				sh.Cmd = cmd + "mkdir -p " + mnt + "\nmount -t cifs -o " + opts + " " + shq(c.Share) + " " + mnt
				d.Shares = append(d.Shares, sh)
			}
			if d.DrillMirror == "" {
				d.DrillMirror = `borgkit drill --bundle "$B" --mirror ` + path.Dir(local)
			}
		default:
			rr.Copies = append(rr.Copies, fmt.Sprintf("`%s` on %s (%s mirror)", c.Path, r.Host, c.Mirror))
		}
	}
	if r.Remote() {
		// The borg server, the repo's only copy (the sync never mirrors
		// it): any machine with a key the server authorizes reaches it
		// (the site's own, on its client, is RepoIdentity).
		where, note = r.Path, "the repository on its borg server, whose host key is pinned as `"+r.HostKey+"`: "+
			"put that line in ~/.ssh/known_hosts and log in with a key the server authorizes (on "+r.Host+", borgkit's "+layout.RepoIdentity+")"
	}
	if where == "" {
		where, note = r.Path, "the repository itself, on "+r.Host
		for _, ds := range m.Datasets {
			if ds.Host == r.Host {
				note += ", once its datasets are open"
				break
			}
		}
	}
	rr.Where, rr.WhereNote = where, note
	var setup []string
	if rr.Pass != "" {
		setup = append(setup, `export BORG_PASSCOMMAND="cat '$B/`+r.Passphrase+`'"`)
	} else if rr.Plain {
		setup = append(setup, "export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes")
	}
	setup = append(setup, "export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes", "REPO="+shq(where))
	rr.Setup = strings.Join(setup, "\n")
	return rr
}

// vmCommands extracts each guest's newest archive in place (a VM's disk
// images and its saved definition, a container's machine directory and
// settings) and defines and starts it.
func vmCommands(r Repo) string {
	var cmds []string
	extract := func(prefix string) {
		cmds = append(cmds, "cd / && borg extract --bypass-lock --list \"$REPO::$(borg list --bypass-lock --last 1 --short --glob-archives "+
			shq(prefix+"*")+" \"$REPO\")\"")
	}
	for _, vm := range r.VMs {
		extract(layout.GuestArchivePrefix("vm", vm))
		cmds = append(cmds, "virsh define "+shq(path.Join(r.VMXML, vm+".xml")))
	}
	for _, c := range r.Containers {
		extract(layout.GuestArchivePrefix("container", c))
	}
	for _, vm := range r.VMs {
		cmds = append(cmds, "virsh start "+shq(vm))
	}
	for _, c := range r.Containers {
		cmds = append(cmds, "machinectl start "+shq(c))
	}
	return strings.Join(cmds, "\n")
}

// rebuild lists, per host, the commands that put its secrets back where
// borgkit keeps them (and provisioning finds them), with their modes.
func (d *runbookData) rebuild(m *Manifest) {
	hostOf := func(f File) string {
		switch f.Role {
		case RoleLUKSKeyfile, RoleLUKSHeader:
			if disk, ok := m.Disk(f.For); ok && disk.KeyHost != "" {
				return disk.KeyHost
			}
		case RoleConfig:
			return ""
		}
		if h, _, ok := strings.Cut(f.For, "/"); ok {
			return h
		}
		return f.For
	}
	cmds := map[string][]string{}
	dirs := map[string]map[string]bool{}
	for _, f := range m.Files {
		mode := restoreMode(f.Role)
		if f.Source == "" || mode == "" {
			continue
		}
		h := hostOf(f)
		if h == "" {
			continue
		}
		if _, ok := cmds[h]; !ok {
			dirs[h] = map[string]bool{}
		}
		if dir := path.Dir(f.Source); !dirs[h][dir] {
			dirs[h][dir] = true
			cmds[h] = append(cmds[h], "install -d -m 0700 "+shq(dir))
		}
		cmds[h] = append(cmds[h], "install -m "+mode+" -o root -g root "+inB(f.Path)+" "+shq(f.Source))
	}
	// In the config's order, the server first as it is rebuilt first.
	order := []string{m.Server}
	for _, h := range m.Hosts {
		order = append(order, h.Name)
	}
	for _, h := range order {
		if _, ok := cmds[h]; !ok || slices.ContainsFunc(d.Rebuild, func(r runbookRebuild) bool { return r.Host == h }) {
			continue
		}
		prov := "on " + h + " itself"
		if h != m.Server {
			prov = "from " + m.Server + ", once it is back"
		}
		d.Rebuild = append(d.Rebuild, runbookRebuild{Host: h, Commands: strings.Join(cmds[h], "\n"), Provision: prov})
	}
}

// restoreMode is the mode provisioning gives each kind of secret; "" for
// files that are not put back.
func restoreMode(role string) string {
	switch role {
	case RoleLUKSKeyfile, RoleLUKSHeader, RoleZFSKey:
		return "0400"
	case RoleBorgKey, RolePassphrase, RoleCredentials, RoleKnownHosts:
		return "0600"
	}
	return ""
}

// kitRunbook is the install step from the bundle's kit: apt with the kit's
// flat repository of the rescue machine's architecture as its only source
// and lists of its own, so neither a network nor the machine's own sources
// are asked; then borgkit for the same architecture onto the PATH.
func kitRunbook(m *Manifest) *runbookKit {
	k := m.Kit
	if k == nil {
		return nil
	}
	rk := &runbookKit{Missing: k.Missing, Borgkit: len(k.Borgkit) > 0, Base: kit.Base}
	var wanted []string
	for _, r := range k.Debian {
		if r.Stale != "" {
			rk.Stale = append(rk.Stale, r.Arch+": "+r.Stale)
		}
		wanted, rk.Fetched = r.Wanted, r.Fetched.UTC().Format("2006-01-02")
	}
	rk.Arches = strings.Join(k.KitArches(), " and ")
	rk.Wanted, rk.WantedText = strings.Join(wanted, " "), strings.Join(wanted, " and ")
	var extra []string
	for _, p := range strings.Fields(packages(m)) {
		if p != "borgbackup" && p != "cryptsetup" {
			extra = append(extra, p)
		}
	}
	rk.Extra = strings.Join(extra, " ")
	var cmds []string
	if len(k.Debian) > 0 || rk.Borgkit {
		cmds = append(cmds, "ARCH=$(dpkg --print-architecture)")
	}
	// The kit is in the bundle, or on the stick's kit partition.
	root := "$B"
	if m.KitApart() {
		root = "$KIT"
	}
	if len(k.Debian) > 0 {
		const kdir = "/tmp/borgkit-kit"
		cmds = append(cmds,
			"K="+kdir,
			"mkdir -p $K/lists/partial $K/parts",
			`echo "deb [trusted=yes] file:`+root+`/`+kit.Dir("$ARCH")+` ./" > $K/sources.list`,
			`APT="-o APT::Sandbox::User=root -o Dir::Etc::SourceList=$K/sources.list -o Dir::Etc::SourceParts=$K/parts -o Dir::State::Lists=$K/lists -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache="`,
			"apt-get $APT update",
			"apt-get $APT install -y --no-install-recommends "+rk.Wanted,
			"borg --version",
			"cryptsetup --version")
	}
	if rk.Borgkit {
		cmds = append(cmds, `install -m 0755 "`+root+`/kit/borgkit/$ARCH/borgkit" /usr/local/bin/borgkit`, "borgkit version")
	}
	rk.Install = strings.Join(cmds, "\n")
	return rk
}

// packages is what the rescue machine installs: borg always, and the
// tools for what the site has (LUKS disks, ZFS pools, CIFS shares).
func packages(m *Manifest) string {
	p := []string{"borgbackup"}
	if len(m.Disks) > 0 {
		p = append(p, "cryptsetup")
	}
	if len(m.Datasets) > 0 {
		p = append(p, "zfsutils-linux")
	}
	for _, r := range m.Repos {
		for _, c := range r.Copies {
			if c.Share != "" {
				return strings.Join(append(p, "cifs-utils"), " ")
			}
		}
	}
	return strings.Join(p, " ")
}

// RenderRunbook renders the bundle's runbook as Markdown (runbook.md) and
// as a standalone HTML page (runbook.html) from the same text, so the two
// can never disagree.
func RenderRunbook(m *Manifest) (md, html []byte, err error) {
	md, err = templates.Render("runbook", buildRunbook(m))
	if err != nil {
		return nil, nil, err
	}
	title := "Recovery runbook — " + m.Site
	if m.Site == "" {
		title = "Recovery runbook — " + m.Server
	}
	html, err = templates.Render("runbook-html", map[string]any{"Title": escapeHTML(title), "Body": markdownToHTML(md)})
	if err != nil {
		return nil, nil, err
	}
	return md, html, nil
}

// RenderKitReadme is the kit partition's README: the runbook's first
// steps (mount the kit, install from it, open the stick), for a person who
// has not opened the stick yet. It names no secret.
func RenderKitReadme(m *Manifest) ([]byte, error) {
	return templates.Render("kit-readme", buildRunbook(m))
}

// adopted are the runbook's lines on a site taken over from a hand-built
// setup: where the old layout still shows, and how to go back to it.
func adopted(m *Manifest) []string {
	var out []string
	for _, h := range m.Hosts {
		if h.MirrorRoot != "" {
			out = append(out, fmt.Sprintf("The copies on %s are where the old setup kept them: `%s/REPO` (its rrsync root), not under a `borgkit/` directory.", h.Name, h.MirrorRoot))
		}
	}
	for _, r := range m.Repos {
		if r.ArchivePrefix != "" {
			out = append(out, fmt.Sprintf("Archives of %s are named `%s<date>`, the old setup's and borgkit's alike: `borg list` shows both, and they restore the same way.", r.Name, r.ArchivePrefix))
		}
	}
	for _, h := range m.Hosts {
		if len(h.Retired) == 0 {
			continue
		}
		var moved []string
		for _, f := range h.Retired {
			moved = append(moved, fmt.Sprintf("`%s` → `%s`", f, layout.Retired(f)))
		}
		out = append(out, fmt.Sprintf("On %s, borgkit retired the old setup's files, moved aside and kept: %s. To go back to the old setup, stop borgkit's schedule (`rm %s`, or `systemctl disable --now 'borgkit-*.timer'`), move each file back, and uncomment the fstab lines under `# borgkit took over the next line` (deleting the borgkit block's line for the same mountpoint).",
			h.Name, strings.Join(moved, ", "), layout.CronFile))
	}
	return out
}
