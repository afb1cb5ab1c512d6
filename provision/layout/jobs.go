package layout

import (
	"path"
	"strings"
)

// A job has one name, its key: the schedules: entry, the record's file
// and metric label ("restore_test"). People type and read its CLI spelling
// ("restore-test"): in `borgkit job NAME`, unit, log and ping names.
const (
	JobNightly     = "nightly"
	JobSync        = "sync"
	JobStale       = "stale"
	JobCheck       = "check"
	JobVerify      = "verify"
	JobRestoreTest = "restore_test"
	JobSummary     = "summary"
	JobWatchdog    = "watchdog"
	// JobSnapshot keeps the offsite host's read-only snapshots of its
	// mirror, one after each complete push.
	JobSnapshot   = "snapshot"
	JobUnlock     = "unlock"
	JobScrub      = "scrub"
	JobSmartShort = "smart_short"
	JobSmartLong  = "smart_long"
	JobPull       = "pull"
	JobZFSLoadKey = "zfs_load_key"
	// JobAudit compares every copy of the repos with them, a share a night.
	JobAudit = "audit"
	// JobDrill is the disaster drill's record; it is run by hand, not
	// scheduled.
	JobDrill = "drill"
	// JobWatchdogReport is the forced command on the server that takes an
	// offsite host's watchdog report; it keeps no job record of its own.
	JobWatchdogReport = "watchdog_report"
)

// JobKey is the key of a job however it is spelled.
func JobKey(name string) string { return strings.ReplaceAll(name, "-", "_") }

// JobCLI is the spelling people type and read.
func JobCLI(job string) string { return strings.ReplaceAll(job, "_", "-") }

// JobLog is the log file of job in dir (LogDir on a host).
func JobLog(dir, job string) string { return path.Join(dir, JobCLI(job)+".log") }

// UnitName is the systemd unit of job: kind is "service" or "timer".
func UnitName(job, kind string) string { return "borgkit-" + JobCLI(job) + "." + kind }

// UnitPath is where UnitName is installed.
func UnitPath(job, kind string) string { return path.Join(SystemdDir, UnitName(job, kind)) }
