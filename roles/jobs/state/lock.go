package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrLocked is wrapped by the error Lock returns when the wait ran out.
var ErrLocked = errors.New("lock is held")

// LockedError says who holds the lock.
type LockedError struct {
	Path string
	PID  int // 0 when the holder has not written its pid (yet)
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("another borgkit job holds %s", e.Path)
	}
	return fmt.Sprintf("another borgkit job holds %s (pid %d)", e.Path, e.PID)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Flock is a held lock. The kernel releases it when the process dies, however
// it dies, so a killed job never leaves the host locked.
type Flock struct {
	f    *os.File
	path string
}

// Lock takes the exclusive lock at path, waiting up to wait for a holder to
// let go (0: try once). It writes this process's pid into the file so a
// waiter can say whom it waits for.
func Lock(path string, wait time.Duration) (*Flock, error) {
	return LockContext(context.Background(), path, wait)
}

// LockContext is Lock that also gives up when ctx ends (a job being
// terminated while it waits).
func LockContext(ctx context.Context, path string, wait time.Duration) (*Flock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// O_NOFOLLOW: a symlink planted at path must not turn our truncate and
	// pid write into a write to some other file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	pause := 20 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			f.Close()
			return nil, &LockedError{Path: path, PID: holder(path)}
		}
		// Polling, not a blocking flock: a blocking call cannot be given a
		// deadline or a context.
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: waiting for %w: %w", path, &LockedError{Path: path, PID: holder(path)}, ctx.Err())
		case <-time.After(min(pause, left)):
		}
		pause = min(2*pause, time.Second)
	}
	l := &Flock{f: f, path: path}
	if err := l.writePID(); err != nil {
		l.Unlock()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return l, nil
}

func (l *Flock) writePID() error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// holder is the pid written in the lock file, 0 if none can be read.
func holder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// Path is the lock file.
func (l *Flock) Path() string { return l.path }

// Unlock lets go of the lock. The file stays: removing it would let a
// waiter lock the old inode while a newcomer creates and locks a new one.
func (l *Flock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Clear the pid first, so nobody reads a holder that has let go.
	terr := l.f.Truncate(0)
	uerr := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	cerr := l.f.Close()
	l.f = nil
	if err := errors.Join(terr, uerr, cerr); err != nil {
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return nil
}
