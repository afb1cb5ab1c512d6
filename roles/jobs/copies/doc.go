// Package copies lists and hashes a repo's files where they lie: the USB
// repo itself, a mirror on the NAS, the offsite mirror through the forced
// command that serves only names, sizes and SHA-256 sums of files under it
// (Serve), and any later kind of copy (the offsite snapshots) that speaks
// the same protocol. The sync's guard and check and the audit compare
// copies through it, never by reading a remote file's content.
package copies
