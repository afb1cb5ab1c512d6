package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// netnsDir is where `ip netns add` keeps its named namespaces.
const netnsDir = "/run/netns"

// setns moves the calling thread into the namespace fd refers to.
func setns(fd uintptr, nstype int) error {
	nr := sysSetns // a variable: the fallback's -1 is no uintptr constant
	if nr < 0 {
		return syscall.ENOSYS
	}
	if _, _, errno := syscall.RawSyscall(uintptr(nr), fd, uintptr(nstype), 0); errno != 0 {
		return errno
	}
	return nil
}

// inNetNS runs fn on an OS thread moved into the named network namespace.
// A socket belongs to the namespace of the thread that created it, so a
// listener or a connection made in fn stays there for its whole life while
// every other goroutine of the process stays in the machine's namespace.
// This is how the lab's SMTP listener lives in john-ai's namespace and how
// readiness probes reach each host's sshd, without a helper process.
func inNetNS(name string, fn func() error) error {
	target, err := os.Open(filepath.Join(netnsDir, name))
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", name, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer orig.Close()
	if err := setns(target.Fd(), syscall.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", name, err)
	}
	ferr := fn()
	if err := setns(orig.Fd(), syscall.CLONE_NEWNET); err != nil {
		// The thread is stuck in the lab's namespace. Leaving it locked
		// makes the runtime end it with this goroutine instead of handing
		// it to other code.
		return errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// nsID identifies a namespace the way /proc/PID/ns/* links do.
type nsID struct{ dev, ino uint64 }

func statNS(path string) (nsID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{uint64(st.Dev), st.Ino}, nil
}

// pidsInNS lists the processes whose namespace of kind ("net", "mnt") is
// id: every lab process of a host, whoever started it (sshd's session
// children, a job's rsync, a crashed run's anchor).
func pidsInNS(kind string, id nsID) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		got, err := statNS(filepath.Join("/proc", e.Name(), "ns", kind))
		if err == nil && got == id {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killNS kills, by pid, every process in the namespace until none is left
// or the time is up; it returns the pids still alive.
func killNS(kind string, id nsID, limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		pids := pidsInNS(kind, id)
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return pids
		}
		time.Sleep(20 * time.Millisecond)
	}
}
