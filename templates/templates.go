// Package templates holds every file borgkit renders, as text/template files
// in one embedded tree, so golden tests and validators see exactly what
// provisioning writes.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

var parsed = template.Must(template.New("").Funcs(template.FuncMap{
	"join":        strings.Join,
	"fstabEscape": FstabEscape,
}).ParseFS(files, "*.tmpl"))

// Render executes the named template (file name without .tmpl).
func Render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := parsed.ExecuteTemplate(&b, name+".tmpl", data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// Names lists the templates, for tests that must cover every one.
func Names() []string {
	var out []string
	for _, t := range parsed.Templates() {
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
