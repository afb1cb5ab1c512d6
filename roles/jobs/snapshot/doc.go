// Package snapshot keeps the offsite host's read-only snapshots of its
// mirror: hard links to the mirror's files, whose inodes it first gives to
// root, so that the push user who writes the mirror can replace or delete
// the mirror's names but never change or remove what a snapshot holds.
//
// It relies on four things the offsite role provisions or Linux gives:
//   - the push user is not root and owns the mirror's directories only
//     (layout.PushUser); the snapshots live beside the mirror, not in it,
//     in a directory only root can enter (layout.SnapshotRoot);
//   - rsync writes a changed file to a temporary file and renames it over
//     the old name, so a push gives the mirror a new inode and leaves the
//     old one to the snapshots; --inplace and --append open the old inode,
//     which root now owns (mode 0600 or less), and fail with EACCES;
//   - rrsync holds a lock on the mirror directory for the whole of every
//     push (its single-run lock, not disabled by -no-lock), and a snapshot
//     takes the same lock: no push writes while a snapshot freezes and
//     links, so no push holds a file open for writing from before its
//     freeze;
//   - ext4 keeps blocks reserved for root (5% by default), so a push that
//     fills the disk leaves the snapshot job room for its directories.
package snapshot
