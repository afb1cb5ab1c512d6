package config

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// A repo's path is a local directory or a borg server reached over SSH:
// borg's ssh://USER@HOST[:PORT]/PATH, or its scp-like USER@HOST:PATH.
// Both are read here into one RepoLocation, and every repo reaches borg
// as the ssh:// form, so a value accepted here cannot carry syntax into
// borg's location grammar, ssh's argv or a known_hosts line.

// RepoLocation is where a repo is.
type RepoLocation struct {
	// User, Host and Port reach the borg server; Host is "" for a local
	// repo. Port 0 is ssh's default, 22.
	User, Host string
	Port       int
	// Path is the directory: absolute, or for a remote repo relative to
	// the remote user's home when it starts with "./" (what hosted borg
	// services give: ssh://u1@u1.your-storagebox.de:23/./backups/srv).
	Path string
}

// Remote reports whether the repo is on a borg server over SSH.
func (l RepoLocation) Remote() bool { return l.Host != "" }

// PortOrDefault is the SSH port, 22 when unset.
func (l RepoLocation) PortOrDefault() int {
	if l.Port == 0 {
		return 22
	}
	return l.Port
}

// Addr is HOST:PORT, for a TCP dial (an IPv6 address in brackets).
func (l RepoLocation) Addr() string {
	h := l.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h + ":" + strconv.Itoa(l.PortOrDefault())
}

// KnownHostsName is the host as ssh looks it up in known_hosts: HOST on
// port 22, [HOST]:PORT on any other.
func (l RepoLocation) KnownHostsName() string {
	if l.PortOrDefault() == 22 {
		return l.Host
	}
	return "[" + l.Host + "]:" + strconv.Itoa(l.Port)
}

// String is the location as borg takes it: the path of a local repo, the
// ssh:// URL of a remote one (with its port always written).
func (l RepoLocation) String() string {
	if !l.Remote() {
		return l.Path
	}
	p := l.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // "./x" is home-relative in borg's ssh:// form
	}
	return "ssh://" + l.User + "@" + l.Addr() + p
}

// RepoURLError is why a repo path does not parse, and the byte offset in
// it the message points at.
type RepoURLError struct {
	Offset int
	Msg    string
}

func (e *RepoURLError) Error() string { return e.Msg }

