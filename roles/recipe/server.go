package recipe

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/fstab"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/legacy"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/templates"
)

// server is john-ai: borg repos on the USB disk, the NAS and offsite
// mirrors, alerts and the schedule of the first seed.
func server(cfg *config.Config, h *config.Host, o Options) ([]plan.Step, error) {
	s, err := base(h, o)
	if err != nil {
		return nil, err
	}
	s = append([]plan.Step{serverPackages(cfg, h)}, s...)
	s = append(s, &steps.Dir{Path: layout.KeysDir, Mode: 0o700, Owner: host.Root})

	mounts, err := mountSteps(cfg, h)
	if err != nil {
		return nil, err
	}
	s = append(s, mounts...)

	s = append(s, withDisks(repoSteps(h, o.Records), mounts)...)

	keys, err := sshSteps(cfg, h, o.Local)
	if err != nil {
		return nil, err
	}
	s = append(s, keys...)
	s = append(s, localMirrorChecks(h)...)

	return finish(cfg, h, s, o)
}

// localMirrorChecks keep each local mirror (the NAS) a directory of this
// host's repos and nothing else.
func localMirrorChecks(h *config.Host) []plan.Step {
	var s []plan.Step
	for _, m := range h.Mirrors {
		if m.Host != "" {
			continue
		}
		s = append(s, &steps.MirrorContents{Root: m.Path, Mountpoint: diskOf(h, m.Path), Names: repoNames(h),
			Repos: func(ctx context.Context, hh host.Host) (map[string]string, error) {
				return repoIDs(ctx, h, hh.ReadFile)
			}})
	}
	return s
}

// repoNames are the names of the hosts' repos: a mirror's entries.
func repoNames(hosts ...*config.Host) []string {
	var names []string
	for _, h := range hosts {
		for _, r := range h.Repos {
			names = append(names, r.Name)
		}
	}
	return names
}

// repoIDs are the ids of h's repos, read through read ("" for a repo not
// made yet).
func repoIDs(ctx context.Context, h *config.Host, read func(context.Context, string) ([]byte, error)) (map[string]string, error) {
	ids := map[string]string{}
	for _, r := range h.Repos {
		if r.Remote() {
			ids[r.Name] = "" // on its borg server: no mirror holds it
			continue
		}
		b, err := read(ctx, path.Join(r.Path, "config"))
		if host.IsNotExist(err) {
			ids[r.Name] = ""
			continue
		}
		if err != nil {
			return nil, err
		}
		if rc, err := borg.ParseRepoConfig(b); err == nil {
			ids[r.Name] = rc.ID
		}
	}
	return ids, nil
}

// legacyWatch are the paths the old setup's schedules must not touch once
// borgkit runs the host: the repos and the mirrors (server), the mirror
// root, the disks and the LUKS devices (offsite).
func legacyWatch(h *config.Host) []string {
	var w []string
	for _, r := range h.Repos {
		if !r.Remote() {
			w = append(w, r.Path)
		}
	}
	for _, m := range h.Mirrors {
		if m.Host == "" {
			w = append(w, m.Path)
		}
	}
	if h.Role == config.RoleOffsite {
		if root := h.MirrorRootOrDefault(); root != "" {
			w = append(w, root)
		}
		for _, d := range h.Disks {
			w = append(w, d.Mountpoint)
			if d.Device != "" {
				w = append(w, d.Device)
			}
		}
	}
	return w
}

// withDisks tells each repo step which step mounts its disk.
func withDisks(repos, mounts []plan.Step) []plan.Step {
	for _, s := range repos {
		r, ok := s.(*steps.BorgRepo)
		if !ok {
			continue
		}
		for _, m := range mounts {
			switch m := m.(type) {
			case *steps.Mount:
				if m.Target == r.Mountpoint {
					r.Disk = m
				}
			case *steps.ZFSDataset:
				if m.Mountpoint == r.Mountpoint {
					r.Disk = m
				}
			}
		}
	}
	return repos
}

