// Package tools names every external program borgkit runs, in one table that
// tests can point elsewhere, and builds their host.Cmd from argv.
package tools

import "github.com/borgkit/borgkit/provision/host"

// Program names as borgkit calls them; Paths maps each to what is executed.
const (
	AptGet         = "apt-get"
	Borg           = "borg"
	Blkid          = "blkid"
	Cryptsetup     = "cryptsetup"
	DpkgQuery      = "dpkg-query"
	Find           = "find"
	Findmnt        = "findmnt"
	Logrotate      = "logrotate"
	Mkfs           = "mkfs"
	Mount          = "mount"
	Mountpoint     = "mountpoint"
	Msmtp          = "msmtp"
	Rsync          = "rsync"
	Smartctl       = "smartctl"
	SSH            = "ssh"
	Syncoid        = "syncoid"
	Systemctl      = "systemctl"
	SystemdAnalyze = "systemd-analyze"
	Virsh          = "virsh"
	Wipefs         = "wipefs"
	Zfs            = "zfs"
	Zpool          = "zpool"
)

// Paths resolves a program name to what is run. Names resolve through PATH
// on the host by default; a test may replace an entry with a recorder or a
// fixed path.
var Paths = map[string]string{}

// Cmd builds the argv for program name with args.
func Cmd(name string, args ...string) host.Cmd {
	prog := name
	if p, ok := Paths[name]; ok {
		prog = p
	}
	return host.Cmd{Argv: append([]string{prog}, args...)}
}
