// Package bundletest builds a small but real recovery site for tests: a
// server tree laid out like john-ai (/etc/borgkit/keys, repos under
// /mnt/backup), real borg repositories with archives of generated files,
// their key exports and passphrases, a LUKS2 image with its header backup
// and keyfile, a mirror directory holding copies of the repos, and the
// site config. It runs the real borg and cryptsetup; tests that use it
// skip when those are missing.
package bundletest
