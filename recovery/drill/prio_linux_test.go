package drill

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
)

// TestLowPriorityKeepsThread: a child started from the thread the drill's
// low-priority hasher then runs on survives the hasher (host.OwnGroup's
// Pdeathsig is sent when the starting thread ends, and a goroutine that
// ends locked to its thread ends the thread); the thread gets its old
// priority back. A drill once lost its own `borg list` this way.
func TestLowPriorityKeepsThread(t *testing.T) {
	type result struct {
		err                   error
		tid, tidIn            int
		before, inside, after int
		started               bool
	}
	cmd := exec.CommandContext(context.Background(), "sleep", "60")
	host.OwnGroup(cmd)
	// The runtime never ends the process's main thread (a goroutine that
	// ends locked to it wedges it): the test needs another, whose end it
	// can see. A goroutine that lands on the main thread holds it until
	// the end, so the next one runs elsewhere.
	release := make(chan struct{})
	defer close(release)
	attempt := func() result {
		res := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r := result{tid: syscall.Gettid()}
			if r.tid == os.Getpid() {
				res <- r
				<-release
				return
			}
			defer func() { res <- r }()
			if r.before, r.err = syscall.Getpriority(syscall.PRIO_PROCESS, r.tid); r.err != nil {
				return
			}
			if r.err = cmd.Start(); r.err != nil {
				return
			}
			r.started = true
			lowPriority(func() {
				r.tidIn = syscall.Gettid()
				r.inside, _ = syscall.Getpriority(syscall.PRIO_PROCESS, r.tidIn)
			})
			r.after, r.err = syscall.Getpriority(syscall.PRIO_PROCESS, r.tid)
		}()
		return <-res
	}
	var r result
	for range 100 {
		if r = attempt(); r.started || r.err != nil {
			break
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.started {
		t.Fatal("every goroutine ran on the main thread")
	}
	if r.tidIn != r.tid {
		t.Fatalf("lowPriority ran f on thread %d, the caller's is %d", r.tidIn, r.tid)
	}
	if r.inside != 1 { // the raw system call's 20-nice: nice 19
		t.Errorf("priority inside lowPriority: raw %d, want 1 (nice 19)", r.inside)
	}
	if r.after != r.before {
		t.Errorf("priority after lowPriority: raw %d, want the old %d", r.after, r.before)
	}
	// The goroutine has ended by now or is about to: had it taken its
	// thread with it, the kernel kills sleep at once.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("the child ended with the goroutine that started it: %v", err)
	case <-time.After(time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", r.tid)); err != nil {
		t.Errorf("the thread ended: %v", err)
	}
}
