package config

import (
	"fmt"
	"net/mail"
	"strings"
)

// Alerts and the thresholds that raise them.

func (v *validator) alertsBlock(p string, a *Alerts) {
	if a.To != "" {
		if strings.ContainsAny(a.To, "\r\n") {
			v.add(p+".to", ErrBadValue, "to %q contains a line break, which would inject mail headers", a.To)
		} else if _, err := mail.ParseAddressList(a.To); err != nil {
			v.add(p+".to", ErrBadValue, "to %q is not a mail address list: %v", a.To, err)
		}
	}
	if a.From != "" {
		if strings.ContainsAny(a.From, "\r\n") {
			v.add(p+".from", ErrBadValue, "from %q contains a line break, which would inject mail headers", a.From)
		} else if addr, err := mail.ParseAddress(a.From); err != nil {
			v.add(p+".from", ErrBadValue, "from %q is not a mail address: %v", a.From, err)
		} else if !mailAddrSpecRE.MatchString(addr.Address) || hostAddress(addr.Address[strings.LastIndex(addr.Address, "@")+1:]) != "" {
			v.add(p+".from", ErrBadValue, "from %q: the address %q must be plain (letters, digits and . _ %% + = - before the @, a host name after it): msmtp's configuration carries it as the envelope sender", a.From, addr.Address)
		}
	}
	if hasCtl(a.SubjectPrefix) {
		v.add(p+".subject_prefix", ErrBadValue, "subject_prefix %q contains a control character or line break", a.SubjectPrefix)
	}
	for i, arg := range a.Sendmail {
		ap := fmt.Sprintf("%s.sendmail[%d]", p, i)
		if i == 0 {
			if v.path(ap, "sendmail command", arg, true) && strings.HasSuffix(arg, "/") {
				v.add(ap, ErrBadPath, "sendmail command %q is a directory", arg)
			}
			continue
		}
		if strings.ContainsAny(arg, "\n\r\x00") {
			v.add(ap, ErrBadValue, "sendmail argument %q contains a line break or NUL", arg)
		}
	}
	if s := a.SMTP; s != nil {
		sp := p + ".smtp"
		v.address(sp+".host", "smtp host", s.Host)
		v.port(sp+".port", s.Port)
		if s.User != "" && !loginRE.MatchString(s.User) {
			v.add(sp+".user", ErrBadValue, "user %q: use letters, digits and . _ %% + = @ : / ~ - only (msmtp's configuration carries it unquoted)", s.User)
		}
		if v.path(sp+".password_file", "password_file", s.PasswordFile, false) {
			v.shellWord(sp+".password_file", "password_file", s.PasswordFile)
		}
		if v.path(sp+".password_from", "password_from", s.PasswordFrom, false) {
			switch {
			case s.PasswordFile == "":
				v.add(sp+".password_from", ErrRequired, "password_from needs password_file: the file the password is copied into")
			case s.PasswordFrom == s.PasswordFile:
				v.add(sp+".password_from", ErrBadValue, "password_from is password_file itself; leave password_from out")
			}
		}
	}
	if a.PingURL != "" {
		if err := CheckPingURL(a.PingURL); err != nil {
			v.add(p+".ping_url", ErrBadValue, "%v", err)
		}
	}
	v.path(p+".textfile_dir", "textfile_dir", a.TextfileDir, false)
	v.ntfy(p+".ntfy", a.Ntfy)
	v.webhook(p+".webhook", a.Webhook)
}

// effectiveAlerts insists every host can mail: silence must mean healthy,
// never "had nowhere to send the alert".
func (v *validator) effectiveAlerts(p string, h *Host) {
	a := v.c.HostAlerts(h)
	at := "$.alerts"
	if h.Alerts != nil {
		at = p + ".alerts"
	}
	if a.To == "" {
		v.add(at+".to", ErrRequired, "alerts to is required (host %q has nowhere to send alerts): set alerts.to at the top level or in the host", h.Name)
	}
	if a.From == "" {
		v.add(at+".from", ErrRequired, "alerts from is required (host %q): set alerts.from at the top level or in the host", h.Name)
	}
}

func (v *validator) thresholds(p string, t Thresholds) {
	v.duration(p+".nightly_max_age", "nightly_max_age", t.NightlyMaxAge)
	v.duration(p+".sync_max_age", "sync_max_age", t.SyncMaxAge)
	v.duration(p+".heartbeat_max_age", "heartbeat_max_age", t.HeartbeatMaxAge)
	v.duration(p+".snapshot_max_lag", "snapshot_max_lag", t.SnapshotMaxLag)
	v.duration(p+".watchdog_max_age", "watchdog_max_age", t.WatchdogMaxAge)
	if t.DiskWarnPercent < 0 || t.DiskWarnPercent > 100 || t.DiskWarnPercent == 0 && v.present(p+".disk_warn_percent") {
		v.add(p+".disk_warn_percent", ErrBadValue, "disk_warn_percent %d is out of range 1..100", t.DiskWarnPercent)
	}
}
