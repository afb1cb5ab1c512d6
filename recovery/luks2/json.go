package luks2

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The LUKS2 JSON area is parsed into an ordered tree rather than Go
// structs because cryptsetup's answers depend on things encoding/json
// hides: the order of object members (keyslots and digests are tried in
// the order they appear), exact-case member names, whether a number was
// written as an integer, and json-c's nesting limit. The grammar accepted
// is strict JSON; json-c also takes comments, single quotes and a few
// other liberties that cryptsetup never writes, and a header using them is
// reported as malformed (a "cannot check", never a "good").

type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonInt    // an integer literal (json-c's json_type_int)
	jsonDouble // a number with a fraction or exponent (json_type_double)
	jsonString
	jsonArray
	jsonObject
)

func (k jsonKind) String() string {
	return [...]string{"null", "boolean", "integer", "double", "string", "array", "object"}[k]
}

type jsonValue struct {
	kind jsonKind
	str  string // string value, or the literal text of a number
	b    bool
	arr  []*jsonValue
	obj  []jsonMember // in order of first appearance
}

type jsonMember struct {
	key string
	val *jsonValue
}

// get returns the member named key (exact case), or nil when v is not an
// object or has no such member.
func (v *jsonValue) get(key string) *jsonValue {
	if v == nil || v.kind != jsonObject {
		return nil
	}
	for _, m := range v.obj {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// has reports whether the member exists at all, whatever its type.
func (v *jsonValue) has(key string) bool { return v.get(key) != nil }

// maxJSONDepth is json-c's default nesting limit as cryptsetup 2.6 uses
// it: 32 nested objects/arrays parse, 33 do not (measured with cryptsetup).
const maxJSONDepth = 32

// jsonWhitespace is what json-c skips between tokens and after the
// top-level object.
func jsonWhitespace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// parseJSONArea parses the JSON area of one header copy the way cryptsetup
// accepts it: the area starts with '{' (no leading whitespace), holds one
// object, optional whitespace after it, then only NUL bytes to the end,
// with at least one NUL.
func parseJSONArea(area []byte) (*jsonValue, []byte, error) {
	if len(area) == 0 || area[0] != '{' {
		return nil, nil, errors.New("JSON area does not start with '{'")
	}
	p := &jsonParser{data: area}
	v, err := p.value(0)
	if err != nil {
		return nil, nil, err
	}
	for p.pos < len(area) && jsonWhitespace(area[p.pos]) {
		p.pos++
	}
	end := p.pos
	if end >= len(area) {
		return nil, nil, fmt.Errorf("JSON fills the whole %d-byte area: no terminating NUL byte", len(area))
	}
	for i := end; i < len(area); i++ {
		if area[i] != 0 {
			return nil, nil, fmt.Errorf("byte %#02x at JSON area offset %d after the JSON text (the area must be padded with zeros)", area[i], i)
		}
	}
	return v, area[:end], nil
}

type jsonParser struct {
	data []byte
	pos  int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON syntax error at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) && jsonWhitespace(p.data[p.pos]) {
		p.pos++
	}
}

func (p *jsonParser) peek() (byte, bool) {
	if p.pos >= len(p.data) {
		return 0, false
	}
	return p.data[p.pos], true
}

func (p *jsonParser) value(depth int) (*jsonValue, error) {
	p.skipSpace()
	c, ok := p.peek()
	if !ok || c == 0 {
		return nil, p.errorf("unexpected end of JSON")
	}
	switch {
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return nil, p.errorf("nesting deeper than %d levels (json-c's limit)", maxJSONDepth)
		}
		if c == '{' {
			return p.object(depth + 1)
		}
		return p.array(depth + 1)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return &jsonValue{kind: jsonString, str: s}, nil
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	for _, lit := range []struct {
		text string
		v    jsonValue
	}{{"true", jsonValue{kind: jsonBool, b: true}}, {"false", jsonValue{kind: jsonBool}}, {"null", jsonValue{kind: jsonNull}}} {
		if len(p.data)-p.pos >= len(lit.text) && string(p.data[p.pos:p.pos+len(lit.text)]) == lit.text {
			p.pos += len(lit.text)
			v := lit.v
			return &v, nil
		}
	}
	return nil, p.errorf("unexpected character %q", c)
}

func (p *jsonParser) object(depth int) (*jsonValue, error) {
	p.pos++ // '{'
	v := &jsonValue{kind: jsonObject}
	p.skipSpace()
	if c, _ := p.peek(); c == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		if c, _ := p.peek(); c != '"' {
			return nil, p.errorf("expected a member name in double quotes")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if c, _ := p.peek(); c != ':' {
			return nil, p.errorf("expected ':' after member name %q", key)
		}
		p.pos++
		val, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		// json-c keeps a repeated member at its first position with the
		// last value (measured: a bad first "tokens" is accepted when a
		// good one follows, not the other way round).
		replaced := false
		for i := range v.obj {
			if v.obj[i].key == key {
				v.obj[i].val, replaced = val, true
				break
			}
		}
		if !replaced {
			v.obj = append(v.obj, jsonMember{key, val})
		}
		end, err := p.next('}')
		if err != nil {
			return nil, err
		}
		if end {
			return v, nil
		}
	}
}

// next consumes the separator after a member or element: true at the
// closing bracket, false at a comma.
func (p *jsonParser) next(closing byte) (bool, error) {
	p.skipSpace()
	switch c, _ := p.peek(); c {
	case ',':
		p.pos++
		return false, nil
	case closing:
		p.pos++
		return true, nil
	}
	return false, p.errorf("expected ',' or '%c'", closing)
}

func (p *jsonParser) array(depth int) (*jsonValue, error) {
	p.pos++ // '['
	v := &jsonValue{kind: jsonArray}
	p.skipSpace()
	if c, _ := p.peek(); c == ']' {
		p.pos++
		return v, nil
	}
	for {
		el, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.arr = append(v.arr, el)
		end, err := p.next(']')
		if err != nil {
			return nil, err
		}
		if end {
			return v, nil
		}
	}
}

// number accepts json-c's integers (which may have leading zeros: "064"
// is 64 to cryptsetup) and standard JSON fractions and exponents.
func (p *jsonParser) number() (*jsonValue, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if digits() == 0 {
		return nil, p.errorf("malformed number")
	}
	kind := jsonInt
	if c, _ := p.peek(); c == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errorf("malformed number")
		}
		kind = jsonDouble
	}
	if c, _ := p.peek(); c == 'e' || c == 'E' {
		p.pos++
		if c, _ := p.peek(); c == '+' || c == '-' {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errorf("malformed number")
		}
		kind = jsonDouble
	}
	return &jsonValue{kind: kind, str: string(p.data[start:p.pos])}, nil
}

