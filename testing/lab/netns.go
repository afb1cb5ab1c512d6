package lab

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/borgkit/borgkit/testing/link"
)

// netnsDir is where `ip netns add` keeps its named namespaces.
const netnsDir = "/run/netns"

// inNetNS runs fn on an OS thread moved into the named network namespace:
// a listener or a connection made in fn stays there for its whole life
// while every other goroutine of the process stays in the machine's
// namespace. This is how the lab's SMTP listener lives in john-ai's
// namespace and how readiness probes reach each host's sshd, without a
// helper process.
func inNetNS(name string, fn func() error) error { return link.InNetNS(name, fn) }

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