// repoSteps are each borg repo with its passphrase and key export.
func repoSteps(h *config.Host, records func(name, path, encryption string) steps.Voucher) []plan.Step {
	s := remoteRepoAccess(h)
	for i := range h.Repos {
		r := &h.Repos[i]
		pass := r.PassphrasePath()
		if r.Remote() {
			if pass != "" {
				s = append(s, &steps.Secret{Path: pass, Mode: 0o600, Owner: host.Root,
					What: "borg passphrase of repo " + r.Name, Generate: steps.Passphrase})
			}
			loc := r.Location()
			rs := &steps.RemoteBorgRepo{Name: r.Name, Location: loc.String(), Encryption: r.EncryptionMode(), PassFile: pass,
				Addr: loc.Addr(), User: loc.User, HostKey: r.HostKey, KnownHostsLine: repoKnownHostsLine(r)}
			// The nightly records the repo under the config's own path.
			if records != nil {
				rs.Records = records(r.Name, r.Path, r.EncryptionMode())
			}
			s = append(s, rs)
			if pass != "" {
				s = append(s, &steps.BorgKeyExport{Repo: r.Name, RepoPath: r.BorgLocation(), PassFile: pass, Dest: r.KeyExportPath(), Remote: true, Records: rs.Records})
			}
			continue
		}
		if pass != "" {
			sec := &steps.Secret{Path: pass, Mode: 0o600, Owner: host.Root,
				What: "borg passphrase of repo " + r.Name, Generate: steps.Passphrase,
				MustExist: steps.ExistingEncrypted(r.Name, r.Path, pass)}
			if r.PassphraseFrom != "" {
				sec.Import = steps.PassphraseFrom(r.Path, r.PassphraseFrom)
				sec.ImportWhat = "copy the passphrase from " + r.PassphraseFrom + " (it opens the repo)"
			}
			s = append(s, sec)
		}
		s = append(s, &steps.BorgRepo{Name: r.Name, Path: r.Path, Encryption: r.EncryptionMode(), PassFile: pass,
			Mountpoint: diskOf(h, r.Path)})
		if pass != "" {
			s = append(s, &steps.BorgKeyExport{Repo: r.Name, RepoPath: r.Path, PassFile: pass,
				Dest: r.KeyExportPath()})
		}
	}
	return s
}

func serverPackages(cfg *config.Config, h *config.Host) *steps.Packages {
	p := []string{"borgbackup", "rsync", "openssh-client"}
	if len(h.Shares) > 0 {
		p = append(p, "cifs-utils")
	}
	for _, r := range h.Repos {
		if len(r.VMs) > 0 {
			p = append(p, "libvirt-clients")
			break
		}
	}
	return packages(cfg, h, p...)
}

// diskOf is the mountpoint of the host's disk or share holding p, "" if none.
func diskOf(h *config.Host, p string) string {
	var mounts []string
	for _, d := range h.Disks {
		mounts = append(mounts, d.Mountpoint)
	}
	for _, s := range h.Shares {
		mounts = append(mounts, s.Mountpoint)
	}
	for i := range h.Datasets {
		mounts = append(mounts, datasetMount(&h.Datasets[i]))
	}
	return layout.Mountpoint(p, mounts)
}

// fstabMount is one line of borgkit's fstab block.
type fstabMount struct {
	Source, Target, FSType string
	Options                []string
	Pass                   int
}

