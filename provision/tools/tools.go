// Package tools names every external program borgkit runs, in one table that
// tests can point elsewhere. host.Command builds a program run from it.
package tools

// Program names as borgkit calls them; Paths maps each to what is executed.
const (
	AptGet         = "apt-get"
	AptCache       = "apt-cache"
	Borg           = "borg"
	Blkid          = "blkid"
	Blockdev       = "blockdev"
	Chown          = "chown"
	Cryptsetup     = "cryptsetup"
	Dd             = "dd"
	DpkgQuery      = "dpkg-query"
	Find           = "find"
	Findmnt        = "findmnt"
	Getent         = "getent"
	Ln             = "ln"
	Logrotate      = "logrotate"
	Lsblk          = "lsblk"
	Mkfs           = "mkfs"
	Mktemp         = "mktemp"
	Mount          = "mount"
	Mountpoint     = "mountpoint"
	Msmtp          = "msmtp"
	Mv             = "mv"
	Partx          = "partx"
	Printenv       = "printenv"
	Readlink       = "readlink"
	Rm             = "rm"
	Rsync          = "rsync"
	Sh             = "sh"
	Sha256sum      = "sha256sum"
	Smartctl       = "smartctl"
	SSH            = "ssh"
	Syncoid        = "syncoid"
	Systemctl      = "systemctl"
	SystemdAnalyze = "systemd-analyze"
	Tee            = "tee"
	Udevadm        = "udevadm"
	Umount         = "umount"
	Useradd        = "useradd"
	Usermod        = "usermod"
	Virsh          = "virsh"
	Wipefs         = "wipefs"
	Zfs            = "zfs"
	Zpool          = "zpool"
)

// Paths resolves a program name to what is run. Names resolve through PATH
// on the host by default; a test may replace an entry with a recorder or a
// fixed path.
var Paths = map[string]string{}

// Argv is the argv that runs program name with args.
func Argv(name string, args ...string) []string {
	prog := name
	if p, ok := Paths[name]; ok {
		prog = p
	}
	return append([]string{prog}, args...)
}
