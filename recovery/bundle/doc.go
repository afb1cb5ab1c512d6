// Package bundle writes and verifies borgkit's offline recovery bundle: the
// LUKS keyfiles and header backups of the offsite disks, the borg key
// exports and passphrases, the hosts' addresses and keys, and a runbook
// rendered with the site's real values — everything needed to unlock the
// offsite disk and restore on any Debian/Ubuntu machine after the server
// that normally holds those keys is gone.
//
// A bundle is a plain directory (usually on a USB stick kept off-site):
// files 0400, directories 0500, an index (bundle.json) and a checksum list
// (MANIFEST.sha256) that `sha256sum -c` can check without borgkit. Verify
// proves, without root and without the server, that every file is intact,
// that each keyfile opens its header backup, and that each borg key export
// and passphrase open a reachable copy of its repository.
package bundle
