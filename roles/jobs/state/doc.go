// Package state records each runtime job's last run in /var/lib/borgkit/state
// (what the dashboard and the stale check read), and holds the host's borg lock.
package state
