package host

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/borgkit/borgkit/provision/tools"
)

// Killing a remote program on cancel. Closing the channel does not do it:
// sshd only closes the program's pipes, and a program that does not write
// (sleep, a stuck mount) runs on. A "signal" channel request does not do it
// for root either: sshd refuses it without post-auth privilege separation,
// which it skips for root logins ("session signalling requires privilege
// separation"). So the remote shell reports its pid on stderr before it
// exec's the program, and a cancel kills that pid's process group from a
// second session. sshd made the shell a session leader (setsid), so the group
// is the program and every child it started.

// killTimeout bounds the kill's own session; it runs after Run returned.
const killTimeout = 30 * time.Second

// pidMarker starts the line the remote shell writes first on stderr.
const pidMarker = "borgkit-pid "

// pidLine is the command prefix that writes it.
const pidLine = `echo "` + pidMarker + `$$" >&2; `

// pidFilter takes the pid line off the program's stderr. When the first line
// is not one (a forced command in authorized_keys ran instead of ours), the
// bytes pass through unchanged.
type pidFilter struct {
	w io.Writer

	mu   sync.Mutex
	head []byte
	done bool
	pid  int
}

func (f *pidFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return f.w.Write(p)
	}
	f.head = append(f.head, p...)
	nl := bytes.IndexByte(f.head, '\n')
	if nl < 0 && len(f.head) < 64 && bytes.HasPrefix([]byte(pidMarker), f.head[:min(len(f.head), len(pidMarker))]) {
		return len(p), nil // maybe the marker, not complete yet
	}
	rest := f.head
	if nl >= 0 && bytes.HasPrefix(f.head, []byte(pidMarker)) {
		if pid, err := strconv.Atoi(string(f.head[len(pidMarker):nl])); err == nil && pid > 1 {
			f.pid = pid
			rest = f.head[nl+1:]
		}
	}
	f.done, f.head = true, nil
	if _, err := f.w.Write(rest); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush passes on a short first line that never got its newline.
func (f *pidFilter) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		f.w.Write(f.head)
		f.done, f.head = true, nil
	}
}

func (f *pidFilter) get() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pid
}

// kill ends the remote program of a cancelled Run unless it already ended,
// then closes the Run's session. A cancel right after start may come before
// the pid line: wait for it.
func (h *sshHost) kill(closeSession func(), finished <-chan struct{}, f *pidFilter) {
	defer closeSession()
	deadline := time.Now().Add(killTimeout)
	pid := f.get()
	for pid == 0 && time.Now().Before(deadline) {
		select {
		case <-finished:
			return
		case <-time.After(10 * time.Millisecond):
		}
		pid = f.get()
	}
	select {
	case <-finished:
		return // ended by itself: the pid may already be someone else's
	default:
	}
	if pid == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	p := strconv.Itoa(pid)
	// The group first; if the program left it (setsid), at least the pid.
	// Not through Run: the killed program still holds its session slot.
	h.run(ctx, Cmd{Argv: tools.Argv(tools.Sh, "-c", `kill -9 -"$1" 2>/dev/null || kill -9 "$1"`, "sh", p)}, func() {})
}