func (p *jsonParser) string() (string, error) {
	p.pos++ // opening quote
	var out []byte
	for {
		c, ok := p.peek()
		if !ok {
			return "", p.errorf("unterminated string")
		}
		p.pos++
		switch {
		case c == '"':
			return string(out), nil
		case c < 0x20:
			// Includes NUL: cryptsetup handles strings as C strings, so a
			// NUL would silently truncate a name; refuse instead.
			return "", p.errorf("control character %#02x in string", c)
		case c != '\\':
			out = append(out, c)
			continue
		}
		e, ok := p.peek()
		if !ok {
			return "", p.errorf("unterminated string")
		}
		p.pos++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					p.pos += 2
					r2, err := p.hex4()
					if err != nil {
						return "", err
					}
					r = utf16.DecodeRune(r, r2)
				} else {
					r = utf8.RuneError
				}
			}
			if r == 0 {
				return "", p.errorf(`\u0000 in string`)
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.errorf("unknown escape \\%c", e)
		}
	}
}

func (p *jsonParser) hex4() (rune, error) {
	if len(p.data)-p.pos < 4 {
		return 0, p.errorf(`short \u escape`)
	}
	v, err := strconv.ParseUint(string(p.data[p.pos:p.pos+4]), 16, 16)
	if err != nil {
		return 0, p.errorf(`bad \u escape`)
	}
	p.pos += 4
	return rune(v), nil
}

