package drill

import (
	"fmt"
	"io"
)

// progress shows what the drill is doing. On a terminal one line is
// redrawn in place; elsewhere (a log, a pipe) each phase is a line of its
// own, and the per-file counters that would flood a log are left out.
type progress struct {
	w     io.Writer
	tty   bool
	shown bool
}

func (p *progress) status(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
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
	if p != nil && p.w != nil && p.tty && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
