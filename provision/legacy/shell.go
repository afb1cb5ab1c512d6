package legacy

import (
	"regexp"
	"strings"
)

// Cmd is one simple command of a shell script as it would run: words
// after quote removal and expansion of the variables the script (or a
// file it sources) assigns plainly. What cannot be known without running
// the script ($(...), `...`, an unset variable) stays as written.
type Cmd struct {
	File  string
	Line  int
	Words []string
}

// Name is the program the command runs, past the wrappers a backup script
// puts in front (timeout DUR, nice, ionice, env, sudo, exec, command).
func (c Cmd) Name() string {
	w := c.Args()
	if len(w) == 0 {
		return ""
	}
	return w[0]
}

// Args are the command's words from the program on.
func (c Cmd) Args() []string {
	w := c.Words
	for len(w) > 0 {
		switch base(w[0]) {
		case "!", "if", "then", "else", "elif", "while", "until", "do", "time", "exec", "command", "sudo", "{", "(":
			w = w[1:]
		case "timeout":
			w = skipOptions(w[1:])
			if len(w) > 0 {
				w = w[1:] // the duration
			}
		case "nice", "ionice", "chrt", "nocache":
			w = skipOptions(w[1:])
		case "env":
			w = w[1:]
			for len(w) > 0 && (strings.HasPrefix(w[0], "-") || isAssign(w[0])) {
				w = w[1:]
			}
		case "flock":
			w = skipOptions(w[1:])
			if len(w) > 0 {
				w = w[1:] // the lock file
			}
		default:
			return w
		}
	}
	return w
}

// skipOptions drops leading options and the values of those that take one
// (-n 19, -c 3, -s KILL, -k 5m): close enough for the wrappers above.
func skipOptions(w []string) []string {
	for len(w) > 0 && strings.HasPrefix(w[0], "-") {
		o := w[0]
		w = w[1:]
		if len(o) == 2 && len(w) > 0 && strings.Contains("ncspk", o[1:]) {
			w = w[1:]
		}
	}
	return w
}

