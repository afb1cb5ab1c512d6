package host

import (
	"bytes"
	"strings"
	"testing"
)

func TestRemoteCommand(t *testing.T) {
	got, err := remoteCommand(Cmd{Argv: []string{"printf", "%s", "it's", "$HOME"}, Env: []string{"A=b c"}, Dir: "/srv/x y"})
	if err != nil {
		t.Fatal(err)
	}
	want := pidLine + `cd '/srv/x y' && exec env 'A=b c' 'printf' '%s' 'it'\''s' '$HOME'`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	for _, bad := range []Cmd{
		{},
		{Argv: []string{""}},
		{Argv: []string{"-x"}},
		{Argv: []string{"A=B"}, Env: []string{"X=1"}},
		{Argv: []string{"true"}, Env: []string{"NOEQUALS"}},
		{Argv: []string{"true"}, Env: []string{"=v"}},
	} {
		if _, err := remoteCommand(bad); err == nil {
			t.Errorf("%q accepted", bad.Argv)
		}
	}
}

func TestPIDFilter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		pid    int
		out    string
	}{
		{"marker", []string{pidMarker + "1234\nerr\n"}, 1234, "err\n"},
		{"split marker", []string{"borgkit-", "pid 77", "\nrest"}, 77, "rest"},
		{"no marker", []string{"forced command says hi\n", "more"}, 0, "forced command says hi\nmore"},
		{"short, no newline", []string{"bor"}, 0, "bor"},
		{"marker-like junk", []string{pidMarker + "x\n"}, 0, pidMarker + "x\n"},
		{"long line", []string{strings.Repeat("b", 100)}, 0, strings.Repeat("b", 100)},
	} {
		var buf bytes.Buffer
		f := &pidFilter{w: &buf}
		for _, w := range tc.writes {
			if n, err := f.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", tc.name, n, err)
			}
		}
		f.flush()
		if f.get() != tc.pid || buf.String() != tc.out {
			t.Errorf("%s: pid %d out %q, want %d %q", tc.name, f.get(), buf.String(), tc.pid, tc.out)
		}
	}
}
