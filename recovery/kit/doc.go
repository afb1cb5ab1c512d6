// Package kit fetches the recovery bundle's offline install kit: the Debian
// 12 packages a bare Debian 12 system lacks to restore (borgbackup,
// cryptsetup-bin and their dependency closure), per architecture, pinned by
// name, version, architecture and SHA-256, with an apt flat-repository index
// so the rescue machine installs them with apt and no network.
//
// The closure is Debian's own answer, never a list kept by hand: apt, run
// with a private state directory and APT::Architecture set, first resolves
// what debootstrap's minbase variant installs (every Priority: required
// package and apt), records that as the installed system, then resolves and
// downloads borgbackup and cryptsetup-bin on top of it. A minbase system is
// the least any Debian 12 machine has, so the kit installs on all of them.
package kit
