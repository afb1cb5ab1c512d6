// Package lab runs borgkit's two-host appliance for real on one Linux
// machine: the server "john-ai" and the offsite "pi", each a network
// namespace with a private mount and UTS namespace, its own /etc, /var,
// /root, /mnt, /usr/local and /run, its own OpenSSH sshd, and loop-device
// ext4 disks. A small SMTP listener inside john-ai's namespace receives what
// either host mails through msmtp.
//
// A host is one long-lived anchor process,
//
//	nsenter --net=/run/netns/NS -- unshare --mount --uts --propagation private -- sleep infinity
//
// whose mount namespace gets the per-host bind mounts; every program run
// "on" a host is `nsenter --target ANCHOR --mount --uts --net -- argv...`.
// Files of a host are read and written through /proc/ANCHOR/root, which
// resolves paths in the host's mount namespace. Nothing is mounted in the
// machine's own mount namespace, so a crashed run leaves only processes,
// loop devices, namespaces and a temporary directory behind, and Cleanup
// removes those.
//
// Options.Extra adds hosts of the same kind, without disks, on a bridge in
// john-ai's namespace (10.231.1.0/24): fleet.go sets up a borg server and
// its clients there for TestLabFleet and the bench.
//
// Scenario is the end-to-end run shared by the demo driver
// (testing/lab/cmd/demo) and TestLabEndToEnd: provision both hosts, run
// the jobs, check the mirrors, provision again and see no changes.
//
// The lab needs root, iproute2's `ip netns`, util-linux (nsenter, unshare,
// losetup), loop devices, mkfs.ext4 and /usr/sbin/sshd. Network traffic
// stays on 127.0.0.0/8 and on a private /30 (10.231.0.0/30) that exists
// only inside the lab's namespaces. The LUKS path of the Pi's disk needs
// device-mapper and is left to the VM lab: here the Pi's disk is plain ext4.
package lab
