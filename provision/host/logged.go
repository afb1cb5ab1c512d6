package host

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Logged wraps h so every program it runs is written to w with its exit
// status and duration (borgkit -v). Only argv is logged: secrets never
// travel in argv, so the log is safe to share.
func Logged(h Host, w io.Writer) Host { return &logged{Host: h, w: w} }

type logged struct {
	Host
	w  io.Writer
	mu sync.Mutex
	n  int
}

func (l *logged) Run(ctx context.Context, c Cmd) (Result, error) {
	l.mu.Lock()
	l.n++
	n := l.n
	l.mu.Unlock()
	start := time.Now()
	res, err := l.Host.Run(ctx, c)
	fmt.Fprintf(l.w, "[%s #%d] %s -> exit %d (%s)\n", l.Name(), n, QuoteArgv(c.Argv), res.ExitCode, time.Since(start).Round(time.Millisecond))
	return res, err
}

// Unwrap is the host that runs the programs.
func (l *logged) Unwrap() Host { return l.Host }
