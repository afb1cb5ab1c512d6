// Package progress shows what long work is doing: on a terminal one line
// redrawn in place, elsewhere (a log, a pipe, CI) a plain line per phase,
// without the per-item counters that would flood a log. Provisioning, the
// recovery bundle, the drill and the demo's build all use it.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// Line is one progress line. Safe for concurrent use; a nil Line, or one
// without a writer, shows nothing.
type Line struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	shown bool
}

// New is a Line on w; tty redraws it in place.
func New(w io.Writer, tty bool) *Line { return &Line{w: w, tty: tty} }

// Status shows a phase: it replaces the line on a terminal, and is a line
// of its own elsewhere.
func (p *Line) Status(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", msg)
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, msg)
}

// Tick is a counter update (file 5 of 20): shown on a terminal only.
func (p *Line) Tick(format string, args ...any) {
	if p != nil && p.tty {
		p.Status(format, args...)
	}
}

// Done clears the redrawn line so the next output starts clean.
func (p *Line) Done() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

func (p *Line) clear() {
	if p.tty && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// Writer is w made safe to share with the line: each write first clears
// the line, under its lock, so a log or a report printed to the same
// terminal never lands in the middle of it, and concurrent writers (borg
// runs in parallel) never tear each other's lines.
func (p *Line) Writer(w io.Writer) io.Writer {
	if p == nil || w == nil {
		return w
	}
	return lineWriter{p: p, w: w}
}

type lineWriter struct {
	p *Line
	w io.Writer
}

func (l lineWriter) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	if l.p.w != nil {
		l.p.clear()
	}
	return l.w.Write(b)
}

// IsTerminal reports whether w is a terminal: only a terminal gets the
// redrawn line (and colour, where a command has it).
func IsTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