var (
	// remoteUserRE: what POSIX and every hosted service's account names
	// hold; no '@', ':' or '/' (borg's URL grammar), no leading '-' (ssh's
	// argv), no space or quote (BORG_RSH and authorized_keys).
	remoteUserRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$`)
	// schemeRE is a URL scheme, for naming a wrong one.
	schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
	// remotePathRE is what a remote path may hold: borg sends it to the
	// server, which the restricted authorized_keys line matches against
	// --restrict-to-path; a space, quote or shell character in it would
	// need quoting there and in the runbook's commands.
	remotePathRE = regexp.MustCompile(`^[A-Za-z0-9/._+@%=,~-]*$`)
)

// ParseRepoLocation reads a repo path. A string that is no URL and has no
// "USER@HOST:" is a local path, returned as it stands for the path checks.
func ParseRepoLocation(s string) (RepoLocation, *RepoURLError) {
	switch {
	case strings.HasPrefix(s, "ssh://"):
		return parseSSHURL(s)
	case schemeRE.MatchString(s):
		scheme, _, _ := strings.Cut(s, "://")
		return RepoLocation{}, &RepoURLError{0, fmt.Sprintf("scheme %q: a remote repo is ssh://USER@HOST[:PORT]/PATH or USER@HOST:PATH (borg's own forms)", scheme)}
	case strings.HasPrefix(s, "/"):
		return RepoLocation{Path: s}, nil
	}
	host, p, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(host, "/") {
		return RepoLocation{Path: s}, nil // relative local path: the path checks name it
	}
	user, host, ok := strings.Cut(host, "@")
	if !ok {
		return RepoLocation{}, &RepoURLError{0, fmt.Sprintf("%q has no user: write USER@%s:%s (borgkit never lets ssh pick the user)", s, s[:strings.Index(s, ":")], p)}
	}
	l := RepoLocation{User: user, Host: host}
	if e := l.checkUserHost(0, len(user)+1); e != nil {
		return RepoLocation{}, e
	}
	at := len(user) + 1 + len(host) + 1
	if _, err := strconv.Atoi(strings.SplitN(p, "/", 2)[0]); err == nil && p != "" {
		return RepoLocation{}, &RepoURLError{at, fmt.Sprintf("%q: USER@HOST:PATH has no port (%q would be a directory named %s); write ssh://%s@%s:PORT/PATH", s, p, strings.SplitN(p, "/", 2)[0], user, host)}
	}
	if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "./") {
		p = "./" + p // borg reads USER@HOST:rel relative to the home
	}
	l.Path = p
	if e := l.checkPath(at); e != nil {
		return RepoLocation{}, e
	}
	return l, nil
}

func parseSSHURL(s string) (RepoLocation, *RepoURLError) {
	const scheme = len("ssh://")
	rest := s[scheme:]
	slash := strings.Index(rest, "/")
	if slash < 0 {
		return RepoLocation{}, &RepoURLError{len(s), fmt.Sprintf("%q has no path: write ssh://USER@HOST[:PORT]/PATH", s)}
	}
	auth, p := rest[:slash], rest[slash:]
	user, hostport, ok := strings.Cut(auth, "@")
	if !ok {
		return RepoLocation{}, &RepoURLError{scheme, fmt.Sprintf("%q has no user: write ssh://USER@%s%s (borgkit never lets ssh pick the user)", s, auth, p)}
	}
	l := RepoLocation{User: user}
	hostAt := scheme + len(user) + 1
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.Index(hostport, "]")
		if end < 0 {
			return RepoLocation{}, &RepoURLError{hostAt, fmt.Sprintf("%q: the IPv6 address has no closing ]", s)}
		}
		host, port = hostport[1:end], strings.TrimPrefix(hostport[end+1:], ":")
		if !strings.Contains(host, ":") {
			return RepoLocation{}, &RepoURLError{hostAt, fmt.Sprintf("%q: brackets are for an IPv6 address, not %q", s, host)}
		}
	} else if h, pt, ok := strings.Cut(hostport, ":"); ok {
		host, port = h, pt
		if port == "" {
			return RepoLocation{}, &RepoURLError{hostAt + len(h) + 1, fmt.Sprintf("%q: the port after %q is empty", s, h+":")}
		}
	}
	l.Host = host
	if e := l.checkUserHost(scheme, hostAt); e != nil {
		return RepoLocation{}, e
	}
	if port != "" {
		portAt := scheme + len(auth) - len(port)
		n, err := strconv.Atoi(port)
		switch {
		case err != nil || strings.HasPrefix(port, "+") || strings.HasPrefix(port, "-"):
			return RepoLocation{}, &RepoURLError{portAt, fmt.Sprintf("port %q is not a number", port)}
		case n < 1 || n > 65535:
			return RepoLocation{}, &RepoURLError{portAt, fmt.Sprintf("port %d is out of range 1-65535", n)}
		}
		l.Port = n
	}
	switch {
	case strings.HasPrefix(p, "/./"), strings.HasPrefix(p, "/~/"):
		p = "./" + p[3:] // home-relative, as borg reads both
	case p == "/" || p == "/." || p == "/~":
		return RepoLocation{}, &RepoURLError{scheme + len(auth), fmt.Sprintf("%q names no directory: a repo needs one of its own", s)}
	}
	l.Path = p
	if e := l.checkPath(scheme + len(auth)); e != nil {
		return RepoLocation{}, e
	}
	return l, nil
}

// checkUserHost checks the user (at userAt in the value) and the host (at hostAt).
func (l RepoLocation) checkUserHost(userAt, hostAt int) *RepoURLError {
	switch {
	case l.User == "":
		return &RepoURLError{userAt, "the user before @ is empty"}
	case !remoteUserRE.MatchString(l.User):
		return &RepoURLError{userAt, fmt.Sprintf("user %q: use letters, digits, '_', '.' and '-', not starting with '-' (at most 32)", l.User)}
	case l.Host == "":
		return &RepoURLError{hostAt, "the host after @ is empty"}
	}
	if why := hostAddressPort(l.Host, "the URL (ssh://USER@HOST:PORT/PATH)"); why != "" {
		return &RepoURLError{hostAt, fmt.Sprintf("host %q %s", l.Host, why)}
	}
	return nil
}

// checkPath checks a remote path, at offset at in the value.
func (l RepoLocation) checkPath(at int) *RepoURLError {
	p := l.Path
	rel := strings.TrimPrefix(p, "./")
	switch {
	case rel == "" || rel == "/":
		return &RepoURLError{at, "the path is empty: a repo needs a directory of its own"}
	case strings.HasPrefix(rel, "~"):
		return &RepoURLError{at, fmt.Sprintf("path %q: write a path relative to the home as ./PATH, or an absolute one (borg does not expand ~USER)", p)}
	case strings.HasPrefix(rel, "/") && rel != p:
		return &RepoURLError{at, fmt.Sprintf("path %q has a doubled /", p)}
	}
	if why := borgLocation(p); why != "" {
		return &RepoURLError{at, fmt.Sprintf("path %q %s", p, why)}
	}
	if !remotePathRE.MatchString(p) {
		i := strings.IndexFunc(p, func(r rune) bool { return !remotePathRE.MatchString(string(r)) })
		return &RepoURLError{at + i, fmt.Sprintf("path %q contains %q: a remote path is letters, digits and / . _ + @ %% = , ~ - (it reaches borg serve's --restrict-to-path and the runbook's commands)", p, p[i:i+1])}
	}
	for _, seg := range strings.Split(strings.TrimPrefix(rel, "/"), "/") {
		if seg == ".." {
			return &RepoURLError{at, fmt.Sprintf("path %q must not contain \"..\": borg serve --restrict-to-path would refuse it, or worse, allow it", p)}
		}
	}
	if c := path.Clean(rel); c != rel {
		return &RepoURLError{at, fmt.Sprintf("path %q is not clean, write %q", p, cleanRemote(p))}
	}
	return nil
}

func cleanRemote(p string) string {
	if strings.HasPrefix(p, "./") {
		return "./" + path.Clean(p[2:])
	}
	return path.Clean(p)
}

// Location is where the repo is; a path that does not parse is a local
// one (validation has refused it already in a loaded config).
func (r *Repo) Location() RepoLocation {
	l, err := ParseRepoLocation(r.Path)
	if err != nil {
		return RepoLocation{Path: r.Path}
	}
	return l
}

// Remote reports whether the repo is on a borg server over SSH.
func (r *Repo) Remote() bool { return r.Location().Remote() }

// BorgLocation is the repo as borg's argv takes it.
func (r *Repo) BorgLocation() string { return r.Location().String() }
