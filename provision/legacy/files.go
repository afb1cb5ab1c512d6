package legacy

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/fstab"
)

// Msmtp is one account of an msmtprc, after the defaults section and the
// account it inherits from ("account a : b") are applied.
type Msmtp struct {
	Name     string
	Settings map[string]string
	// Lines are the line numbers each setting came from.
	Lines map[string]int
}

// Get is a setting, "" if unset.
func (m *Msmtp) Get(k string) string { return m.Settings[k] }

// Msmtprc reads an msmtprc and returns the account msmtp uses by default:
// the one named "default" (or aliased to it), else the first.
func Msmtprc(data []byte) (*Msmtp, error) {
	defaults := map[string]string{}
	defLines := map[string]int{}
	accounts := map[string]*Msmtp{}
	var order []string
	var cur *Msmtp
	for i, raw := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(raw)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		key, val, _ := strings.Cut(l, " ")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "defaults":
			cur = nil
			continue
		case "account":
			name, parent, alias := strings.Cut(val, ":")
			name = strings.TrimSpace(name)
			a := &Msmtp{Name: name, Settings: map[string]string{}, Lines: map[string]int{}}
			for k, v := range defaults {
				a.Settings[k], a.Lines[k] = v, defLines[k]
			}
			if alias {
				for _, p := range strings.Split(parent, ",") {
					if pa, ok := accounts[strings.TrimSpace(p)]; ok {
						for k, v := range pa.Settings {
							a.Settings[k], a.Lines[k] = v, pa.Lines[k]
						}
					}
				}
			}
			accounts[name] = a
			order = append(order, name)
			cur = a
			continue
		}
		val = unquoteMsmtp(val)
		if cur == nil {
			defaults[key], defLines[key] = val, i+1
		} else {
			cur.Settings[key], cur.Lines[key] = val, i+1
		}
	}
	if a, ok := accounts["default"]; ok {
		return a, nil
	}
	if len(order) == 0 {
		return nil, errors.New("no account")
	}
	return accounts[order[0]], nil
}

// unquoteMsmtp removes the double quotes msmtp allows around a value.
func unquoteMsmtp(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return strings.ReplaceAll(strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`), `\\`, `\`)
	}
	return v
}

// MsmtpPassword is the inline password of an msmtprc's default account.
func MsmtpPassword(data []byte) ([]byte, error) {
	a, err := Msmtprc(data)
	if err != nil {
		return nil, err
	}
	p := a.Get("password")
	if p == "" {
		return nil, fmt.Errorf("account %q has no password line", a.Name)
	}
	return []byte(p + "\n"), nil
}

// SSHHost is a Host block of an OpenSSH client config.
type SSHHost struct {
	Patterns []string
	Settings map[string]string // lowercased keys, first value wins as in ssh
}

// SSHConfig reads the Host blocks of an ssh_config (Match blocks and
// Include are not followed).
func SSHConfig(data []byte) []SSHHost {
	var out []SSHHost
	var cur *SSHHost
	for _, raw := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(raw)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(strings.Replace(l, "=", " ", 1))
		key := strings.ToLower(f[0])
		switch key {
		case "host":
			out = append(out, SSHHost{Patterns: f[1:], Settings: map[string]string{}})
			cur = &out[len(out)-1]
			continue
		case "match":
			cur = nil
			continue
		}
		if cur == nil || len(f) < 2 {
			continue
		}
		if _, ok := cur.Settings[key]; !ok {
			cur.Settings[key] = strings.Trim(strings.Join(f[1:], " "), `"`)
		}
	}
	return out
}

// SSHAlias is the block whose patterns name alias literally, nil if none.
func SSHAlias(blocks []SSHHost, alias string) *SSHHost {
	for i := range blocks {
		for _, p := range blocks[i].Patterns {
			if p == alias {
				return &blocks[i]
			}
		}
	}
	return nil
}

// FstabLine is one mount line of /etc/fstab.
type FstabLine struct {
	Line                int // 1-based
	Source, Target, Typ string
	Options             []string
	Dump, Pass          int
	Text                string
}

// Fstab reads the lines of an fstab that mount(8) mounts, as fstab.Parse
// reads them (octal escapes undone, \040 is a space), the mountpoint
// cleaned.
func Fstab(data []byte) []FstabLine {
	var out []FstabLine
	for _, e := range fstab.Parse(data) {
		if e.Broken != "" {
			continue
		}
		f := strings.Fields(e.Text)
		fl := FstabLine{Line: e.Line, Source: e.Source, Target: e.Target, Typ: f[2], Text: e.Text}
		if strings.HasPrefix(fl.Target, "/") {
			fl.Target = path.Clean(fl.Target)
		}
		if len(f) > 3 {
			fl.Options = strings.Split(f[3], ",")
		}
		if len(f) > 4 {
			fl.Dump, _ = strconv.Atoi(f[4])
		}
		if len(f) > 5 {
			fl.Pass, _ = strconv.Atoi(f[5])
		}
		out = append(out, fl)
	}
	return out
}

// Option is the value of NAME= among mount options, "" if absent.
func Option(opts []string, name string) string {
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, name+"="); ok {
			return v
		}
	}
	return ""
}

// ErrNoPassphrase says a file holds no passphrase borgkit can read
// without running it.
var ErrNoPassphrase = errors.New("no plain BORG_PASSPHRASE or BORG_PASSCOMMAND=\"cat FILE\" in it")

// Passphrase reads what a shell file of a hand-built setup says borg's
// passphrase is: BORG_PASSPHRASE='...' (export or not, quoted or not),
// or BORG_PASSCOMMAND="cat FILE", in which case file names FILE and the
// passphrase is FILE's content. Nothing is run: a value that needs the
// shell ($(...), $VAR, backquotes) is refused.
func Passphrase(data []byte) (pass []byte, file string, err error) {
	s := ParseShell("", data, nil)
	if v, ok := s.Vars["BORG_PASSPHRASE"]; ok {
		if strings.ContainsAny(v, "$`") || v == "" {
			return nil, "", fmt.Errorf("BORG_PASSPHRASE is set from something only the shell can work out; %w", ErrNoPassphrase)
		}
		return []byte(v + "\n"), "", nil
	}
	if v, ok := s.Vars["BORG_PASSCOMMAND"]; ok {
		f := strings.Fields(v)
		if len(f) == 2 && f[0] == "cat" && strings.HasPrefix(f[1], "/") && !strings.ContainsAny(f[1], "$`") {
			return nil, f[1], nil
		}
		return nil, "", fmt.Errorf("BORG_PASSCOMMAND=%q is not \"cat FILE\"; %w", v, ErrNoPassphrase)
	}
	return nil, "", ErrNoPassphrase
}
