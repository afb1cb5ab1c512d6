// Package jobs is the code behind `borgkit job NAME`: the small recurring
// jobs that provisioning schedules on each host, and the boot-time unlock.
package jobs
