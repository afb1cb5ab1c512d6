package adopt

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/legacy"
)

// mirrors reads the setup's rsync commands: to an ssh alias (the offsite
// host, through its rrsync root) and to a local path (the NAS).
func (s *survey) mirrors() {
	s.remoteRel = map[string]string{}
	for _, r := range s.rsyncs {
		src := path.Clean(r.Src)
		if alias, rel, ok := remote(r.Dst); ok {
			rel = strings.Trim(path.Clean("/"+rel), "/")
			if repo := s.repoAt(src); repo != nil {
				s.remoteAlias = alias
				s.remoteRel[repo.Name] = rel
			} else if strings.Contains(rel, layout.HeartbeatDir+"/") {
				s.heartbeat = rel
			}
			continue
		}
		if !strings.HasPrefix(r.Dst, "/") || !strings.HasPrefix(r.Src, "/") {
			continue
		}
		dst := path.Clean(r.Dst)
		var mp string
		switch repo := s.repoAt(src); {
		case repo != nil && path.Base(dst) == path.Base(repo.Path):
			mp = path.Dir(dst)
		case s.holdsRepos(src):
			mp = dst
		default:
			continue
		}
		s.localMirror(r, mp)
	}
}

// repoAt is the repo at p, nil if none.
func (s *survey) repoAt(p string) *config.Repo {
	for i := range s.srv.Repos {
		if s.srv.Repos[i].Path == p {
			return &s.srv.Repos[i]
		}
	}
	return nil
}

// holdsRepos reports whether the repos live right in dir.
func (s *survey) holdsRepos(dir string) bool {
	for _, r := range s.srv.Repos {
		if path.Dir(r.Path) == dir {
			return true
		}
	}
	return false
}

func (s *survey) localMirror(r rsyncCall, mp string) {
	for _, m := range s.srv.Mirrors {
		if m.Path == mp {
			return
		}
	}
	l := s.fstabFor(mp)
	if l == nil {
		s.leave("the mirror at %s (%s) is on no filesystem of fstab: borgkit mirrors only onto a mounted disk or share; add it to the config by hand", mp, origin(r.Cmd))
		return
	}
	name := path.Base(l.Target)
	m := config.Mirror{Name: name, Path: mp, SizeOnly: r.Flags["--size-only"]}
	if n, err := strconv.Atoi(r.MaxDel); err == nil && n > 0 {
		m.MaxDelete = n
	}
	mi := len(s.srv.Mirrors)
	s.srv.Mirrors = append(s.srv.Mirrors, m)
	s.notes.add(fmt.Sprintf("%s.mirrors[%d]", srvPath, mi), "from rsync at %s: the copies stay where they are (%s/REPO), so the first sync sends only what changed", origin(r.Cmd), mp)
	if !r.Flags["--delete"] {
		s.notes.add(fmt.Sprintf("%s.mirrors[%d]", srvPath, mi), "adopt: the old rsync ran without --delete; borgkit's sync deletes what the repo no longer has")
	}
	if l.Typ == "cifs" || l.Typ == "smb3" {
		s.share(l, name)
		return
	}
	d := s.disk(l, name)
	s.srv.Disks = append(s.srv.Disks, d)
	s.notes.add(fmt.Sprintf("%s.disks[%d]", srvPath, len(s.srv.Disks)-1), "the mirror's disk, from /etc/fstab line %d: %s", l.Line, strings.TrimSpace(l.Text))
}

// share is a CIFS line as a share; its password never enters the config.
func (s *survey) share(l *legacy.FstabLine, name string) {
	sh := config.Share{Name: name, Source: l.Source, Mountpoint: l.Target}
	p := fmt.Sprintf("%s.shares[%d]", srvPath, len(s.srv.Shares))
	var inline bool
	for _, o := range l.Options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "credentials", "cred":
			sh.Credentials = v
		case "password", "pass", "username", "user":
			inline = true
		case "ro":
			sh.ReadOnly = true
		case "_netdev", "nofail", "defaults", "rw":
		default:
			sh.Options = append(sh.Options, o)
		}
	}
	s.notes.add(p, "from /etc/fstab line %d (its options but the credentials)", l.Line)
	if sh.Credentials == "" {
		sh.Credentials = "/etc/borgkit/" + name + ".credentials"
		if inline {
			s.notes.guess(p+".credentials", "the fstab line carries the user and password inline; borgkit reads them from this file (username=, password=; 0600), which provisioning makes with placeholders: fill it in before the next mount")
		} else {
			s.notes.guess(p+".credentials", "the fstab line names no credentials file")
		}
		s.leave("the NAS credentials for %s: write them into %s", l.Source, sh.Credentials)
	}
	s.srv.Shares = append(s.srv.Shares, sh)
}

