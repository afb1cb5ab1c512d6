package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostile inputs that exhausted the machine or hung before the limits:
// each must be refused as ErrLimit, at a line and column where the file
// has one. (A 100 KB "- - -" file took 48 s and 3.8 GB in the parser; the
// 400 KB bracket one and the long key ran out of memory.)
func TestParseRefusesOverLimits(t *testing.T) {
	big := withHeader(server...) + strings.Repeat("# "+strings.Repeat("x", 97)+"\n", MaxSize/100+1)
	var anchored strings.Builder
	anchored.WriteString(withHeader("  - name: srv", "    role: server", "    address: 100.64.0.1", "    repos:"))
	fmt.Fprintf(&anchored, "      - {name: r0, path: /srv/r0, sources: &s [%s]}\n", strings.TrimSuffix(strings.Repeat("/home/some/where, ", 1000), ", "))
	for i := 1; i < 200; i++ {
		fmt.Fprintf(&anchored, "      - {name: r%d, path: /srv/r%d, sources: *s}\n", i, i)
	}
	laughs := "version: 1\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 1; i < 10; i++ {
		laughs += fmt.Sprintf("l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	var indented strings.Builder
	indented.WriteString("version: 1\n")
	for i := range 100 {
		indented.WriteString(strings.Repeat(" ", i) + "a:\n")
	}
	var longKeys strings.Builder
	longKeys.WriteString("version: 1\n")
	for i := range 60 {
		fmt.Fprintf(&longKeys, "%s%s:\n", strings.Repeat(" ", i), strings.Repeat("k", 1000))
	}
	longKeys.WriteString(strings.Repeat(" ", 60) + "x: [" + strings.TrimSuffix(strings.Repeat("1,", 100000), ",") + "]\n")

	for _, tc := range []struct {
		name      string
		src       string
		line, col int
		msg       string
	}{
		{"over 1 MiB", big, 0, 0, "over the limit of 1048576"},
		{"200,000 brackets", "version: 1\nsite: " + strings.Repeat("[", 200000) + strings.Repeat("]", 200000) + "\n", 2, 1031, "nest more than 1024 deep here (the limit is 64)"},
		{"50,000-deep flow map", "version: 1\nsite: " + strings.Repeat("{a: ", 50000) + "b" + strings.Repeat("}", 50000) + "\n", 2, 4103, "nest more than 1024 deep"},
		{"50,000 dashes on a line", "version: 1\nsite:\n  " + strings.Repeat("- ", 50000) + "x\n", 3, 2051, "nest more than 1024 deep"},
		{"100 brackets", "version: 1\nsite: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n", 2, 70, "nest more than 64 deep"},
		{"100-deep flow map", "version: 1\nsite: " + strings.Repeat("{a: ", 100) + "b" + strings.Repeat("}", 100) + "\n", 2, 259, "nest more than 64 deep"},
		{"100 dashes on a line", "version: 1\nsite:\n  " + strings.Repeat("- ", 100) + "x\n", 3, 129, "nest more than 64 deep"},
		{"100 indented keys", indented.String(), 66, 65, "nest more than 64 deep"},
		{"anchored list in 200 repos", anchored.String(), 0, 0, "alias *s expands the config past"},
		{"billion laughs", laughs, 0, 0, "expands the config past"},
		{"a 2000-byte key", "version: 1\n" + strings.Repeat("k", 2000) + ": 1\n", 2, 1, "a key of 2000 bytes"},
		{"long keys over a long list", longKeys.String(), 0, 0, "these names add up past 64 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse("hostile.yaml", []byte(tc.src))
			p := problemFor(t, err, ErrLimit)
			if !strings.Contains(p.Msg, tc.msg) {
				t.Errorf("message %q, want %q", p.Msg, tc.msg)
			}
			if tc.line > 0 && (p.Line != tc.line || p.Col != tc.col) {
				t.Errorf("at %d:%d, want %d:%d", p.Line, p.Col, tc.line, tc.col)
			}
			if tc.line == 0 && tc.msg != "over the limit of 1048576" && p.Line == 0 {
				t.Errorf("no line for %v", p)
			}
			if len(p.Error()) > 1000 {
				t.Errorf("message is %d bytes long", len(p.Error()))
			}
			t.Logf("%v in %v", p.Msg, time.Since(start))
		})
	}
}

// Inputs at the limits are not refused for them.
func TestParseAtLimits(t *testing.T) {
	exact := withHeader(server...)
	exact += strings.Repeat("#", MaxSize-len(exact)-1) + "\n"
	// The top-level mapping is the first level.
	deep := "version: 1\nsite: " + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + "\n"
	key := "version: 1\n" + strings.Repeat("k", MaxKey) + ": 1\n"
	for name, src := range map[string]string{"1 MiB exactly": exact, "64 deep": deep, "1024-byte key": key} {
		if _, err := Parse(name, []byte(src)); errors.Is(err, ErrLimit) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Parse("exact", []byte(exact)); err != nil {
		t.Errorf("a valid file of exactly 1 MiB: %v", err)
	}
}

func TestReadFileRefusesWhatIsNoFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	large := filepath.Join(dir, "large.yaml")
	if err := os.WriteFile(large, make([]byte, 50<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		path string
		want error
		msg  string
	}{
		{fifo, ErrNotRegular, "is a named pipe"},
		{"/dev/zero", ErrNotRegular, "is a character device"},
		{dir, ErrNotRegular, "is a directory"},
		{large, ErrLimit, "52428800 bytes, over the limit"},
	} {
		_, err := ReadFile(ctx, tc.path)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v (%q)", tc.path, err, tc.want, tc.msg)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("a refusal waited for the deadline")
	}
}

// A read that hangs (a stalled network mount) ends when the command's
// context does: SIGINT and SIGTERM cancel it.
func TestReadContextGivesUpOnCancel(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() { _, err := readContext(ctx, r, MaxSize); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read ignored the cancelled context")
	}
}

// A growing file (or one that reports no size) is still bounded.
func TestReadAtMost(t *testing.T) {
	if _, err := readAtMost(strings.NewReader(strings.Repeat("x", 11)), 10); !errors.Is(err, errTooLarge) {
		t.Errorf("11 bytes over 10: %v", err)
	}
	if b, err := readAtMost(strings.NewReader(strings.Repeat("x", 10)), 10); err != nil || len(b) != 10 {
		t.Errorf("10 bytes: %v", err)
	}
}

// A file written on one line prints the part around each problem, never
// the whole line once per problem.
func TestProblemOnALongLine(t *testing.T) {
	var hosts []string
	for i := range 2000 {
		hosts = append(hosts, fmt.Sprintf("{name: h%d, role: server, address: 'a b'}", i))
	}
	src := "{version: 1, alerts: {to: a@b.c, from: a@b.c}, retention: {daily: 1}, hosts: [" + strings.Join(hosts, ", ") + "]}\n"
	_, err := Parse("one-line.yaml", []byte(src))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2000 {
		t.Fatalf("got %v", err)
	}
	p := ps[1500]
	out := p.Error()
	if len(out) > 600 {
		t.Fatalf("problem prints %d bytes:\n%s", len(out), out)
	}
	lines := strings.Split(out, "\n")
	src2, caret := []rune(lines[1]), []rune(lines[2])
	if len(caret) > len(src2) || !strings.HasPrefix(string(src2[len(caret)-1:]), "'a b'") {
		t.Errorf("caret does not point at the value:\n%s", out)
	}
}
