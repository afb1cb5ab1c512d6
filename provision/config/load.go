package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Load reads and parses the config at path (see LoadContext).
func Load(path string) (*Config, error) {
	c, _, err := LoadContext(context.Background(), path)
	if err != nil && !isProblem(err) {
		err = fmt.Errorf("read config: %w", err)
	}
	return c, err
}

func isProblem(err error) bool {
	var p *Problem
	var ps Problems
	return errors.As(err, &p) || errors.As(err, &ps)
}

// Parse decodes data strictly and validates it. file names the source in
// problems and becomes cfg.File. A decoding mistake (syntax, unknown field,
// wrong type, duplicate key, version) stops at the first one and is a
// *Problem; semantic mistakes are all reported together as Problems.
func Parse(file string, data []byte) (cfg *Config, err error) {
	// The YAML library has panicked on hostile input before; a config file
	// must never crash provisioning, only be refused.
	defer func() {
		if r := recover(); r != nil {
			cfg = nil
			err = &Problem{File: file, Err: ErrSyntax, Msg: fmt.Sprintf("YAML parser failed: %v", r)}
		}
	}()

	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	ix := &srcIndex{
		file:    file,
		at:      map[string]position{},
		tokPath: map[*token.Token]string{},
		anchors: map[string]ast.Node{},
	}
	if p := ix.checkSize(data); p != nil {
		return nil, p
	}
	ix.lines = strings.Split(string(data), "\n")
	if !utf8.Valid(data) {
		line, col := firstInvalidUTF8(data)
		return nil, ix.problemAt(position{line, col}, "", ErrSyntax, "file is not valid UTF-8")
	}
	if p := ix.checkDepth(data); p != nil {
		return nil, p
	}

	f, perr := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if perr != nil {
		return nil, ix.fromYAMLError(perr)
	}
	var body ast.Node
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			return nil, ix.problemAt(nodePos(doc.Body), "", ErrSyntax,
				"more than one YAML document: a config is a single document")
		}
		body = doc.Body
	}
	if body != nil {
		if p := ix.checkExpansion(body); p != nil {
			return nil, p
		}
	}
	if body == nil {
		return nil, ix.problemAt(position{1, 1}, "", ErrEmpty,
			`config is empty: it needs at least "version: 1" and hosts (see "borgkit config example")`)
	}
	if _, ok := unwrap(body).(*ast.MappingNode); !ok {
		if _, ok := unwrap(body).(*ast.MappingValueNode); !ok {
			return nil, ix.problemAt(nodePos(body), "$", ErrType,
				"the top level must be a mapping (version:, alerts:, retention:, hosts:)")
		}
	}
	ix.walk(body, "$", nil, 0, reflect.TypeFor[Config]())

	if p := ix.checkVersion(body); p != nil {
		return nil, p
	}
	// Tags only change how a value decodes, which a config never needs, and
	// the decoder has crashed on tagged values of the wrong kind.
	if tg := ix.tag; tg != nil {
		name := ""
		if tg.Start != nil {
			name = tg.Start.Value
		}
		return nil, ix.problemAt(tokPos(tg.Start), ix.tokPath[tg.Start], ErrType,
			fmt.Sprintf("YAML tags such as %q are not supported: write the plain value (quote it to make it a string)", name))
	}

	if p := ix.checkUnknownFields(); p != nil {
		return nil, p
	}

	var c Config
	if err := nodeToValue(body, &c, yaml.Strict()); err != nil {
		return nil, ix.fromYAMLError(err)
	}
	if p := ix.checkFloats(); p != nil {
		return nil, p
	}
	c.File = file
	c.src = ix
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func firstInvalidUTF8(data []byte) (line, col int) {
	line, col = 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return line, col
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		data = data[size:]
	}
	return line, col
}

// nodeToValue is the decoder, replaceable so a test can make it panic.
var nodeToValue = yaml.NodeToValue

type position struct{ line, col int }

