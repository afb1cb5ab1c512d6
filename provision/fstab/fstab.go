// Package fstab reads /etc/fstab the way mount(8) does and checks the lines
// borgkit adds to it with the real findmnt before anything is written.
package fstab

import (
	"path"
	"strings"
)

// Entry is one line of an fstab that is neither blank nor a comment.
type Entry struct {
	// Line is 1-based, in the file the entry was read from.
	Line int
	// Text is the line as written, without its line break.
	Text string
	// Source and Target are the first two fields with their octal escapes
	// (\040 for a space) decoded; "" when the line has fewer fields.
	Source, Target string
	// Broken says why libmount ignores the line ("" when it mounts it).
	Broken string
}

// Parse returns the entries of an fstab. It follows libmount's parser: a
// line whose first non-blank character is # is a comment; fields are
// separated by spaces and tabs; source, target and type are required,
// options, dump frequency and pass number optional, and the two numbers
// must be numbers; anything after the sixth field is ignored.
func Parse(b []byte) []Entry {
	var out []Entry
	for i, raw := range strings.Split(string(b), "\n") {
		text := strings.TrimSuffix(raw, "\r")
		t := strings.TrimLeft(text, " \t")
		if t == "" || t[0] == '#' {
			continue
		}
		e := Entry{Line: i + 1, Text: text}
		f := strings.FieldsFunc(t, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) >= 1 {
			e.Source = Unescape(f[0])
		}
		if len(f) >= 2 {
			e.Target = Unescape(f[1])
		}
		switch {
		case len(f) < 3:
			e.Broken = "it has fewer than three fields (source, mountpoint, type)"
		case len(f) >= 5 && !number(f[4]):
			e.Broken = "its fifth field (dump) is not a number"
		case len(f) >= 6 && !number(f[5]):
			e.Broken = "its sixth field (pass) is not a number"
		}
		out = append(out, e)
	}
	return out
}

// number is what strtol takes whole: an optional sign and decimal digits.
func number(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// Unescape decodes a field as libmount does: a backslash and three octal
// digits stand for one byte (\040 a space, \011 a tab, \134 a backslash).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && octal(s[i+1]) && octal(s[i+2]) && octal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal(c byte) bool { return c >= '0' && c <= '7' }

// Mountpoint is a target as the kernel resolves it: decoded and cleaned,
// so "/mnt/backup/", "/mnt//backup" and "/mnt/./backup" are all
// "/mnt/backup". A target that is not a path ("swap", "none") stays as it is.
func Mountpoint(target string) string {
	t := Unescape(target)
	if !strings.HasPrefix(t, "/") {
		return t
	}
	return path.Clean(t)
}

// Clash is the first entry that mounts one of targets (compared as
// mountpoints): two lines for one mountpoint leave boot order to decide
// which filesystem is there.
func Clash(entries []Entry, targets []string) (Entry, string, bool) {
	want := map[string]string{}
	for _, t := range targets {
		want[Mountpoint(t)] = t
	}
	for _, e := range entries {
		if t, ok := want[Mountpoint(e.Target)]; ok && e.Target != "" {
			return e, t, true
		}
	}
	return Entry{}, "", false
}
