package adopt

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/config"
)

// Notes are the comments the written config carries, by the YAML path of
// the field they explain ("hosts[0].repos[2].encryption"): where a value
// was read, what was guessed, what is left to the user. A note for a field
// left out is written where the field would be.
type Notes map[string][]string

func (n Notes) add(path, format string, args ...any) {
	n[path] = append(n[path], fmt.Sprintf(format, args...))
}

// Guessed is the mark every guessed value's note starts with.
const Guessed = "adopt: guessed — "

func (n Notes) guess(path, format string, args ...any) {
	n.add(path, Guessed+format, args...)
}

// render writes cfg as YAML in the schema's field order, with notes as
// comments above the lines they explain.
func render(header []string, cfg *config.Config, notes Notes) []byte {
	var b bytes.Buffer
	for _, h := range header {
		writeComment(&b, "", h)
	}
	w := &writer{b: &b, notes: notes}
	w.fields(reflect.ValueOf(cfg).Elem(), "", "")
	return b.Bytes()
}

type writer struct {
	b     *bytes.Buffer
	notes Notes
}

func writeComment(b *bytes.Buffer, indent, text string) {
	for _, l := range strings.Split(text, "\n") {
		if l == "" {
			b.WriteString(indent + "#\n")
			continue
		}
		b.WriteString(indent + "# " + l + "\n")
	}
}

// fields writes a struct's fields; first is the prefix of the first line
// ("- " for a list item), indent that of the others.
func (w *writer) fields(v reflect.Value, path, indent string) {
	t := v.Type()
	first := true
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		p := join(path, tag)
		fv := v.Field(i)
		lead := indent
		if first && strings.HasSuffix(indent, "- ") {
			// the list item's first key shares the dash line
		} else {
			lead = strings.Repeat(" ", len(indent))
		}
		if isZero(fv) {
			if ns := w.notes[p]; len(ns) > 0 {
				for _, n := range ns {
					writeComment(w.b, strings.Repeat(" ", len(indent)), n)
				}
			}
			continue
		}
		for _, n := range w.notes[p] {
			writeComment(w.b, strings.Repeat(" ", len(indent)), n)
		}
		w.value(fv, p, lead, tag)
		first = false
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func (w *writer) value(v reflect.Value, path, lead, key string) {
	sub := strings.Repeat(" ", len(lead)) + "  "
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		fmt.Fprintf(w.b, "%s%s:\n", lead, key)
		w.fields(v, path, sub)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			fmt.Fprintf(w.b, "%s%s:\n", lead, key)
			for i := 0; i < v.Len(); i++ {
				ip := fmt.Sprintf("%s[%d]", path, i)
				for _, n := range w.notes[ip] {
					writeComment(w.b, sub, n)
				}
				w.fields(v.Index(i), ip, sub+"- ")
			}
			return
		}
		var items []string
		for i := 0; i < v.Len(); i++ {
			items = append(items, scalar(v.Index(i)))
		}
		line := fmt.Sprintf("%s%s: [%s]", lead, key, strings.Join(items, ", "))
		if len(line) <= 100 {
			w.b.WriteString(line + "\n")
			return
		}
		fmt.Fprintf(w.b, "%s%s:\n", lead, key)
		for i, it := range items {
			for _, n := range w.notes[fmt.Sprintf("%s[%d]", path, i)] {
				writeComment(w.b, sub, n)
			}
			fmt.Fprintf(w.b, "%s- %s\n", sub, it)
		}
	case reflect.Map:
		fmt.Fprintf(w.b, "%s%s:\n", lead, key)
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			fmt.Fprintf(w.b, "%s%s: %s\n", sub, quote(k.String()), scalar(v.MapIndex(k)))
		}
	default:
		fmt.Fprintf(w.b, "%s%s: %s\n", lead, key, scalar(v))
	}
}

func scalar(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		return quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64, reflect.Int32:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Pointer:
		return scalar(v.Elem())
	}
	return fmt.Sprint(v.Interface())
}

// plainRE is what YAML reads back as the same string unquoted.
var plainRE = regexp.MustCompile(`^[A-Za-z_/][A-Za-z0-9_./@+=-]*( [A-Za-z0-9_./@+=<>-]+)*$`)

var yamlWords = map[string]bool{"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true, "null": true, "y": true, "n": true, "~": true}

func quote(s string) string {
	if s != "" && plainRE.MatchString(s) && !yamlWords[strings.ToLower(s)] && !strings.Contains(s, ": ") {
		return s
	}
	return strconv.Quote(s)
}

func isZero(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return v.IsZero()
}