// srcIndex maps YAML paths back to where they are written, so problems found
// on the decoded structs can point into the file.
type srcIndex struct {
	file  string
	lines []string
	// at is where to point for a path: the value for scalars, the key for
	// blocks (a caret under "repos:" reads better than under its first "-").
	at map[string]position
	// tokPath names the path of key and value tokens, for decoder errors
	// that only carry a token.
	tokPath map[*token.Token]string
	anchors map[string]ast.Node
	floats  []string
	keys    []keyRef // every mapping key, in file order
	// tag is the first explicit tag (!foo, !!str) in the file.
	tag     *ast.TagNode
	visited int
	// runes holds, for each long line a problem points into, the byte
	// offset of every rune: problems on it are cut from it in constant time.
	runes map[int][]int
}

// maxIndexNodes bounds the walk: aliases can expand a small file into an
// exponential number of nodes, and positions past that are not worth a hang.
const maxIndexNodes = 100000

func unwrap(n ast.Node) ast.Node {
	for i := 0; i < 64; i++ {
		switch t := n.(type) {
		case *ast.AnchorNode:
			n = t.Value
		case *ast.TagNode:
			n = t.Value
		default:
			return n
		}
	}
	return n
}

func tokPos(tk *token.Token) position {
	if tk == nil || tk.Position == nil {
		return position{}
	}
	return position{tk.Position.Line, tk.Position.Column}
}

// nodePos is where a node starts as the user sees it: a block mapping's
// parser token is its first ":", so use its first key instead.
func nodePos(n ast.Node) position {
	if n == nil {
		return position{}
	}
	switch t := n.(type) {
	case *ast.MappingNode:
		if len(t.Values) > 0 && t.Values[0] != nil && !t.IsFlowStyle {
			return nodePos(t.Values[0])
		}
	case *ast.MappingValueNode:
		if t.Key != nil {
			return tokPos(t.Key.GetToken())
		}
	}
	return tokPos(n.GetToken())
}

// walk indexes n, written at path, whose Go type is t. It goes down only
// where the schema does (t is nil past an unknown key or a wrong kind):
// what lies under an unknown key is refused with the key, and the index
// of a path per node stays proportional to the file, however long a key
// above it is.
func (ix *srcIndex) walk(n ast.Node, path string, key *token.Token, depth int, t reflect.Type) {
	if n == nil || depth > 64 || ix.visited > maxIndexNodes {
		return
	}
	ix.visited++
	if a, ok := n.(*ast.AnchorNode); ok {
		if a.Name != nil && a.Name.GetToken() != nil {
			ix.anchors[a.Name.GetToken().Value] = a.Value
		}
	}
	if tg, ok := n.(*ast.TagNode); ok && ix.tag == nil {
		ix.tag = tg
	}
	inner := unwrap(n)
	if inner == nil {
		inner = n
	}
	pos := nodePos(inner)
	switch inner.(type) {
	case *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode, *ast.NullNode:
		if key != nil {
			pos = tokPos(key)
		}
	}
	if _, ok := ix.at[path]; !ok && pos.line > 0 {
		ix.at[path] = pos
	}
	if key != nil {
		ix.tokPath[key] = path
	}
	if tk := inner.GetToken(); tk != nil {
		if _, ok := ix.tokPath[tk]; !ok {
			ix.tokPath[tk] = path
		}
	}
	if tk := n.GetToken(); tk != nil {
		if _, ok := ix.tokPath[tk]; !ok {
			ix.tokPath[tk] = path
		}
	}

	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return
	}
	switch x := inner.(type) {
	case *ast.MappingNode:
		// Explicit keys before merged ones: they win in the decoded value,
		// so they must win the position too.
		for _, mv := range x.Values {
			if mv != nil && !isMerge(mv) {
				ix.walkPair(mv, path, depth, t)
			}
		}
		for _, mv := range x.Values {
			if mv != nil && isMerge(mv) {
				ix.walkMerge(mv.Value, path, depth, t)
			}
		}
	case *ast.MappingValueNode:
		if isMerge(x) {
			ix.walkMerge(x.Value, path, depth, t)
		} else {
			ix.walkPair(x, path, depth, t)
		}
	case *ast.SequenceNode:
		var elem reflect.Type
		if t.Kind() == reflect.Slice {
			elem = t.Elem()
		}
		for i, v := range x.Values {
			ix.walk(v, fmt.Sprintf("%s[%d]", path, i), nil, depth+1, elem)
		}
	case *ast.AliasNode:
		if x.Value != nil && x.Value.GetToken() != nil {
			if target, ok := ix.anchors[x.Value.GetToken().Value]; ok {
				ix.walk(target, path, nil, depth+1, t)
			}
		}
	case *ast.FloatNode:
		ix.floats = append(ix.floats, path)
	}
}

