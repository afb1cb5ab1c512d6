//go:build !linux

package drill

// lowerThreadPriority does nothing where the nice value is not per thread.
func lowerThreadPriority() {}
