package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinels: every *Problem wraps exactly one of these, so callers and tests
// can tell kinds of mistakes apart with errors.Is without parsing messages.
var (
	// Decoding.
	ErrSyntax       = errors.New("YAML syntax error")
	ErrEmpty        = errors.New("empty config")
	ErrUnknownField = errors.New("unknown field")
	ErrType         = errors.New("wrong type")
	ErrDuplicateKey = errors.New("duplicate key")
	ErrVersion      = errors.New("unsupported config version")
	ErrLimit        = errors.New("config over a limit")

	// Semantics.
	ErrRequired      = errors.New("required field missing")
	ErrBadName       = errors.New("invalid name")
	ErrBadPath       = errors.New("invalid path")
	ErrBadUUID       = errors.New("invalid UUID")
	ErrBadSchedule   = errors.New("invalid schedule")
	ErrBadDuration   = errors.New("invalid duration")
	ErrUnknownHost   = errors.New("unknown host")
	ErrDuplicateName = errors.New("duplicate name")
	ErrRoleMismatch  = errors.New("not allowed for this role")
	ErrBadValue      = errors.New("invalid value")
)

// Problem is one mistake in a config file, placed where the user has to fix
// it. Line and Col are 1-based (Col counts runes, as the YAML parser does);
// 0 means the position is unknown, e.g. for a Config built in code.
type Problem struct {
	File string
	Line int
	Col  int
	// Path is the YAML path of the offending node, e.g.
	// $.hosts[0].repos[2].name ("" when the whole file is at fault).
	Path string
	// Err is the sentinel this problem is an instance of.
	Err error
	Msg string
	// Source is the offending source line, without its line break.
	Source string

	// cause is the parser's own error, kept so errors.As still reaches it.
	cause error
	// srcCol is Col within Source when Source is only the part of a long
	// line around the mistake.
	srcCol int
}

func (p *Problem) Error() string {
	var b strings.Builder
	file := p.File
	if file == "" {
		file = "<config>"
	}
	b.WriteString(file)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Col)
	}
	b.WriteString(": ")
	if dp := displayPath(p.Path); dp != "" {
		b.WriteString(dp)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Line > 0 && p.Source != "" {
		col := p.Col
		if p.srcCol > 0 {
			col = p.srcCol
		}
		b.WriteString("\n    ")
		b.WriteString(p.Source)
		b.WriteString("\n    ")
		b.WriteString(caret(p.Source, col))
	}
	return b.String()
}

func (p *Problem) Unwrap() []error {
	errs := []error{p.Err}
	if p.cause != nil {
		errs = append(errs, p.cause)
	}
	return errs
}

// displayPath drops the "$." every path starts with: the user reads
// "hosts[0].ssh.port", not JSONPath.
func displayPath(path string) string {
	path = strings.TrimPrefix(path, "$")
	return strings.TrimPrefix(path, ".")
}

// caret puts a ^ under rune column col of line. Tabs are copied so the caret
// lines up however the terminal expands them.
func caret(line string, col int) string {
	var b strings.Builder
	i := 1
	for _, r := range line {
		if i >= col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		i++
	}
	for ; i < col; i++ {
		b.WriteByte(' ')
	}
	b.WriteByte('^')
	return b.String()
}

// Problems is every semantic problem of a file at once, so one edit cycle
// fixes them all. Sorted by position; problems without one come last.
type Problems []*Problem

func (ps Problems) Error() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Error()
	}
	s := strings.Join(parts, "\n")
	if len(ps) > 1 {
		s = fmt.Sprintf("%d problems:\n%s", len(ps), s)
	}
	return s
}

func (ps Problems) Unwrap() []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}

func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}