// fieldType is the type a key of a mapping of type t decodes into, or nil
// when t has no such key.
func fieldType(t reflect.Type, key string) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == nil:
		return nil
	case t.Kind() == reflect.Struct:
		if f, ok := fieldByTag(t, key); ok {
			return f.Type
		}
	case t.Kind() == reflect.Map:
		return t.Elem()
	}
	return nil
}

func isMerge(mv *ast.MappingValueNode) bool {
	_, ok := mv.Key.(*ast.MergeKeyNode)
	return ok
}

// walkMerge indexes the mappings a "<<" key merges into path: one alias,
// or a list of them.
func (ix *srcIndex) walkMerge(v ast.Node, path string, depth int, t reflect.Type) {
	if seq, ok := unwrap(v).(*ast.SequenceNode); ok {
		for _, item := range seq.Values {
			ix.walk(item, path, nil, depth+1, t)
		}
		return
	}
	ix.walk(v, path, nil, depth+1, t)
}

type keyRef struct {
	parent string
	tok    *token.Token
}

func (ix *srcIndex) walkPair(mv *ast.MappingValueNode, parent string, depth int, t reflect.Type) {
	if mv.Key == nil {
		return
	}
	ktk := mv.Key.GetToken()
	if ktk == nil {
		return
	}
	ix.keys = append(ix.keys, keyRef{parent, ktk})
	ix.walk(mv.Value, parent+"."+ktk.Value, ktk, depth+1, fieldType(t, ktk.Value))
}

// checkUnknownFields reports the first key, in file order, that the schema
// does not have. The decoder would find it too, but in map order, so a file
// with two typos could name either.
func (ix *srcIndex) checkUnknownFields() *Problem {
	types := map[string]reflect.Type{}
	for _, k := range ix.keys {
		t, ok := types[k.parent]
		if !ok {
			t = typeAt(k.parent)
			for t != nil && t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			types[k.parent] = t
		}
		if t == nil || t.Kind() != reflect.Struct {
			continue
		}
		if _, ok := fieldByTag(t, k.tok.Value); !ok {
			return ix.problemAt(tokPos(k.tok), k.parent+"."+k.tok.Value, ErrUnknownField,
				fmt.Sprintf("unknown field %q", k.tok.Value)+hint(t, k.tok.Value))
		}
	}
	return nil
}

// lookup finds where path is written, falling back to the closest ancestor
// that is: a missing required field is reported at its parent.
func (ix *srcIndex) lookup(path string) position {
	if ix == nil {
		return position{}
	}
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := ix.at[p]; ok {
			return pos
		}
		if p == "$" {
			break
		}
	}
	return position{}
}

