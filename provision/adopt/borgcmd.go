package adopt

import (
	"path"
	"regexp"
	"strings"

	"github.com/borgkit/borgkit/provision/legacy"
)

// borgCall is one borg command of a hand-built script, its options split
// from its positional arguments.
type borgCall struct {
	Sub  string
	Opts map[string][]string // "--keep-daily": ["3"]; a flag maps to [""]
	Pos  []string
	Cmd  legacy.Cmd
}

// borgValued are borg's options that take a value, long and short, for
// the subcommands a backup script runs.
var borgValued = map[string]string{
	"--compression": "--compression", "-C": "--compression", "--exclude": "--exclude", "-e": "--exclude",
	"--exclude-from": "--exclude-from", "--pattern": "--pattern", "--patterns-from": "--patterns-from",
	"--comment": "--comment", "--timestamp": "--timestamp", "--chunker-params": "--chunker-params",
	"--checkpoint-interval": "--checkpoint-interval", "--upload-ratelimit": "--upload-ratelimit",
	"--remote-path": "--remote-path", "--rsh": "--rsh", "--lock-wait": "--lock-wait", "--files-cache": "--files-cache",
	"--filter": "--filter", "--glob-archives": "--glob-archives", "-a": "--glob-archives", "--prefix": "--prefix",
	"-P": "--prefix", "--keep-within": "--keep-within", "--keep-last": "--keep-last", "--keep-secondly": "--keep-secondly",
	"--keep-minutely": "--keep-minutely", "--keep-hourly": "--keep-hourly", "-H": "--keep-hourly",
	"--keep-daily": "--keep-daily", "-d": "--keep-daily", "--keep-weekly": "--keep-weekly", "-w": "--keep-weekly",
	"--keep-monthly": "--keep-monthly", "-m": "--keep-monthly", "--keep-yearly": "--keep-yearly", "-y": "--keep-yearly",
	"--first": "--first", "--last": "--last", "--strip-components": "--strip-components", "--sort-by": "--sort-by",
	"--format": "--format", "--threshold": "--threshold", "--encryption": "--encryption",
}

// parseBorg reads c as a borg command; false when it is not one.
func parseBorg(c legacy.Cmd) (borgCall, bool) {
	a := c.Args()
	if len(a) < 2 || path.Base(a[0]) != "borg" {
		return borgCall{}, false
	}
	b := borgCall{Opts: map[string][]string{}, Cmd: c}
	rest := a[1:]
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		if isRedirect(w) {
			if (w == ">" || w == ">>" || w == "2>" || w == "<") && i+1 < len(rest) {
				i++
			}
			continue
		}
		if strings.HasPrefix(w, "-") && len(w) > 1 {
			k, v, hasV := strings.Cut(w, "=")
			if long, ok := borgValued[k]; ok {
				if !hasV && i+1 < len(rest) {
					i++
					v = rest[i]
				}
				b.Opts[long] = append(b.Opts[long], v)
				continue
			}
			b.Opts[k] = append(b.Opts[k], "")
			continue
		}
		if b.Sub == "" {
			b.Sub = w
			continue
		}
		b.Pos = append(b.Pos, w)
	}
	return b, b.Sub != ""
}

func isRedirect(w string) bool {
	return strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>") || strings.HasPrefix(w, "&>") || strings.HasPrefix(w, "<") || strings.HasPrefix(w, "|")
}

// Repo is the repository a borg call works on ("" when it names none),
// and the archive name after "::", if any.
func (b borgCall) Repo() (repo, archive string) {
	if len(b.Pos) == 0 {
		return "", ""
	}
	repo, archive, _ = strings.Cut(b.Pos[0], "::")
	return path.Clean(strings.TrimSuffix(repo, "/")), archive
}

func (b borgCall) Has(opt string) bool { _, ok := b.Opts[opt]; return ok }

func (b borgCall) Last(opt string) string {
	v := b.Opts[opt]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// rsyncCall is one rsync of a hand-built script.
type rsyncCall struct {
	Flags    map[string]bool
	MaxDel   string
	Src, Dst string
	Cmd      legacy.Cmd
}

func parseRsync(c legacy.Cmd) (rsyncCall, bool) {
	a := c.Args()
	if len(a) < 3 || path.Base(a[0]) != "rsync" {
		return rsyncCall{}, false
	}
	r := rsyncCall{Flags: map[string]bool{}, Cmd: c}
	var pos []string
	for i := 1; i < len(a); i++ {
		w := a[i]
		switch {
		case isRedirect(w):
			if (w == ">" || w == ">>" || w == "2>") && i+1 < len(a) {
				i++
			}
		case w == "-e" || w == "--rsh" || w == "--exclude" || w == "--include" || w == "--filter" || w == "--log-file":
			i++
		case strings.HasPrefix(w, "--max-delete="):
			r.MaxDel = strings.TrimPrefix(w, "--max-delete=")
		case strings.HasPrefix(w, "--"):
			k, _, _ := strings.Cut(w, "=")
			r.Flags[k] = true
		case strings.HasPrefix(w, "-") && len(w) > 1:
			for _, ch := range w[1:] {
				r.Flags["-"+string(ch)] = true
			}
		default:
			pos = append(pos, w)
		}
	}
	if len(pos) < 2 {
		return rsyncCall{}, false
	}
	r.Src, r.Dst = pos[len(pos)-2], pos[len(pos)-1]
	return r, true
}

// Remote splits an rsync target "alias:path" (not a local path, not
// rsync://); ok is false for a local one.
func remote(target string) (alias, rel string, ok bool) {
	if strings.HasPrefix(target, "/") || strings.Contains(target, "://") {
		return "", "", false
	}
	alias, rel, ok = strings.Cut(target, ":")
	if !ok || alias == "" || strings.Contains(alias, "/") {
		return "", "", false
	}
	if i := strings.LastIndexByte(alias, '@'); i >= 0 {
		alias = alias[i+1:]
	}
	return alias, rel, true
}

// archivePrefixOf is the part of an archive name (or the template in a
// script, "nightly-{now:%Y-%m-%dT%H:%M}") before its date: "nightly-".
func archivePrefixOf(name string) string {
	if i := strings.IndexByte(name, '{'); i >= 0 {
		return name[:i]
	}
	if m := dateRE.FindStringIndex(name); m != nil {
		return name[:m[0]]
	}
	return ""
}

var dateRE = regexp.MustCompile(`\d{4}-?\d{2}-?\d{2}`)

var emailRE = regexp.MustCompile(`^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$`)

// addressOf is the bare address in "Name <a@b>" or "a@b".
func addressOf(s string) string {
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			return s[i+1 : i+j]
		}
	}
	return strings.TrimSpace(s)
}