// mail reads the alert address and msmtp's account.
func (s *survey) mail() {
	s.alertTo()
	s.msmtp(s.h, s.srv.Name, &s.cfg.Alerts, "alerts")
}

// msmtp reads a host's msmtprc into alerts (at YAML path p): the sender
// and the account, never the password, which provisioning copies into a
// file of its own.
func (s *survey) msmtp(h host.Host, name string, a *config.Alerts, p string) {
	b, err := h.ReadFile(s.ctx, layout.Msmtprc)
	if err != nil {
		s.notes.add(p+".smtp", "adopt: no %s on %s: mail goes through the sendmail command as it is", layout.Msmtprc, name)
		return
	}
	acct, err := legacy.Msmtprc(b)
	if err != nil {
		s.leave("%s on %s: %v", layout.Msmtprc, name, err)
		return
	}
	if f := acct.Get("from"); f != "" {
		a.From = addressOf(f)
		s.notes.add(p+".from", "from %s line %d on %s (account %s)", layout.Msmtprc, acct.Lines["from"], name, acct.Name)
	}
	if acct.Get("host") == "" {
		return
	}
	sm := &config.SMTP{Host: acct.Get("host"), User: acct.Get("user")}
	if n, err := strconv.Atoi(acct.Get("port")); err == nil && n != config.DefaultSMTPPort {
		sm.Port = n
	}
	if t := acct.Get("tls"); t == "off" {
		f := false
		sm.TLS = &f
	}
	a.SMTP = sm
	s.notes.add(p+".smtp", "from %s on %s (account %s); provisioning writes borgkit's own msmtprc from it, once the old one is retired", layout.Msmtprc, name, acct.Name)
	switch pe := acct.Get("passwordeval"); {
	case acct.Get("password") != "":
		sm.PasswordFile = "/etc/borgkit/smtp.pass"
		sm.PasswordFrom = layout.Msmtprc
		s.notes.add(p+".smtp.password_from", "%s line %d holds the password; provisioning copies it into password_file (0600) once, so this config never does", layout.Msmtprc, acct.Lines["password"])
	case strings.HasPrefix(pe, "cat "):
		sm.PasswordFile = strings.Trim(strings.TrimSpace(strings.TrimPrefix(pe, "cat ")), `"'`)
		s.notes.add(p+".smtp.password_file", "msmtp already reads the password from this file (passwordeval)")
	case pe != "":
		sm.PasswordFile = "/etc/borgkit/smtp.pass"
		s.notes.guess(p+".smtp.password_file", "msmtp gets the password from `%s`; borgkit reads a file: put the password there (0600)", pe)
		s.leave("the SMTP password on %s: msmtp runs %q for it; write it into %s", name, pe, sm.PasswordFile)
	}
}

// alertTo is the address the setup alerts: cron's MAILTO, else a mail
// variable of its scripts.
func (s *survey) alertTo() {
	for _, j := range s.jobs {
		if to := j.Env["MAILTO"]; emailRE.MatchString(to) {
			s.cfg.Alerts.To = to
			s.notes.add("alerts.to", "MAILTO in %s", j.File)
			return
		}
	}
	for _, j := range s.jobs {
		for _, sc := range j.Scripts {
			for k, v := range sc.Vars {
				if strings.Contains(strings.ToUpper(k), "MAIL") && emailRE.MatchString(v) {
					s.cfg.Alerts.To = v
					s.notes.add("alerts.to", "%s in %s", k, sc.Path)
					return
				}
			}
		}
	}
}
