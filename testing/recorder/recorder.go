// Package recorder is a tool layer for tests of steps whose programs cannot
// run here (zfs, zpool without a pool): it records every argv a step runs
// and answers from a script, so tests assert the exact commands.
package recorder

import (
	"context"
	"sync"

	"github.com/borgkit/borgkit/provision/host"
)

// Host passes file operations to the wrapped host and answers Run from
// Reply. It reports itself live, so live-only steps run against it.
type Host struct {
	host.Host
	// Reply answers one program run.
	Reply func(argv []string) (host.Result, error)

	mu    sync.Mutex
	calls [][]string
}

// New wraps h.
func New(h host.Host, reply func(argv []string) (host.Result, error)) *Host {
	return &Host{Host: h, Reply: reply}
}

func (h *Host) Live() bool { return true }

func (h *Host) Run(_ context.Context, c host.Cmd) (host.Result, error) {
	h.mu.Lock()
	h.calls = append(h.calls, append([]string(nil), c.Argv...))
	h.mu.Unlock()
	return h.Reply(c.Argv)
}

// Calls returns every argv run so far, and forgets them.
func (h *Host) Calls() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}
