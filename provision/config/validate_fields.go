package config

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Value grammars shared by every section: names, paths, durations,
// ports and addresses.

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

const maxNameLen = 64

func hasCtl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func (v *validator) name(path, what, s string) bool {
	switch {
	case s == "":
		v.add(path, ErrRequired, "%s name is required", what)
	case len(s) > maxNameLen:
		v.add(path, ErrBadName, "%s name %q is longer than %d characters", what, s, maxNameLen)
	case !nameRE.MatchString(s):
		v.add(path, ErrBadName, "%s name %q: use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit (it ends up in paths, unit names and mail subjects)", what, s)
	default:
		return true
	}
	return false
}

// unique reports a name already used earlier in the same list.
func (v *validator) unique(seen map[string]string, path, what, s string) {
	if s == "" {
		return
	}
	if first, ok := seen[s]; ok {
		v.add(path, ErrDuplicateName, "%s %q is already used at %s", what, s, displayPath(first))
		return
	}
	seen[s] = path
}

// path checks an absolute, clean path: every path ends up in fstab, unit
// files or argv, where "..", a relative path or a line break means a
// different file than the one reviewed.
func (v *validator) path(path, what, s string, required bool) bool {
	switch {
	case s == "":
		if required {
			v.add(path, ErrRequired, "%s is required", what)
		}
		return false
	case hasCtl(s):
		v.add(path, ErrBadPath, "%s %q contains a control character or line break", what, s)
	case !filepath.IsAbs(s):
		v.add(path, ErrBadPath, "%s %q must be an absolute path", what, s)
	case slices.Contains(strings.Split(s, "/"), ".."):
		v.add(path, ErrBadPath, "%s %q must not contain \"..\"", what, s)
	case filepath.Clean(s) != s:
		v.add(path, ErrBadPath, "%s %q is not clean, write %q", what, s, filepath.Clean(s))
	default:
		return true
	}
	return false
}

func (v *validator) noCtl(path, what, s string) bool {
	if hasCtl(s) {
		v.add(path, ErrBadValue, "%s %q contains a control character or line break", what, s)
		return false
	}
	return true
}

func (v *validator) duration(path, what, s string) {
	if s == "" {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		v.add(path, ErrBadDuration, "%s %q is not a duration such as 30h or 90m", what, s)
		return
	}
	if d <= 0 {
		v.add(path, ErrBadDuration, "%s %q must be positive", what, s)
	}
}

func (v *validator) port(path string, n int) {
	if n < 0 || n > 65535 || n == 0 && v.present(path) {
		v.add(path, ErrBadValue, "port %d is out of range 1..65535", n)
	}
}

func (v *validator) address(path, what, s string) {
	switch {
	case s == "":
		v.add(path, ErrRequired, "%s is required", what)
	default:
		port := "ssh.port"
		if strings.HasSuffix(path, ".smtp.host") {
			port = "smtp.port"
		}
		if why := hostAddressPort(s, port); why != "" {
			v.add(path, ErrBadValue, "%s %q %s", what, s, why)
		}
	}
}

// shellWord checks a path that a shell reads as one word (an
// authorized_keys command=, msmtp's passwordeval, rrsync's arguments).
func (v *validator) shellWord(path, what, s string) bool {
	if s != "" && !shellWordRE.MatchString(s) {
		v.add(path, ErrBadPath, "%s %q: use letters, digits and / . _ + @ %% = : , - only (it is read by a shell on the host)", what, s)
		return false
	}
	return true
}
