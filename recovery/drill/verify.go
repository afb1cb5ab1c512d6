package drill

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// verifier hashes the extracted files. While borg extract runs, each file
// it has finished is hashed on a thread of the lowest priority: borg is
// single-threaded, and that thread only gets the CPU borg and everything
// else on the machine leave idle (hashing beside borg at normal priority
// took CPU from borg on a small shared machine, and made the restore
// slower). Whatever is left when borg exits is hashed at full speed, one
// goroutine per CPU, largest first.
type verifier struct {
	dir     string
	targets []target
	queue   chan int // files borg has finished, for the background hasher
	exited  atomic.Bool
	early   []fileSum
	hashed  []atomic.Bool // early[i] is set
	done    chan struct{}
}

func newVerifier(dir string, targets []target) *verifier {
	v := &verifier{dir: dir, targets: targets, queue: make(chan int, len(targets)),
		early: make([]fileSum, len(targets)), hashed: make([]atomic.Bool, len(targets)), done: make(chan struct{})}
	go v.background()
	return v
}

func (v *verifier) background() {
	lowPriority(func() {
		defer close(v.done)
		v.hash()
	})
}

// lowPriority runs f on a thread of its own at the lowest priority. The
// thread outlives f: borg and every other child borgkit starts gets
// SIGKILL when the *thread* that started it ends (Pdeathsig, see
// host.OwnGroup), and the Go runtime ends a thread when a goroutine exits
// locked to it, so a thread that once started a borg still running must
// not end. It goes back to the runtime at its old priority or, where that
// cannot be restored, stays parked with this goroutine for the rest of
// the process.
func lowPriority(f func()) {
	runtime.LockOSThread()
	restore := lowerThreadPriority()
	f()
	if !restore() {
		select {}
	}
	runtime.UnlockOSThread()
}

func (v *verifier) hash() {
	buf := make([]byte, 256<<10)
	for i := range v.queue {
		if v.exited.Load() {
			continue
		}
		s := hashFile(v.path(i), buf, &v.exited)
		if errors.Is(s.err, errAborted) {
			continue
		}
		v.early[i] = s
		v.hashed[i].Store(true)
	}
}

func (v *verifier) path(i int) string { return filepath.Join(v.dir, v.targets[i].Path) }

// finished hands over target i, which borg has restored completely.
func (v *verifier) finished(i int) { v.queue <- i }

// sums is called once borg has exited: every file's hash, the ones the
// background hasher has not done computed now.
func (v *verifier) sums() []fileSum {
	v.exited.Store(true)
	close(v.queue)
	sums := make([]fileSum, len(v.targets))
	var todo []int
	for i := range v.targets {
		if v.hashed[i].Load() {
			sums[i] = v.early[i]
		} else {
			todo = append(todo, i)
		}
	}
	slices.SortStableFunc(todo, func(a, b int) int { return cmp.Compare(v.targets[b].Size, v.targets[a].Size) })
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), len(todo)) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for {
				k := int(next.Add(1)) - 1
				if k >= len(todo) {
					return
				}
				sums[todo[k]] = hashFile(v.path(todo[k]), buf, nil)
			}
		})
	}
	wg.Wait()
	return sums
}

// wait waits for the background hasher to notice that it is not needed
// any more (it may be starved of CPU: not inside the timed window).
func (v *verifier) wait() { <-v.done }

// fileSum is a file's SHA-256 and size, or why it could not be read.
type fileSum struct {
	sum  string
	size int64
	err  error
}

var errAborted = errors.New("aborted")

// hashFile hashes the regular file p with buf (nil: one of its own),
// giving up with errAborted when stop (if not nil) is set.
func hashFile(p string, buf []byte, stop *atomic.Bool) fileSum {
	fi, err := os.Lstat(p)
	if err != nil {
		return fileSum{err: err}
	}
	if !fi.Mode().IsRegular() {
		return fileSum{err: fmt.Errorf("%s is a %v, not a regular file", p, fi.Mode().Type())}
	}
	f, err := os.Open(p)
	if err != nil {
		return fileSum{err: err}
	}
	defer f.Close()
	if buf == nil {
		buf = make([]byte, 32<<10)
	}
	h := sha256.New()
	var n int64
	for {
		if stop != nil && stop.Load() {
			return fileSum{err: errAborted}
		}
		k, err := f.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			return fileSum{sum: hex.EncodeToString(h.Sum(nil)), size: n}
		}
		if err != nil {
			return fileSum{size: n, err: err}
		}
	}
}