// mountSteps creates the mountpoints and borgkit's fstab block for the
// host's plain disks and CIFS shares. LUKS disks are mounted by the unlock
// job, not at boot from fstab.
func mountSteps(cfg *config.Config, h *config.Host) ([]plan.Step, error) {
	var ms []fstabMount
	var s []plan.Step
	for _, d := range h.Disks {
		if d.LUKS != nil {
			continue
		}
		ms = append(ms, fstabMount{Source: "UUID=" + d.UUID, Target: d.Mountpoint, FSType: d.FSTypeOrDefault(),
			Options: withDefault(d.Options, "nofail"), Pass: 2})
	}
	for i, sh := range h.Shares {
		opts := withDefault(withDefault(sh.Options, "_netdev"), "nofail")
		opts = append(opts, "credentials="+sh.Credentials)
		if sh.ReadOnly {
			opts = append(opts, "ro")
		}
		ms = append(ms, fstabMount{Source: sh.Source, Target: sh.Mountpoint, FSType: "cifs", Options: opts})
		placeholder, err := templates.Render("nas-credentials", nil)
		if err != nil {
			return nil, err
		}
		s = append(s, &steps.Secret{Path: sh.Credentials, Mode: 0o600, Owner: host.Root,
			What:        "placeholder CIFS credentials for " + sh.Name + " (fill in username and password)",
			Generate:    func() ([]byte, error) { return placeholder, nil },
			Placeholder: placeholder,
			Warn: placeholderWarning(cfg, h, sh.Credentials, fmt.Sprintf("$.hosts[%d].shares[%d].credentials", hostIndex(cfg, h), i),
				"the "+sh.Name+" share ("+sh.Source+") will not mount, and every mirror to it fails", "the share's username= and password=")})
	}
	if len(ms) == 0 {
		return s, nil
	}
	for _, m := range ms {
		s = append(s, &steps.Dir{Path: m.Target, Mode: 0o755, Owner: host.Root, CreateOnly: true})
	}
	lines, err := templates.Render("fstab", map[string]any{"Mounts": ms})
	if err != nil {
		return nil, err
	}
	var targets []string
	var taken []fstab.Mount
	for _, m := range ms {
		targets = append(targets, m.Target)
		taken = append(taken, fstab.Mount{Source: m.Source, Target: m.Target, Share: m.FSType == "cifs"})
	}
	s = append(s, &steps.Block{
		Path: layout.Fstab, Lines: lines, Mode: 0o644, Owner: host.Root,
		Note:     "(" + layout.Managed() + ")",
		Vet:      fstab.Vet(targets),
		TakeOver: fstab.TakeOver(taken),
	})
	// Local disks are mounted now, so their repos are made in this run; a
	// share waits for its credentials, which the user fills in.
	for _, d := range h.Disks {
		if d.LUKS == nil {
			s = append(s, &steps.Mount{Target: d.Mountpoint, UUID: d.UUID})
		}
	}
	return s, nil
}

func withDefault(opts []string, o string) []string {
	for _, x := range opts {
		if x == o {
			return opts
		}
	}
	return append(append([]string{}, opts...), o)
}

func msmtpSteps(cfg *config.Config, h *config.Host, a config.Alerts) ([]plan.Step, error) {
	smtp := a.SMTP
	port := smtp.Port
	if port == 0 {
		port = 587
	}
	data := map[string]any{
		"Managed": layout.Managed(), "LogDir": layout.LogDir, "Host": smtp.Host, "Port": port,
		"TLS": smtp.TLS == nil || *smtp.TLS, "From": a.EnvelopeFrom(), "User": smtp.User,
		"PasswordFile": smtp.PasswordFile, "PasswordFileQuoted": host.QuoteArgv([]string{smtp.PasswordFile}),
	}
	rc, err := templates.Render("msmtprc", data)
	if err != nil {
		return nil, err
	}
	var s []plan.Step
	if smtp.PasswordFile != "" {
		sec := placeholderSecret(cfg, h, smtp.PasswordFile, cfg.AlertsPath(h, "smtp")+".password_file",
			"placeholder SMTP password (replace it with the real one)",
			"every alert mail fails", "the SMTP password of "+smtpAccount(smtp, a.From))
		if from := smtp.PasswordFrom; from != "" {
			sec.What, sec.ImportWhat = "the SMTP password", "copy it from the password line of "+from
			sec.Import = func(ctx context.Context, h host.Host) ([]byte, error) {
				b, err := h.ReadFile(ctx, from)
				if err != nil {
					return nil, fmt.Errorf("password_from: %w", err)
				}
				p, err := legacy.MsmtpPassword(b)
				if err != nil {
					return nil, fmt.Errorf("password_from %s: %w", from, err)
				}
				return p, nil
			}
		}
		s = append(s, sec)
	}
	return append(s, managedFile(layout.Msmtprc, rc, 0o600)), nil
}

