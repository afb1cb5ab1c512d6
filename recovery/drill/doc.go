// Package drill rehearses a disaster recovery with nothing but the offline
// bundle and a copy of the backups: the offsite disk (or an image of it),
// unlocked read-only with the bundle's keyfile, or a mirror directory such
// as the NAS copy. It verifies the bundle, checks each repository, extracts
// a reproducible random sample of files (plus the configured canaries)
// from the latest archive, checks them against the archive's own hashes,
// and measures what a real recovery would face: the age of the newest
// archive (RPO), the time to the first and the last restored file (RTO)
// and the throughput. The copy is never written to.
//
// The report goes out as Markdown and JSON, and into the job state as
// job "drill", so the dashboard shows the last drill next to the backups.
package drill
