package drill

import (
	"fmt"
	"io"
	"sync"
)

// progress shows what the drill is doing. On a terminal one line is
// redrawn in place; elsewhere (a log, a pipe) each phase is a line of its
// own, and the per-file counters that would flood a log are left out.
// Safe for concurrent use: a repository's check and its listings run at
// the same time.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	shown bool
}

func (p *progress) status(format string, args ...any) {
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

// tick is a counter update (file 5 of 20): shown on a terminal only.
func (p *progress) tick(format string, args ...any) {
	if p != nil && p.tty {
		p.status(format, args...)
	}
}

// done ends the redrawn line so the next output starts clean.
func (p *progress) done() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// syncWriter serialises writes to w: the log and the progress lines come
// from concurrent borg runs, and are often the same writer (stderr).
type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