// smtpAccount names the mail account whose password is wanted.
func smtpAccount(smtp *config.SMTP, from string) string {
	user := smtp.User
	if user == "" {
		user = from
	}
	return user + " at " + smtp.Host
}

// placeholderText is what borgkit writes into a secret only the user can
// supply, so the file exists with the right owner and mode.
const placeholderText = "CHANGE-ME\n"

// placeholderSecret is a secret file borgkit creates holding the
// placeholder, whose check warns until the user puts what in it.
func placeholderSecret(cfg *config.Config, h *config.Host, file, yamlPath, what, consequence, want string) *steps.Secret {
	return &steps.Secret{Path: file, Mode: 0o600, Owner: host.Root, What: what,
		Generate:    func() ([]byte, error) { return []byte(placeholderText), nil },
		Placeholder: []byte(placeholderText),
		Warn:        placeholderWarning(cfg, h, file, yamlPath, consequence, want)}
}

// placeholderWarning names the file to edit on which host, what goes in
// it, what fails until then, and the config line that names the file.
func placeholderWarning(cfg *config.Config, h *config.Host, file, yamlPath, consequence, want string) string {
	return fmt.Sprintf("replace the placeholder in %s on %s with %s: until then %s (%s names the file, at %s)",
		file, h.Name, want, consequence, config.Field(yamlPath), cfg.Where(yamlPath))
}

// hostIndex is h's place in the config's hosts, for YAML paths.
func hostIndex(cfg *config.Config, h *config.Host) int {
	for i := range cfg.Hosts {
		if cfg.Hosts[i].Name == h.Name {
			return i
		}
	}
	return -1
}

// tokenSteps create the push channels' token files, each holding the
// placeholder until the user puts the token in it.
func tokenSteps(cfg *config.Config, h *config.Host, a config.Alerts) []plan.Step {
	var s []plan.Step
	if a.Ntfy != nil && a.Ntfy.TokenFile != "" {
		s = append(s, placeholderSecret(cfg, h, a.Ntfy.TokenFile, cfg.AlertsPath(h, "ntfy")+".token_file",
			"placeholder ntfy access token", "every ntfy alert is refused", "the topic's access token (tk_...)"))
	}
	if a.Webhook != nil && a.Webhook.TokenFile != "" && (a.Ntfy == nil || a.Webhook.TokenFile != a.Ntfy.TokenFile) {
		s = append(s, placeholderSecret(cfg, h, a.Webhook.TokenFile, cfg.AlertsPath(h, "webhook")+".token_file",
			"placeholder webhook token", "every webhook alert is refused", "the webhook's bearer token"))
	}
	return s
}

// remoteRepoAccess is what borg needs to reach the host's repos on borg
// servers: borgkit's own repo identity, and a known_hosts of exactly the
// pinned host keys (see borg.RSH). None when every repo is local.
func remoteRepoAccess(h *config.Host) []plan.Step {
	var kh bytes.Buffer
	seen := map[string]bool{}
	for i := range h.Repos {
		r := &h.Repos[i]
		if !r.Remote() {
			continue
		}
		line := repoKnownHostsLine(r) + "\n"
		if !seen[line] {
			seen[line] = true
			kh.WriteString(line)
		}
	}
	if kh.Len() == 0 {
		return nil
	}
	return []plan.Step{
		&steps.Dir{Path: layout.SSHDir, Mode: 0o700, Owner: host.Root},
		&steps.SSHKey{Path: layout.RepoIdentity, Comment: "borgkit-repo@" + h.Name},
		&steps.Block{Path: layout.RepoKnownHosts, Lines: kh.Bytes(), Mode: 0o644, Owner: host.Root, Note: "(" + layout.Managed() + ")"},
	}
}

// repoKnownHostsLine pins remote repo r's server: TYPE BASE64 only, as
// validation checked it; the key's comment is the user's and stays out.
func repoKnownHostsLine(r *config.Repo) string {
	f := strings.Fields(r.HostKey)
	return r.Location().KnownHostsName() + " " + f[0] + " " + f[1]
}
