// Package vm is borgkit's VM lab: what needs a kernel of its own —
// device-mapper, LUKS, mounts at boot, reboots — proven in qemu guests.
//
// Build makes a Debian image once per recipe: debootstrap on the host into
// a cache directory keyed by the recipe's hash, then mkfs.ext4 -d, so no
// loop device or mount is needed. Beside the image it keeps the Debian
// kernel and the lab's own initrd (package vminit: load five modules,
// mount the root, exec systemd — initramfs-tools' udev pipeline cost 10–15 s
// of every boot under emulation), for qemu -kernel/-initrd. Every guest
// boots a qcow2 overlay of the image, so the cached base never changes.
//
// A guest gets its identity at every boot from qemu's fw_cfg, read by a
// small unit baked into the image: hostname, the address on the lab link,
// its ed25519 host key (made by the harness, which therefore pins it: no
// trust on first use) and the lab's login key. The login key sits in a
// file of its own that sshd reads besides root's authorized_keys, so
// borgkit's edits of authorized_keys are exactly what they would be on a
// real machine.
//
// Networks: each guest has a management NIC, qemu user networking with
// restrict=on (no way out, not even to the host) and only sshd forwarded
// from 127.0.0.1:<free port>, and a lab NIC on a point-to-point UDP socket
// netdev to its peer. UDP rather than a listen/connect pair keeps the link
// up when either end is stopped and started again, as the "server down at
// the Pi's boot" scenario needs. Only debootstrap on the host fetches
// packages.
//
// Pair is the appliance: john-ai with its USB disk and the pi with a blank
// disk for borgkit's --format. The first pair to boot saves a snapshot of
// both machines (qemu savevm, disks included) in the cache; later pairs
// resume from it in a few seconds instead of booting for a minute, and
// their clocks are set from the host's.
//
// The tests are skipped unless BORGKIT_VM=1. They need root and
// qemu-system-x86, qemu-utils, debootstrap and e2fsprogs on the host (and
// go, to build borgkit and the initrd). Run them all, in parallel, with
//
//	BORGKIT_VM=1 go test -count=1 -v -parallel 4 -timeout 60m ./testing/vm/
//
// TestVMDisasterDrill uses the bundle and the disk copy TestVMUnlockAtBoot
// makes, so it runs only together with it.
//
// TestVMArchiveZFS boots the archive host from a ZFS image: BuildZFS takes
// the plain image's debootstrap stage and configuration, and in a chroot of
// it (in a private mount namespace, with /proc, /sys and /dev for the
// build; a sources list for contrib inside the chroot only, removed after)
// apt-get installs zfs-dkms, zfsutils-linux and the headers of the image's
// kernel, and `dkms autoinstall -k KVER` compiles the module natively on
// the host — under TCG the build did not finish in 25 minutes. The layer
// is cached under CACHE/zfs/<hash>, keyed by its recipe and the plain
// image's hash, with zfs-build.json saying what its build measured; the
// plain image and its cache are left as they are. The build compiles for
// a quarter of an hour and more on two shared cores, so the test runs
// only when BORGKIT_VM_ZFS=1 (which builds the layer when it is missing)
// or when the layer is cached already; BORGKIT_VM_ZFS=0 skips it. Alone:
//
//	BORGKIT_VM=1 BORGKIT_VM_ZFS=1 go test -count=1 -v -run TestVMArchiveZFS -timeout 120m ./testing/vm/
//
// It needs network on the host for the build (apt-get in the chroot) and
// unshare from util-linux.
//
// TestVMAdoptPi builds the first seed's hand-built system on the pair (the
// pi's LUKS2 disk formatted by the test with cryptsetup and a keyfile kept
// on john-ai, the old unlock timer, the mirror the old sync made) and has
// borgkit adopt it, provision both hosts, reboot the pi and unlock it with
// the same keyfile. It takes about a quarter of an hour, so make vm runs it
// only with BORGKIT_VM_ADOPT=1; make vm-adopt runs it alone.
//
// TestVMOfflineRunbook restores from the recovery bundle alone, the
// runbook as the test: the offline kit's packages are fetched on the host
// (kit.Fetch, cached under CACHE/kit), a lab guest writes the bundle with
// them onto an encrypted stick (recovery-bundle --encrypt --kit: the kit on
// its unencrypted BORGKIT-KIT partition, the bundle on its LUKS2 one)
// beside the Pi's LUKS2 disk, and a guest of the rescue image
// (RescueRecipe: Debian 12 minbase with systemd, sshd and a kernel, no
// borg, python3 or cryptsetup) with no way out runs the runbook's shell
// blocks off the stick, the stick's passphrase typed on stdin, with the
// disk's header zeroed and then intact. It
// builds that third image, so make vm runs it only with
// BORGKIT_VM_OFFLINE=1; make vm-offline runs it alone.
//
// TestVMNspawnContainer runs a systemd-nspawn machine on john-ai, started
// with machinectl, as a repo's container source. Its image is a
// PackageLayer: the plain image's tree with systemd-container apt-get
// installed in a chroot on the host (16 packages, 6 MB, a minute and a
// half), cached under CACHE/nspawn/<hash> with its own pair snapshot, so
// the plain image every other test boots keeps its key. make vm runs it
// only with BORGKIT_VM_NSPAWN=1; make vm-nspawn runs it alone.
//
// Each step prints a line starting "vm-time" with its duration.
// Environment: BORGKIT_VM_CACHE
// (default /var/cache/borgkit-vm), BORGKIT_VM_ACCEL (default tcg),
// BORGKIT_VM_MIRROR (Debian mirror), BORGKIT_VM_SNAPSHOT=0 (always boot),
// BORGKIT_VM_BINARY (a prebuilt borgkit instead of building the tree's),
// BORGKIT_VM_KEEP=1 (keep run directories: overlays, serial and qemu logs,
// plans; a failing test keeps its own anyway).
package vm
