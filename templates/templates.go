// Package templates holds every file borgkit renders, as text/template files
// in one embedded tree, so golden tests and validators see exactly what
// provisioning writes.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

// parsed is parsed on first use, not at start: most runs of the binary
// (status, the jobs) render nothing, and parsing every template is the
// largest part of the program's start-up (0.7 ms of ~3 ms of package
// initialization; make bench item 3 times `borgkit status` against borg).
var parsed = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("").Funcs(template.FuncMap{
		"join":        strings.Join,
		"fstabEscape": FstabEscape,
	}).ParseFS(files, "*.tmpl"))
})

// Render executes the named template (file name without .tmpl).
func Render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := parsed().ExecuteTemplate(&b, name+".tmpl", data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// Names lists the templates, for tests that must cover every one.
func Names() []string {
	var out []string
	for _, t := range parsed().Templates() {
		if n, ok := strings.CutSuffix(t.Name(), ".tmpl"); ok {
			out = append(out, n)
		}
	}
	return out
}

// FstabEscape writes a field the way fstab(5) reads it: space, tab, newline
// and backslash as octal escapes.
func FstabEscape(s string) string {
	r := strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`)
	return r.Replace(s)
}

// FstabUnescape reads a field escaped the way fstab(5) and the kernel's
// mount tables write it (\040 for a space): the inverse of FstabEscape.
func FstabUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