func (ix *srcIndex) has(path string) bool {
	if ix == nil {
		return false
	}
	_, ok := ix.at[path]
	return ok
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

func (ix *srcIndex) source(line int) string {
	if ix == nil || line < 1 || line > len(ix.lines) {
		return ""
	}
	return strings.TrimRight(ix.lines[line-1], "\r")
}

func (ix *srcIndex) problemAt(pos position, path string, sentinel error, msg string) *Problem {
	p := &Problem{Path: path, Err: sentinel, Msg: msg, Line: pos.line, Col: pos.col}
	if ix != nil {
		p.File = ix.file
		p.Source, p.srcCol = ix.window(pos.line, pos.col)
	}
	return p
}

// window is the source line, or for a long one (a file written on one line
// in flow style) the part around rune column col and col within it: each
// of many problems on that line prints a short part, never the whole.
func (ix *srcIndex) window(line, col int) (string, int) {
	const width, before = 120, 60
	src := ix.source(line)
	if len(src) <= width {
		return src, 0
	}
	start := max(0, col-1-before)
	offs := ix.runeOffsets(line, src, start+width+1)
	if len(offs) <= width {
		return src, 0
	}
	start = max(0, min(start, len(offs)-width))
	out := src[offs[start]:]
	if start+width < len(offs) {
		out = src[offs[start]:offs[start+width]] + "…"
	}
	col -= start
	if start > 0 {
		out = "…" + out
		col++
	}
	return out, max(col, 1)
}

// runeOffsets is the byte offset of each of the first n runes of src, the
// source of line, or of all of them when it has fewer; it keeps what it
// counted, so each problem on a long line costs only what lies before it.
func (ix *srcIndex) runeOffsets(line int, src string, n int) []int {
	if ix.runes == nil {
		ix.runes = map[int][]int{}
	}
	offs := ix.runes[line]
	at := 0
	if len(offs) > 0 {
		_, size := utf8.DecodeRuneInString(src[offs[len(offs)-1]:])
		at = offs[len(offs)-1] + size
	}
	for at < len(src) && len(offs) < n {
		offs = append(offs, at)
		_, size := utf8.DecodeRuneInString(src[at:])
		at += size
	}
	ix.runes[line] = offs
	return offs
}

func (ix *srcIndex) checkVersion(body ast.Node) *Problem {
	var pairs []*ast.MappingValueNode
	switch t := unwrap(body).(type) {
	case *ast.MappingNode:
		pairs = t.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{t}
	}
	for _, mv := range pairs {
		if mv == nil || mv.Key == nil || mv.Key.GetToken() == nil || mv.Key.GetToken().Value != "version" {
			continue
		}
		v := unwrap(mv.Value)
		if in, ok := v.(*ast.IntegerNode); ok {
			switch n := in.Value.(type) {
			case int64:
				if n == Version {
					return nil
				}
			case uint64:
				if n == Version {
					return nil
				}
			}
		}
		got := "null"
		if v != nil && v.GetToken() != nil {
			got = v.GetToken().Value
		}
		pos := nodePos(v)
		if _, null := v.(*ast.NullNode); null || pos.line == 0 {
			pos = tokPos(mv.Key.GetToken())
		}
		return ix.problemAt(pos, "$.version", ErrVersion,
			fmt.Sprintf("unsupported version %s: this borgkit reads version %d", got, Version))
	}
	return ix.problemAt(ix.lookup("$"), "$.version", ErrVersion,
		fmt.Sprintf(`missing "version: %d" at the top of the file`, Version))
}

// checkFloats refuses 1.5 for an integer field: the decoder would silently
// truncate it, and a port or a keep count that is not what was written is
// worse than an error.
func (ix *srcIndex) checkFloats() *Problem {
	for _, path := range ix.floats {
		t := typeAt(path)
		if t == nil {
			continue
		}
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return ix.problemAt(ix.lookup(path), path, ErrType, "expected an integer, got a fraction")
		}
	}
	return nil
}