func base(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

var assignRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func isAssign(w string) bool { return assignRE.MatchString(w) }

// Script is what a shell file says: its commands, in order, and the plain
// assignments it makes (NAME=value, export NAME=value).
type Script struct {
	Path string
	Cmds []Cmd
	// Vars are the assignments seen, the last one winning, with what the
	// file inherited from the files that source it.
	Vars map[string]string
	// Sources are the files it sources (. FILE, source FILE), as written
	// after expansion; Included are those read, in order, each with the
	// files it sourced in turn.
	Sources  []string
	Included []*Script
}

// Reader returns a sourced file's content; false when it cannot be read
// (missing, not a script), and the source is then only named.
type Reader func(path string) ([]byte, bool)

// maxIncludes bounds sourcing, against a file that sources itself.
const maxIncludes = 16

// word is a word being read: its text and whether any part was quoted
// with single quotes (never expanded).
type rawWord struct {
	parts []wordPart
}

type wordPart struct {
	text   string
	expand bool // unquoted or double-quoted: $VAR is expanded
}

// ParseShell reads a shell script. vars are variables already set (by a
// file that sources this one); the result's Vars include them. loops
// maps a for-loop variable to its words while the loop body is read, so
// "for REPO in a b; do rsync /x/$REPO/ ...; done" gives one command per
// word.
func ParseShell(file string, src []byte, vars map[string]string) *Script {
	return parseShell(file, src, vars, nil, new(int))
}

// ParseShellWith is ParseShell reading sourced files through read: their
// assignments count from the line that sources them on, as in the shell.
func ParseShellWith(file string, src []byte, vars map[string]string, read Reader) *Script {
	return parseShell(file, src, vars, read, new(int))
}

func parseShell(file string, src []byte, vars map[string]string, read Reader, includes *int) *Script {
	s := &Script{Path: file, Vars: map[string]string{}}
	for k, v := range vars {
		s.Vars[k] = v
	}
	loops := map[string][]string{}
	var loopStack []string
	for _, st := range statements(string(src)) {
		words := st.words
		if len(words) == 0 {
			continue
		}
		first := words[0].literal()
		switch first {
		case "for":
			// for VAR in WORDS... (the ; do ends the statement)
			if len(words) >= 3 && words[2].literal() == "in" {
				v := words[1].literal()
				var vals []string
				for _, w := range words[3:] {
					vals = append(vals, strings.Fields(s.expand(w, nil))...)
				}
				loops[v] = vals
				loopStack = append(loopStack, v)
			}
			continue
		case "done":
			if n := len(loopStack); n > 0 {
				delete(loops, loopStack[n-1])
				loopStack = loopStack[:n-1]
			}
			continue
		}
		// Plain assignments: NAME=value ... with no command after them set
		// the variable for the rest of the script.
		i := 0
		if first == "export" || first == "readonly" || first == "local" || first == "declare" || first == "typeset" {
			i = 1
			for i < len(words) && strings.HasPrefix(words[i].literal(), "-") {
				i++
			}
		}
		j := i
		for j < len(words) && words[j].isAssign() {
			j++
		}
		if j == len(words) && j > i {
			for _, w := range words[i:j] {
				text := s.expand(w, nil)
				k, v, _ := strings.Cut(text, "=")
				s.Vars[k] = v
			}
			continue
		}
		// The command, once per value of a loop variable it uses.
		var loopVar string
		for _, w := range words {
			for v := range loops {
				if w.uses(v) {
					loopVar = v
				}
			}
		}
		emit := func(extra map[string]string) {
			c := Cmd{File: file, Line: st.line}
			for _, w := range words {
				c.Words = append(c.Words, s.expand(w, extra))
			}
			if n := c.Name(); n == "." || n == "source" {
				if a := c.Args(); len(a) > 1 {
					s.Sources = append(s.Sources, a[1])
					s.include(a[1], read, includes)
				}
			}
			s.Cmds = append(s.Cmds, c)
		}
		if loopVar == "" {
			emit(nil)
			continue
		}
		for _, val := range loops[loopVar] {
			emit(map[string]string{loopVar: val})
		}
	}
	return s
}

// include reads a sourced file and takes its assignments.
func (s *Script) include(p string, read Reader, includes *int) {
	if read == nil || *includes >= maxIncludes || strings.ContainsAny(p, "$`") {
		return
	}
	data, ok := read(p)
	if !ok {
		return
	}
	*includes++
	child := parseShell(p, data, s.Vars, read, includes)
	for k, v := range child.Vars {
		s.Vars[k] = v
	}
	s.Included = append(s.Included, child)
}

// All is the script and every file it sourced, depth first.
func (s *Script) All() []*Script {
	out := []*Script{s}
	for _, c := range s.Included {
		out = append(out, c.All()...)
	}
	return out
}

func (w rawWord) literal() string {
	var b strings.Builder
	for _, p := range w.parts {
		b.WriteString(p.text)
	}
	return b.String()
}

func (w rawWord) isAssign() bool {
	return len(w.parts) > 0 && w.parts[0].expand && isAssign(w.parts[0].text)
}

func (w rawWord) uses(v string) bool {
	for _, p := range w.parts {
		if p.expand && (strings.Contains(p.text, "$"+v) && !identChar(after(p.text, "$"+v)) || strings.Contains(p.text, "${"+v+"}")) {
			return true
		}
	}
	return false
}

func after(s, sub string) byte {
	i := strings.Index(s, sub)
	if i < 0 || i+len(sub) >= len(s) {
		return 0
	}
	return s[i+len(sub)]
}

func identChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expand joins a word's parts, replacing $VAR, ${VAR} and ${VAR:-default}
// where the variable is known; an unknown one stays as written.
func (s *Script) expand(w rawWord, extra map[string]string) string {
	var b strings.Builder
	for _, p := range w.parts {
		if !p.expand {
			b.WriteString(p.text)
			continue
		}
		b.WriteString(varRE.ReplaceAllStringFunc(p.text, func(m string) string {
			sm := varRE.FindStringSubmatch(m)
			name, def, hasDef := sm[1], sm[3], sm[2] != ""
			if name == "" {
				name = sm[4]
			}
			if v, ok := extra[name]; ok {
				return v
			}
			if v, ok := s.Vars[name]; ok {
				return v
			}
			if hasDef {
				return def
			}
			return m
		}))
	}
	return b.String()
}

type statement struct {
	line  int
	words []rawWord
}

// statements splits a script into simple commands: at newlines (not
// inside quotes or after a backslash), ';', '&&', '||', '|' and '&'.
// Comments are dropped; $(...) and backquotes are kept as text.
func statements(src string) []statement {
	var out []statement
	var cur statement
	var w rawWord
	var part strings.Builder
	inWord := false
	heredoc, heredocStrip := "", false
	line := 1
	cur.line = 1
	flushPart := func(expand bool) {
		if part.Len() > 0 {
			w.parts = append(w.parts, wordPart{text: part.String(), expand: expand})
			part.Reset()
		}
	}
	endWord := func() {
		flushPart(true)
		if inWord {
			cur.words = append(cur.words, w)
		}
		w = rawWord{}
		inWord = false
	}
	endStmt := func() {
		endWord()
		if len(cur.words) > 0 {
			out = append(out, cur)
		}
		cur = statement{line: line}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\\' && i+1 < len(src):
			if src[i+1] == '\n' {
				i++
				line++
				continue
			}
			inWord = true
			part.WriteByte(src[i+1])
			i++
		case c == '\'':
			flushPart(true)
			inWord = true
			j := strings.IndexByte(src[i+1:], '\'')
			if j < 0 {
				j = len(src) - i - 1
			}
			text := src[i+1 : i+1+j]
			line += strings.Count(text, "\n")
			w.parts = append(w.parts, wordPart{text: text})
			i += j + 1
		case c == '"':
			flushPart(true)
			inWord = true
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != '"'; j++ {
				if src[j] == '\\' && j+1 < len(src) && strings.IndexByte("\"\\$`\n", src[j+1]) >= 0 {
					if src[j+1] != '\n' {
						b.WriteByte(src[j+1])
					}
					j++
					continue
				}
				if src[j] == '\n' {
					line++
				}
				b.WriteByte(src[j])
			}
			w.parts = append(w.parts, wordPart{text: b.String(), expand: true})
			i = j
		case c == '$' && i+1 < len(src) && src[i+1] == '(':
			// $( ... ) as text, nested parentheses counted.
			inWord = true
			depth, j := 0, i+1
			for ; j < len(src); j++ {
				if src[j] == '(' {
					depth++
				} else if src[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				} else if src[j] == '\n' {
					line++
				}
			}
			part.WriteString(src[i:min(j+1, len(src))])
			i = j
		case c == '`':
			inWord = true
			j := strings.IndexByte(src[i+1:], '`')
			if j < 0 {
				j = len(src) - i - 1
			}
			part.WriteString(src[i : i+j+2])
			i += j + 1
		case c == '#' && !inWord:
			for i < len(src) && src[i] != '\n' {
				i++
			}
			i--
		case c == '\n':
			endStmt()
			line++
			if heredoc != "" {
				for i+1 < len(src) {
					end := strings.IndexByte(src[i+1:], '\n')
					if end < 0 {
						end = len(src) - i - 1
					}
					l := src[i+1 : i+1+end]
					i += end + 1
					line++
					if heredocStrip {
						l = strings.TrimLeft(l, "\t")
					}
					if l == heredoc {
						break
					}
				}
				heredoc = ""
			}
			cur.line = line
		case c == '&' && (i > 0 && src[i-1] == '>' || i+1 < len(src) && src[i+1] == '>'):
			inWord = true // 2>&1, &>file: a redirection, not a separator
			part.WriteByte(c)
		case c == '<' && i+1 < len(src) && src[i+1] == '<' && (i+2 >= len(src) || src[i+2] != '<'):
			// A here-document: its body is data, not commands.
			endWord()
			j := i + 2
			strip := j < len(src) && src[j] == '-'
			if strip {
				j++
			}
			for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
				j++
			}
			k := j
			for k < len(src) && !strings.ContainsRune(" \t\n;|&<>", rune(src[k])) {
				k++
			}
			heredoc = strings.Trim(src[j:k], "'\"")
			heredocStrip = strip
			i = k - 1
		case c == ';' || c == '&' || c == '|':
			endStmt()
			if i+1 < len(src) && (src[i+1] == c) {
				i++
			}
		case c == ' ' || c == '\t' || c == '\r':
			endWord()
		default:
			inWord = true
			part.WriteByte(c)
		}
	}
	endStmt()
	return out
}