// The accessors below reproduce json-c's conversions, which cryptsetup
// applies to fields it does not type-check (a keyslot priority written as
// the string "2" is honoured as 2, measured with cryptsetup 2.6.1).

// cInt64 is json_object_get_int64: integers as written (saturating),
// doubles truncated, booleans 0/1, strings parsed like strtoll, else 0.
func (v *jsonValue) cInt64() int64 {
	if v == nil {
		return 0
	}
	switch v.kind {
	case jsonInt:
		n, err := strconv.ParseInt(v.str, 10, 64)
		if err != nil { // out of range: json-c saturates
			if v.str[0] == '-' {
				return -1 << 63
			}
			return 1<<63 - 1
		}
		return n
	case jsonDouble:
		f, _ := strconv.ParseFloat(v.str, 64)
		switch {
		case f != f:
			return 0
		case f >= 1<<63:
			return 1<<63 - 1
		case f <= -(1 << 63):
			return -1 << 63
		}
		return int64(f)
	case jsonBool:
		if v.b {
			return 1
		}
	case jsonString:
		n, _ := cStrtoll(v.str)
		return n
	}
	return 0
}

// cInt is json_object_get_int: cInt64 clamped to the int32 range.
func (v *jsonValue) cInt() int32 {
	n := v.cInt64()
	switch {
	case n > 1<<31-1:
		return 1<<31 - 1
	case n < -1<<31:
		return -1 << 31
	}
	return int32(n)
}

// cString is json_object_get_string for the values cryptsetup compares as
// names: the text of a string; other types print as JSON, which never
// equals a name cryptsetup looks for.
func (v *jsonValue) cString() string {
	if v == nil {
		return ""
	}
	switch v.kind {
	case jsonString:
		return v.str
	case jsonInt, jsonDouble:
		return v.str
	case jsonBool:
		return strconv.FormatBool(v.b)
	case jsonNull:
		return "null"
	}
	return "<" + v.kind.String() + ">"
}

func cSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// cStrtoll parses a leading decimal integer like strtoll(s, &end, 10):
// optional whitespace and sign, then digits; ok is false when there are
// no digits. Out-of-range values saturate.
func cStrtoll(s string) (n int64, ok bool) {
	i := 0
	for i < len(s) && cSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var u uint64
	over := false
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if u > (1<<64-1-d)/10 {
			over = true
		} else {
			u = u*10 + d
		}
		i++
	}
	if i == start {
		return 0, false
	}
	switch {
	case neg && (over || u > 1<<63):
		return -1 << 63, true
	case neg:
		return -int64(u), true
	case over || u > 1<<63-1:
		return 1<<63 - 1, true
	}
	return int64(u), true
}

// cStrtoull is cryptsetup's json_str_to_uint64: strtoull over the whole
// string, which must leave nothing unparsed and not overflow. Like
// strtoull it skips leading whitespace and takes a sign ("-1" wraps).
func cStrtoull(s string) (uint64, bool) {
	i := 0
	for i < len(s) && cSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var u uint64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if u > (1<<64-1-d)/10 {
			return 0, false // ERANGE
		}
		u = u*10 + d
		i++
	}
	if i == start {
		// No digits: strtoull leaves end at the start of s, so only an
		// empty string counts as fully parsed (to 0).
		return 0, len(s) == 0
	}
	if i != len(s) {
		return 0, false
	}
	if neg {
		u = -u
	}
	return u, true
}

// numbered is cryptsetup's check for object keys and numeric strings:
// every character a decimal digit (an empty string passes, as in C).
func numbered(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cAtoi is atoi() on a string already known to be all digits; ids too big
// for a C int are reported rather than wrapped.
func cAtoi(s string) (int, bool) {
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, false
	}
	return int(n), true
}