func (ix *srcIndex) fromYAMLError(err error) *Problem {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		p := ix.problemAt(position{}, "", ErrSyntax, err.Error())
		p.cause = err
		return p
	}
	tk := ye.GetToken()
	pos := tokPos(tk)
	path := ix.tokPath[tk]
	var p *Problem
	switch e := ye.(type) {
	case *yaml.UnknownFieldError:
		name := ""
		if tk != nil {
			name = tk.Value
		}
		msg := fmt.Sprintf("unknown field %q", name)
		if path != "" {
			msg += hint(typeAt(parentPath(path)), name)
		}
		p = ix.problemAt(pos, path, ErrUnknownField, msg)
	case *yaml.TypeError:
		p = ix.problemAt(pos, path, ErrType, fmt.Sprintf("expected %s, got %s", kindName(e.DstType), gotText(e.SrcType, tk)))
	case *yaml.OverflowError:
		p = ix.problemAt(pos, path, ErrType, fmt.Sprintf("%s does not fit in %s", e.SrcNum, kindName(e.DstType)))
	case *yaml.UnexpectedNodeTypeError:
		p = ix.problemAt(pos, path, ErrType, fmt.Sprintf("expected %s, got %s", nodeTypeName(e.Expected), nodeTypeName(e.Actual)))
	case *yaml.DuplicateKeyError:
		msg := e.Message
		if tk != nil {
			msg = fmt.Sprintf("duplicate key %q", tk.Value)
			if first, ok := ix.at[path]; ok && first.line != pos.line {
				msg += fmt.Sprintf(" (first set on line %d)", first.line)
			}
		}
		p = ix.problemAt(pos, path, ErrDuplicateKey, msg)
	default:
		p = ix.problemAt(pos, path, ErrSyntax, ye.GetMessage())
	}
	p.cause = err
	return p
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return t.String()
}

func gotText(src reflect.Type, tk *token.Token) string {
	if src != nil {
		switch src.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map, reflect.Struct:
			return kindName(src)
		}
	}
	if tk != nil {
		return strconv.Quote(tk.Value)
	}
	return kindName(src)
}

func nodeTypeName(t ast.NodeType) string {
	switch t {
	case ast.MappingType, ast.MappingValueType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	case ast.StringType, ast.LiteralType:
		return "a string"
	case ast.IntegerType:
		return "an integer"
	case ast.FloatType:
		return "a number"
	case ast.BoolType:
		return "true or false"
	case ast.NullType:
		return "nothing"
	}
	return strings.ToLower(t.String())
}

var pathSeg = regexp.MustCompile(`\.([^.\[]+)|\[(\d+)\]`)

// typeAt is the Go type a YAML path decodes into, or nil when the path
// leaves the schema.
func typeAt(path string) reflect.Type {
	if !strings.HasPrefix(path, "$") {
		return nil
	}
	t := reflect.TypeFor[Config]()
	rest := path[1:]
	for rest != "" {
		m := pathSeg.FindStringSubmatchIndex(rest)
		if m == nil || m[0] != 0 {
			return nil
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if m[2] >= 0 {
			key := rest[m[2]:m[3]]
			switch t.Kind() {
			case reflect.Struct:
				f, ok := fieldByTag(t, key)
				if !ok {
					return nil
				}
				t = f.Type
			case reflect.Map:
				t = t.Elem()
			default:
				return nil
			}
		} else {
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		}
		rest = rest[m[1]:]
	}
	return t
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Tag.Get("yaml") == "-" {
			continue
		}
		if yamlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// hint suggests the field the user probably meant, or lists the valid ones.
func hint(t reflect.Type, name string) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && f.Tag.Get("yaml") != "-" {
			names = append(names, yamlName(f))
		}
	}
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(name), n); d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf(", did you mean %q?", best)
	}
	sort.Strings(names)
	return " (valid here: " + strings.Join(names, ", ") + ")"
}

func editDistance(a, b string) int {
	ar, br := []rune(a), []rune(b)
	prev := make([]int, len(br)+1)
	cur := make([]int, len(br)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ar); i++ {
		cur[0] = i
		for j := 1; j <= len(br); j++ {
			cost := 1
			if ar[i-1] == br[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(br)]
}
