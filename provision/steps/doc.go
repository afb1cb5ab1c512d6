// Package steps holds the reusable kinds of provisioning step: files, marked
// blocks in shared files, directories, generated secrets, packages, borg
// repositories and SSH keys. Roles put them together into plans.
package steps
