package luks2

import (
	"bytes"
	"strings"
	"testing"
)

func area(text string, size int) []byte {
	b := make([]byte, size)
	copy(b, text)
	return b
}

func TestParseJSONArea(t *testing.T) {
	deep := func(n int) string { return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}` }
	for _, tc := range []struct {
		name, text string
		size       int
		err        string // "" for success
	}{
		{"compact", `{"a":1}`, 64, ""},
		{"trailing whitespace", "{\"a\":1} \t\r\n", 64, ""},
		{"pretty", "{\n \"a\": [ 1 , 2 ]\n}", 64, ""},
		{"leading space", ` {"a":1}`, 64, "does not start with '{'"},
		{"garbage after", `{"a":1}x`, 64, "after the JSON text"},
		{"second object", `{"a":1}{}`, 64, "after the JSON text"},
		{"garbage beyond the NUL", "{\"a\":1}\x00\x00x", 64, "after the JSON text"},
		{"no terminating NUL", `{"a":1}`, 7, "no terminating NUL"},
		{"only whitespace before the end", "{\"a\":1}  ", 9, "no terminating NUL"},
		{"truncated", `{"a":`, 64, "syntax error"},
		{"trailing comma", `{"a":1,}`, 64, "syntax error"},
		{"comment", `{/*x*/"a":1}`, 64, "syntax error"},
		{"single quotes", `{'a':1}`, 64, "syntax error"},
		{"control character", "{\"a\":\"x\ty\"}", 64, "control character"},
		{"escaped NUL", `{"a":"x\u0000"}`, 64, `\u0000`},
		{"32 levels", deep(32), 256, ""},
		{"33 levels", deep(33), 256, "nesting deeper than 32"},
		{"plus sign", `{"a":+1}`, 64, "syntax error"},
		{"bare minus", `{"a":-}`, 64, "malformed number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseJSONArea(area(tc.text, tc.size))
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestParseJSONValues(t *testing.T) {
	v, text, err := parseJSONArea(area(`{"b":1,"a":064,"b":"2","d":6.4e1,"s":"\u00e9\"\\\/","e":{},"x":[true,false,null]} `, 256))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(text, []byte("]} ")) {
		t.Errorf("text %q should end after the trailing space", text)
	}
	var keys []string
	for _, m := range v.obj {
		keys = append(keys, m.key)
	}
	// A repeated member keeps its first place and takes the last value.
	if strings.Join(keys, ",") != "b,a,d,s,e,x" || v.get("b").kind != jsonString || v.get("b").str != "2" {
		t.Errorf("members %v, b = %+v", keys, v.get("b"))
	}
	if a := v.get("a"); a.kind != jsonInt || a.cInt64() != 64 {
		t.Errorf("a = %+v (json-c reads 064 as the integer 64)", a)
	}
	if d := v.get("d"); d.kind != jsonDouble || d.cInt() != 64 {
		t.Errorf("d = %+v", d)
	}
	if s := v.get("s").str; s != "é\"\\/" {
		t.Errorf("s = %q", s)
	}
	if v.get("B") != nil {
		t.Error("member names must match case exactly")
	}
	if x := v.get("x"); len(x.arr) != 3 || x.arr[0].cInt() != 1 || x.arr[2].kind != jsonNull {
		t.Errorf("x = %+v", x)
	}
	// The serialized length is what json-c writes: 064 prints as 64.
	if n, want := serializedLen(v), len(`{"b":"2","a":64,"d":6.4e1,"s":"é\"\\/","e":{},"x":[true,false,null]}`); n != want {
		t.Errorf("serializedLen = %d, want %d", n, want)
	}
}

func TestCConversions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
	}{{`"2"`, 2}, {`" 2x"`, 2}, {`"x"`, 0}, {`2.9`, 2}, {`true`, 1}, {`null`, 0}, {`99999999999`, 1<<31 - 1}, {`-99999999999`, -1 << 31}, {`[]`, 0}} {
		v, _, err := parseJSONArea(area(`{"v":`+tc.in+`}`, 64))
		if err != nil {
			t.Fatal(err)
		}
		if got := v.get("v").cInt(); got != tc.want {
			t.Errorf("json_object_get_int(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{{"16384", 16384, true}, {"", 0, true}, {" 12", 12, true}, {"-1", 1<<64 - 1, true}, {"12x", 0, false},
		{"18446744073709551615", 1<<64 - 1, true}, {"18446744073709551616", 0, false}, {"x", 0, false}} {
		got, ok := cStrtoull(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("strtoull(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
