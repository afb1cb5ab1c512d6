//go:build !linux

package drill

// lowerThreadPriority does nothing where the nice value is not per thread.
func lowerThreadPriority() (restore func() bool) { return func() bool { return true } }
