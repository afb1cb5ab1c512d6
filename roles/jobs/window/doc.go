// Package window runs the nightly's repos at once within the host's
// bounds: so many in all, so many on one disk; and names the disk a repo
// lies on.
package window
