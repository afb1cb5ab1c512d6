// Package status builds the backup-status dashboard and the weekly summary
// mail from the job records alone, so `borgkit status` never waits on borg.
package status
