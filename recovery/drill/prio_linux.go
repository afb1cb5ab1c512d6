package drill

import "syscall"

// lowerThreadPriority gives the calling thread (on Linux the nice value
// is per thread) the lowest priority, nice 19. Best effort. restore puts
// the old nice value back and says whether the thread now has it; raising
// a thread's priority again needs CAP_SYS_NICE or RLIMIT_NICE.
func lowerThreadPriority() (restore func() bool) {
	tid := syscall.Gettid()
	// The raw system call, which syscall.Getpriority is, returns 20-nice.
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil || syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19) != nil {
		return func() bool { return true }
	}
	return func() bool { return syscall.Setpriority(syscall.PRIO_PROCESS, tid, 20-raw) == nil }
}
