package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"
)

// The grammars of the files and command lines config values end up in.
// Each value is checked against every one it reaches, so a value accepted
// here cannot carry syntax into them (a comma into fstab options, "::"
// into a borg location, an option into known_hosts) nor fail a program
// half way through a run.

// shellWordRE is what a word may hold where a shell reads it: sshd runs an
// authorized_keys command= through the user's shell, msmtp a passwordeval.
var shellWordRE = regexp.MustCompile(`^[A-Za-z0-9/._+@%=:,-]+$`)

// fstabField says why s cannot be one whitespace-separated field of fstab
// as borgkit writes it, or "". Whitespace would need octal escapes, which
// the other files a path reaches (units, shells) do not decode; a
// backslash would be read as the start of one.
func fstabField(s string) string {
	switch {
	case strings.ContainsAny(s, " \t"):
		return "contains whitespace, which fstab cannot hold as written"
	case strings.Contains(s, `\`):
		return `contains a backslash, which fstab reads as an escape`
	case strings.HasPrefix(s, "#"):
		return "starts with #, which fstab reads as a comment"
	}
	return ""
}

// fstabOptionValue says why s cannot be the value of a mount option
// (credentials=PATH), or "": a comma starts another option (uid=0), a
// quote or whitespace ends the field.
func fstabOptionValue(s string) string {
	if why := fstabField(s); why != "" {
		return why
	}
	if strings.ContainsAny(s, `,"'`) {
		return "contains a comma or a quote, which would end the mount option and start another"
	}
	return ""
}

// borgLocation says why a repo path cannot be written as a borg location,
// or "". Borg reads "PATH::ARCHIVE", so "::" (or a trailing ":", which
// joins the separator) would split the path; it fills {placeholders} in
// locations before it parses them.
func borgLocation(p string) string {
	switch {
	case strings.Contains(p, "::"):
		return `contains "::", which borg reads as the start of an archive name`
	case strings.HasSuffix(p, ":"):
		return `ends with ":", which borg would read as part of the "::" before an archive name`
	case strings.ContainsAny(p, "{}"):
		return "contains { or }, which borg replaces as placeholders ({hostname}, {now})"
	}
	return ""
}

var (
	hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$`)
	numericRE   = regexp.MustCompile(`^[0-9.]+$`)
)

// hostAddress says why s is neither a host name nor an IP address, or "".
// It ends up as ssh's HostName, in known_hosts names, in authorized_keys
// from="..." and as msmtp's host: a port, a user, a pattern character or a
// leading dash would mean something else in each.
func hostAddress(s string) string { return hostAddressPort(s, "its own field") }

// hostAddressPort is hostAddress, naming portField as the place of a port.
func hostAddressPort(s, portField string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return "is an IPv6 address with a zone, which from= patterns and known_hosts do not take"
		}
		return ""
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return fmt.Sprintf("has a port: write the address %s here and the port in %s", ap.Addr(), portField)
	}
	if h, p, ok := strings.Cut(s, ":"); ok && !strings.Contains(p, ":") {
		if _, err := strconv.Atoi(p); err == nil && hostAddress(h) == "" {
			return fmt.Sprintf("has a port: write the host name %s here and the port in %s", h, portField)
		}
	}
	if len(s) > 253 {
		return "is longer than 253 characters"
	}
	if numericRE.MatchString(s) {
		return "is neither an IPv4 address nor a host name"
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) > 63 || !hostLabelRE.MatchString(l) {
			return "is not a host name or IP address (a host name is dot-separated labels of letters, digits, '-' and '_', none starting or ending with '-')"
		}
	}
	return ""
}

// hostKeyTypes are the host key types known_hosts lines carry here.
var hostKeyTypes = []string{
	ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSA,
}

// hostPublicKey says why s is not exactly "TYPE BASE64 [COMMENT]" with a
// key of that type, or "": it is written into known_hosts as it stands,
// where options, markers or a second key would change what is trusted.
func hostPublicKey(s string) string {
	if hasCtl(s) {
		return "contains a control character or line break"
	}
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return "want one public key line, TYPE BASE64 [COMMENT], as in /etc/ssh/ssh_host_ed25519_key.pub"
	}
	typ, b64 := fields[0], fields[1]
	if !contains(hostKeyTypes, typ) {
		return fmt.Sprintf("starts with %q, not a key type (%s): options and markers do not belong in a host key", typ, strings.Join(hostKeyTypes, ", "))
	}
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "the key is not base64"
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return fmt.Sprintf("the key does not parse: %v", err)
	}
	if key.Type() != typ {
		return fmt.Sprintf("the key is %s, but the line says %s", key.Type(), typ)
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mailAddrSpecRE is a bare address msmtp's configuration can hold:
// msmtprc reads the rest of the line, and quotes there are its own.
var mailAddrSpecRE = regexp.MustCompile(`^[A-Za-z0-9._%+=-]+@[A-Za-z0-9.-]+$`)

// loginRE is an SMTP user name msmtprc can hold without quoting.
var loginRE = regexp.MustCompile(`^[A-Za-z0-9._%+=@:/~-]+$`)

// Borg's exclude patterns (borg help patterns, 1.2): an optional two
// character style prefix, fnmatch by default.
const (
	styleFnmatch    = "fm"
	styleShell      = "sh"
	styleRegex      = "re"
	stylePathPrefix = "pp"
	stylePathFull   = "pf"
)

// excludeStyle splits an exclude as borg does: a prefix of two letters or
// digits and a colon names the style.
func excludeStyle(e string) (style, body string) {
	rs := []rune(e)
	if len(rs) > 2 && rs[2] == ':' && isAlnum(rs[0]) && isAlnum(rs[1]) {
		return string(rs[:2]), string(rs[3:])
	}
	return styleFnmatch, e
}

func isAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// excludePattern says why borg would refuse e or why e can never match,
// or "".
func excludePattern(e string) string {
	style, body := excludeStyle(e)
	switch style {
	case styleFnmatch, styleShell, stylePathPrefix, stylePathFull:
		if body == "" {
			return "has nothing after its style prefix"
		}
	case styleRegex:
		if body == "" {
			return "re: with an empty expression excludes every file"
		}
		if err := pythonRegex(body); err != nil {
			return fmt.Sprintf("is not a regular expression borgkit can check against Python's: %v", err)
		}
		if strings.HasPrefix(body, "^/") {
			return `can never match: borg matches regular expressions against paths without their leading "/" (write ^home/..., not ^/home/...)`
		}
	default:
		return fmt.Sprintf("has the style prefix %q, which borg does not know (fm:, sh:, re:, pp:, pf:)", style+":")
	}
	return ""
}

// excludeCover is the subtree an exclude certainly keeps out of an
// archive: dir and what is under it (below false), or only what is under
// it (below true). ok is false when the pattern's reach is not certain (a
// regex, a glob anywhere but at the end): such an exclude waives nothing.
func excludeCover(e string) (dir string, below, ok bool) {
	style, body := excludeStyle(e)
	if style == styleRegex || body == "" {
		return "", false, false
	}
	if style == styleFnmatch || style == styleShell {
		// "D/", "D/*" and "D/**" cover what is under D; a glob anywhere
		// else leaves its reach to guesswork.
		switch {
		case strings.HasSuffix(body, "/**"):
			body, below = strings.TrimSuffix(body, "/**"), true
		case strings.HasSuffix(body, "/*"):
			body, below = strings.TrimSuffix(body, "/*"), true
		case strings.HasSuffix(body, "/") && body != "/":
			below = true
		}
		if strings.ContainsAny(body, "*?[") {
			return "", false, false
		}
	}
	// Borg drops the leading "/" and normalises the rest; the root itself
	// is everything.
	return path.Clean("/" + body), below, true
}

// pythonRegex checks a regular expression against the part of Python's
// syntax that Go's regexp shares with it: it must parse in Go, and use
// nothing the two read differently or that Python refuses. A regex using
// Python-only syntax (look-around, back-references) is refused too: the
// check is sound, not complete.
func pythonRegex(re string) error {
	if _, err := syntax.Parse(re, syntax.Perl); err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return fmt.Errorf("%s: %q", se.Code, se.Expr)
		}
		return err
	}
	rs := []rune(re)
	inClass := false
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == '\\':
			if i+1 >= len(rs) {
				return errors.New("ends with a backslash")
			}
			i++
			n := rs[i]
			switch {
			case n == 'x':
				if i+2 >= len(rs) || !isHex(rs[i+1]) || !isHex(rs[i+2]) {
					return errors.New(`\x must be followed by exactly two hex digits`)
				}
				i += 2
			case n < 128 && (unicode.IsLetter(n) || unicode.IsDigit(n)):
				if !strings.ContainsRune(`dDwWsSatnrfv`, n) && !(!inClass && strings.ContainsRune("bBA", n)) {
					return fmt.Errorf(`the escape \%c reads differently in Python and Go, or not at all in one of them`, n)
				}
			}
		case inClass:
			if c == ']' {
				inClass = false
			} else if c == '[' && i+1 < len(rs) && strings.ContainsRune(":=.", rs[i+1]) {
				return fmt.Errorf("[%c inside a class is a POSIX class in Go and literal text in Python", rs[i+1])
			}
		case c == '[':
			inClass = true
			if i+1 < len(rs) && rs[i+1] == '^' {
				i++
			}
			if i+1 < len(rs) && rs[i+1] == ']' {
				i++ // a leading ] is literal in both
			}
		case c == '{' && i+1 < len(rs) && rs[i+1] == ',':
			return errors.New("{,n} is a repetition in Python and literal text in Go")
		case c == '(' && i+1 < len(rs) && rs[i+1] == '?':
			rest := string(rs[i+2:])
			switch {
			case strings.HasPrefix(rest, ":"), strings.HasPrefix(rest, "P<"):
				if strings.HasPrefix(rest, "P<") {
					name, _, _ := strings.Cut(rest[2:], ">")
					if name == "" || unicode.IsDigit([]rune(name)[0]) {
						return fmt.Errorf("group name %q is not a Python identifier", name)
					}
				}
			default:
				flags := strings.IndexAny(rest, ":)")
				if flags < 0 || strings.Trim(rest[:flags], "ims") != "" {
					return fmt.Errorf("(?%s is not a group both Python and Go read the same: use (?:, (?P<name> or the flags i, m, s", firstRunes(rest, 4))
				}
				if rest[flags] == ')' && i != 0 {
					return errors.New("flags such as (?i) must start the expression in Python")
				}
			}
		}
	}
	return nil
}

func isHex(r rune) bool {
	return r < 128 && (unicode.IsDigit(r) || strings.ContainsRune("abcdefABCDEF", r))
}

func firstRunes(s string, n int) string {
	rs := []rune(s)
	if len(rs) > n {
		rs = rs[:n]
	}
	return string(rs)
}

// compression says why borg 1.2 would refuse a --compression spec, or "".
// It takes the canonical spellings borg documents: none, lz4, zstd[,1-22],
// zlib[,0-9], lzma[,0-9], auto,C[,L], and obfuscate,SPEC,C[,L] with SPEC
// 1-6 or 110-123 and C possibly auto.
func compression(s string) string {
	parts := strings.Split(s, ",")
	if parts[0] == "obfuscate" {
		if len(parts) < 3 {
			return "obfuscate needs a SPEC and a compression: obfuscate,SPEC,C[,L]"
		}
		n, ok := level(parts[1])
		if !ok || !(n >= 1 && n <= 6 || n >= 110 && n <= 123) {
			return fmt.Sprintf("obfuscate SPEC %q: borg takes 1 to 6 or 110 to 123", parts[1])
		}
		parts = parts[2:]
	}
	if parts[0] == "auto" {
		if len(parts) < 2 {
			return "auto needs the compression it chooses: auto,C[,L]"
		}
		parts = parts[1:]
	}
	lo, hi := 0, 0
	switch parts[0] {
	case "none", "lz4":
		if len(parts) == 1 {
			return ""
		}
		return parts[0] + " takes no level"
	case "zstd":
		lo, hi = 1, 22
	case "zlib", "lzma":
		lo, hi = 0, 9
	default:
		return fmt.Sprintf("%q is not a compression borg knows (none, lz4, zstd, zlib, lzma, auto, obfuscate)", parts[0])
	}
	switch {
	case len(parts) == 1:
		return ""
	case len(parts) > 2:
		return "too many parts: C[,L]"
	}
	if n, ok := level(parts[1]); !ok || n < lo || n > hi {
		return fmt.Sprintf("%s level %q: borg takes %d to %d", parts[0], parts[1], lo, hi)
	}
	return ""
}

// level reads a number written plainly: digits, no sign, no leading zero.
func level(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && strconv.Itoa(n) == s
}
