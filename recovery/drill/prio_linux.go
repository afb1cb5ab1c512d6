package drill

import "syscall"

// lowerThreadPriority gives the calling thread (on Linux the nice value
// is per thread) the lowest priority, nice 19. Best effort.
func lowerThreadPriority() {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
}
