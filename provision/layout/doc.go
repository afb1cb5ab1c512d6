// Package layout is the contract of a provisioned host: every path borgkit
// installs or reads there, the names of its units, cron file, jobs, logs
// and records. Provisioning, the runtime jobs and the recovery tools ask
// it, so each of these is spelled once.
package layout
