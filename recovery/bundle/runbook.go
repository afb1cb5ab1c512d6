package bundle

import (
	"fmt"
	"path"
	"strings"

	"github.com/borgkit/borgkit/templates"
)

// The runbook is written for someone on a borrowed Debian/Ubuntu machine
// with only the bundle and the disk: every command is complete, names the
// site's real devices, UUIDs and repo names, and reads the bundle's files
// through one variable ($B) set once. Commands are built here, with
// quoting, so the template stays layout.

type runbookData struct {
	Site, Server, Created, Version string
	Files                          []runbookFile
	Hosts                          []Host
	Disks                          []runbookDisk
	Repos                          []runbookRepo
	Shares                         []runbookShare
	DrillDisk, DrillMirror         string
}

type runbookFile struct {
	Path, What string
}

type runbookDisk struct {
	Disk
	ID, Var, Mount, Keyfile, Header             string
	ByUUID, Find, Open, OpenHeader, MountCmd    string
	Blkid, Umount, Close, HeaderRestore, Repos  string
	KDFText                                     string
	HasFSUUID, HasLUKSUUID, HasRepos, NoLoadOpt bool
}

type runbookRepo struct {
	Repo
	ID, Pass, Export, Paper, Where string
	Copies                         []string
	Setup                          string
	Keyfile, Repokey, Plain        bool
	Canary                         string
}

type runbookShare struct {
	Source, Mount, Cmd string
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
	case RoleKnownHosts:
		return "SSH host keys " + f.For + " trusted (to trust the offsite host again)"
	case RoleConfig:
		return "the site config, to provision a replacement server"
	case RoleRunbook:
		return "this runbook"
	}
	return f.Role
}

func buildRunbook(m *Manifest) runbookData {
	d := runbookData{Site: m.Site, Server: m.Server, Created: m.Created.UTC().Format("2006-01-02 15:04 UTC"), Version: m.Version}
	if d.Site == "" {
		d.Site = m.Server
	}
	for _, f := range m.Files {
		d.Files = append(d.Files, runbookFile{Path: f.Path, What: fileWhat(f, m)})
	}
	d.Files = append(d.Files,
		runbookFile{Path: IndexName, What: "what the bundle holds, for `borgkit recovery-bundle verify` and `borgkit drill`"},
		runbookFile{Path: ManifestName, What: "SHA-256 of every file: `sha256sum -c " + ManifestName + "`"},
		runbookFile{Path: DrillLogDir + "/", What: "empty; a drill may leave its report here if you make it writable"})
	d.Hosts = m.Hosts
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
		rd.Find = rd.Var + "=" + shq(disk.Device)
		if disk.Device == "" && disk.LUKSUUID != "" {
			rd.Find = rd.Var + "=" + rd.ByUUID
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
		rd.KDFText = disk.KDF
		repoDir := rd.Mount
		if disk.ReposDir != "" {
			repoDir = path.Join(rd.Mount, disk.ReposDir)
		}
		rd.Repos = repoDir
		for _, r := range disk.Repos {
			if _, ok := mountOf[r]; !ok {
				mountOf[r] = path.Join(repoDir, r)
			}
		}
		d.Disks = append(d.Disks, rd)
		if d.DrillDisk == "" {
			d.DrillDisk = `borgkit drill --bundle "$B" --disk ` + dev
		}
	}
	shares := map[string]bool{}
	for _, r := range m.Repos {
		rr := runbookRepo{Repo: r, ID: r.Host + "/" + r.Name, Keyfile: r.KeyfileMode(), Plain: !r.Encrypted()}
		rr.Repokey = r.Encrypted() && !r.KeyfileMode()
		if r.Passphrase != "" {
			rr.Pass = inB(r.Passphrase)
		}
		if r.KeyExport != "" {
			rr.Export = inB(r.KeyExport)
		}
		if r.PaperKey != "" {
			rr.Paper = r.PaperKey
		}
		if r.Canary != "" {
			rr.Canary = strings.TrimPrefix(r.Canary, "/")
		}
		where, ok := mountOf[r.Name]
		if !ok || r.Host != m.Server {
			where = "/path/to/" + r.Name
		}
		for _, c := range r.Copies {
			switch {
			case c.Host != "":
				s := fmt.Sprintf("`%s` on %s", c.Path, c.Host)
				if p, ok := mountOf[r.Name]; ok {
					s += fmt.Sprintf(" — `%s` once its disk is unlocked and mounted (section 3)", p)
				}
				rr.Copies = append(rr.Copies, s)
			case c.Share != "":
				rel := strings.TrimPrefix(strings.TrimPrefix(c.Path, c.ShareMount), "/")
				s := fmt.Sprintf("`%s` on the %s share `%s` — `/mnt/recovery/%s/%s` once mounted (section 5)", c.Path, c.Mirror, c.Share, c.Mirror, rel)
				rr.Copies = append(rr.Copies, s)
				if !shares[c.Share] {
					shares[c.Share] = true
					mnt := "/mnt/recovery/" + c.Mirror
					d.Shares = append(d.Shares, runbookShare{Source: c.Share, Mount: mnt,
						Cmd: "mkdir -p " + mnt + " && mount -t cifs -o ro,username=USER " + shq(c.Share) + " " + mnt})
				}
				if d.DrillMirror == "" {
					d.DrillMirror = `borgkit drill --bundle "$B" --mirror ` + path.Dir(path.Join("/mnt/recovery/"+c.Mirror, rel))
				}
			default:
				rr.Copies = append(rr.Copies, fmt.Sprintf("`%s` on %s (%s mirror)", c.Path, m.Server, c.Mirror))
			}
		}
		rr.Where = where
		var setup []string
		if rr.Pass != "" {
			setup = append(setup, `export BORG_PASSCOMMAND="cat '$B/`+r.Passphrase+`'"`)
		} else if rr.Plain {
			setup = append(setup, "export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes")
		}
		setup = append(setup, "export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes", "REPO="+shq(where))
		rr.Setup = strings.Join(setup, "\n")
		d.Repos = append(d.Repos, rr)
	}
	return d
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
