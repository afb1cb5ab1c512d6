package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// MaxUnlockKey bounds what the key fetch reads from the server. A keyfile is
// 64 bytes; anything near this size is not a key, and reading it all would
// put an unbounded secret in memory.
const MaxUnlockKey = 8 << 10

// Unlock opens and mounts every LUKS disk of the offsite host with the key
// its unlock server serves over SSH. The key goes from ssh's stdout into a
// locked buffer and from there into cryptsetup's stdin: it is never written
// to a file, logged or put in an argv, and the buffer is zeroed after use.
//
// The timer runs it every few minutes for the life of the host, so a host
// whose disks are all open and mounted returns at once, without touching
// its record. A failure returns an error; the next timer run tries again.
// It sends no mail: the hourly watchdog reports a disk left unmounted.
func Unlock(ctx context.Context, env *OffsiteEnv) error {
	e, err := env.resolved()
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	e.prefix = "unlock: "
	disks := e.luksDisks()
	if len(disks) == 0 {
		return nil
	}
	// Checked before Begin: a record rewritten every 3 minutes would wear
	// the SD card to say nothing but "still open".
	if e.allOpen(disks) {
		return nil
	}
	return e.record(ctx, layout.JobUnlock, func(ctx context.Context) (state.Status, int, string, any, error) {
		stats, uerr := e.unlockAll(ctx, disks)
		if uerr != nil {
			uerr = fmt.Errorf("unlock: %w", uerr)
			return state.Failed, 1, uerr.Error(), stats, uerr
		}
		msg := "backup disk open and mounted"
		if e.TestOpenOnly {
			msg = "key verified (test mode, nothing opened)"
		}
		return state.OK, 0, msg, stats, nil
	})
}

func (e *OffsiteEnv) luksDisks() []*config.Disk {
	var out []*config.Disk
	for i := range e.Host.Disks {
		if e.Host.Disks[i].LUKS != nil {
			out = append(out, &e.Host.Disks[i])
		}
	}
	return out
}

func (e *OffsiteEnv) mapperPath(d *config.Disk) string {
	return filepath.Join(e.MapperDir, d.LUKS.MapperName(d))
}

// allOpen reports whether every disk is open and mounted from its mapper.
// Any doubt (an unreadable mount table) says no, and the full run explains.
func (e *OffsiteEnv) allOpen(disks []*config.Disk) bool {
	for _, d := range disks {
		mapper := e.mapperPath(d)
		if _, err := os.Stat(mapper); err != nil {
			return false
		}
		m, err := findMount(e.MountInfo, d.Mountpoint)
		if err != nil || m == nil || !mountedFrom(m, mapper) {
			return false
		}
	}
	return true
}

// mountedFrom reports whether m is the filesystem of device: by name as
// mount recorded it, or by device number when it was mounted by another
// name (/dev/dm-0, UUID=).
func mountedFrom(m *mountEntry, device string) bool {
	if filepath.Clean(m.Source) == filepath.Clean(device) {
		return true
	}
	fi, err := os.Stat(device)
	if err != nil || fi.Mode()&os.ModeDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	// Linux's dev_t encoding (glibc's gnu_dev_major/minor).
	rdev := uint64(st.Rdev)
	major := (rdev>>8)&0xfff | (rdev>>32)&^uint64(0xfff)
	minor := rdev&0xff | (rdev>>12)&^uint64(0xff)
	return m.Dev == fmt.Sprintf("%d:%d", major, minor)
}

// unlockAll unlocks each disk, fetching the key once, when the first disk
// needs it. A disk that fails does not stop the others.
func (e *OffsiteEnv) unlockAll(ctx context.Context, disks []*config.Disk) (state.UnlockStats, error) {
	var stats state.UnlockStats
	server, err := e.unlockServer()
	if err != nil {
		e.logf("%v", err)
		return stats, err
	}
	stats.Server = server.Name
	var key *fetchedKey
	defer func() { key.wipe() }()
	fetch := func() ([]byte, error) {
		if key == nil {
			k, tries, err := e.fetchKey(ctx, server)
			stats.Tries += tries
			if err != nil {
				return nil, err
			}
			key = k
		}
		return key.bytes(), nil
	}
	var errs []error
	for _, d := range disks {
		ud := state.UnlockedDisk{Name: d.Name, Device: d.Device, Mapper: e.mapperPath(d), Mount: d.Mountpoint}
		ud.Status, err = e.unlockDisk(ctx, d, fetch)
		if err != nil {
			ud.Status, ud.Error = "failed", err.Error()
			e.logf("%v", err)
			errs = append(errs, err)
		}
		stats.Disks = append(stats.Disks, ud)
	}
	return stats, errors.Join(errs...)
}

// unlockServer is the host serving the key, with what ssh needs of it.
func (e *OffsiteEnv) unlockServer() (*config.Host, error) {
	u := e.Host.Unlock
	if u == nil || u.Server == "" {
		return nil, fmt.Errorf("host %s has LUKS disks but no unlock.server in %s", e.Host.Name, e.Cfg.File)
	}
	s, ok := e.Cfg.Host(u.Server)
	if !ok {
		return nil, fmt.Errorf("unlock server %q of %s is not in %s", u.Server, e.Host.Name, e.Cfg.File)
	}
	if s.Address == "" || strings.HasPrefix(s.Address, "-") {
		// A leading '-' would make ssh read the address as an option.
		return nil, fmt.Errorf("server %s has no usable address (%q)", s.Name, s.Address)
	}
	return s, nil
}

// unlockDisk brings one disk to open and mounted, doing only the steps it
// lacks: a mapper left open by an earlier run whose mount failed is only
// mounted, without fetching the key again.
func (e *OffsiteEnv) unlockDisk(ctx context.Context, d *config.Disk, key func() ([]byte, error)) (string, error) {
	mapper := e.mapperPath(d)
	_, err := os.Stat(mapper)
	isOpen := err == nil
	m, err := findMount(e.MountInfo, d.Mountpoint)
	if err != nil {
		return "", fmt.Errorf("disk %s: %w", d.Name, err)
	}
	if m != nil {
		if isOpen && mountedFrom(m, mapper) {
			e.logf("%s is open and mounted on %s", d.Name, d.Mountpoint)
			return "open", nil
		}
		// rsync would land in whatever this is, and mounting over it would
		// hide it: neither is the unlock's call to make.
		return "", fmt.Errorf("disk %s: %s already has %s (%s) mounted, not %s; unmount it first",
			d.Name, d.Mountpoint, m.Source, m.FSType, mapper)
	}
	if !isOpen || e.TestOpenOnly {
		if _, err := os.Stat(d.Device); err != nil {
			// No key is fetched for a disk that is not there.
			return "", fmt.Errorf("disk %s: device %s is not present (unplugged, or not detected yet): %w", d.Name, d.Device, err)
		}
		k, err := key()
		if err != nil {
			return "", fmt.Errorf("disk %s: %w", d.Name, err)
		}
		if err := e.openLUKS(ctx, d, k); err != nil {
			return "", err
		}
		if e.TestOpenOnly {
			e.logf("the key opens %s (%s); test mode: not opened, not mounted", d.Name, d.Device)
			return "verified", nil
		}
		e.logf("opened %s as %s", d.Device, mapper)
	}
	if err := e.mountDisk(ctx, d, mapper); err != nil {
		return "", err
	}
	e.logf("mounted %s on %s", mapper, d.Mountpoint)
	return "ok", nil
}

// openLUKS runs cryptsetup with the key on its stdin. With TestOpenOnly it
// only checks that the key opens a keyslot, which needs no device-mapper:
// that is what the tests run, while the real open and mount are proven in
// the VM lab.
func (e *OffsiteEnv) openLUKS(ctx context.Context, d *config.Disk, key []byte) error {
	args := []string{"open", "--key-file", "-"}
	if e.TestOpenOnly {
		args = append(args, "--test-passphrase", d.Device)
	} else {
		args = append(args, d.Device, d.LUKS.MapperName(d))
	}
	c := host.Command(tools.Cryptsetup, args...)
	// bytes.Reader hands the slice to the pipe as it is: no copy of the key
	// is left behind in a buffer of os/exec.
	c.Stdin = bytes.NewReader(key)
	res, err := e.Exec.Run(ctx, c)
	if err == nil {
		return nil
	}
	server := e.Host.Unlock.Server
	if res.ExitCode == 2 { // cryptsetup: no keyslot opens with this key
		return fmt.Errorf("disk %s: the key served by %s does not open %s (was the disk re-formatted, or the keyfile on %s replaced?): %w",
			d.Name, server, d.Device, server, err)
	}
	return fmt.Errorf("disk %s: cryptsetup open %s: %w", d.Name, d.Device, err)
}

// mountDisk mounts the mapper with the disk's options, less those only
// fstab and its generators understand; borgkit adds none of its own, so
// what the config says is what is mounted.
func (e *OffsiteEnv) mountDisk(ctx context.Context, d *config.Disk, mapper string) error {
	args := []string{"-t", d.FSTypeOrDefault()}
	if opts := offsiteMountOptions(d.Options); len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	args = append(args, mapper, d.Mountpoint)
	if _, err := e.Exec.Run(ctx, host.Command(tools.Mount, args...)); err != nil {
		return fmt.Errorf("disk %s: mount %s on %s (left open; the next run only mounts): %w", d.Name, mapper, d.Mountpoint, err)
	}
	// The push target exists only on the mounted disk, so a push while it
	// is not mounted fails instead of filling the root filesystem. Made
	// here on a fresh disk, it is the push user's, as provisioning makes it.
	// A mirror kept at the top of the disk (adopted) is the disk's root
	// directory, which stays as it is.
	root := e.Host.MirrorRootOrDefault()
	if root == d.Mountpoint || !layout.Under(root, d.Mountpoint) {
		return nil
	}
	if _, err := os.Lstat(root); err == nil {
		return nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("disk %s: %w", d.Name, err)
	}
	if u, err := user.Lookup(layout.PushUser); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Lchown(root, uid, gid); err != nil {
			return fmt.Errorf("disk %s: %w", d.Name, err)
		}
	}
	return nil
}

// offsiteMountOptions drops the fstab-only options: mount(8) given them on the
// command line would pass some to the filesystem, which refuses them.
func offsiteMountOptions(opts []string) []string {
	var out []string
	for _, o := range opts {
		switch {
		case o == "", o == "defaults", o == "nofail", o == "auto", o == "noauto", o == "_netdev",
			o == "user", o == "nouser", o == "users", o == "owner", o == "group",
			strings.HasPrefix(o, "x-"), strings.HasPrefix(o, "comment="):
			continue
		}
		out = append(out, o)
	}
	return out
}

// fetchedKey is the fetched key: a fixed buffer, locked in memory so it is
// never swapped out to the SD card, and zeroed when done.
type fetchedKey struct {
	buf []byte
	n   int
}

func newFetchedKey() *fetchedKey {
	k := &fetchedKey{buf: make([]byte, MaxUnlockKey)}
	// Best effort: without CAP_IPC_LOCK it may fail, and the key is still
	// only in memory. The Go heap does not move objects, so the lock holds.
	_ = syscall.Mlock(k.buf)
	return k
}

func (k *fetchedKey) bytes() []byte { return k.buf[:k.n] }

func (k *fetchedKey) wipe() {
	if k == nil || k.buf == nil {
		return
	}
	clear(k.buf)
	_ = syscall.Munlock(k.buf)
	k.buf, k.n = nil, 0
}

// fetchKey fetches the key, trying again after each wait of Backoff while
// the server is unreachable. A refusal (host key, authorization, serve-key
// itself) is not retried: it will not change within a minute.
func (e *OffsiteEnv) fetchKey(ctx context.Context, server *config.Host) (*fetchedKey, int, error) {
	argv, err := e.unlockSSHArgv(server)
	if err != nil {
		return nil, 0, err
	}
	dest := server.Address
	if p := server.SSH.PortOrDefault(); p != config.DefaultSSHPort {
		dest = net.JoinHostPort(server.Address, strconv.Itoa(p))
	}
	name := fmt.Sprintf("%s (%s)", server.Name, dest)
	tries := 0
	for {
		tries++
		k, reason, retry := e.fetchOnce(ctx, argv, name)
		if k != nil {
			e.logf("fetched the key from %s (%d bytes)", name, k.n)
			return k, tries, nil
		}
		if !retry || ctx.Err() != nil {
			return nil, tries, fmt.Errorf("fetch key from %s: %s", name, reason)
		}
		if tries > len(e.Backoff) {
			return nil, tries, fmt.Errorf("fetch key from %s: unreachable after %d tries: %s (the timer tries again)", name, tries, reason)
		}
		wait := e.Backoff[tries-1]
		e.logf("server %s unreachable: %s; next try in %s", name, reason, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, tries, fmt.Errorf("fetch key from %s: %s; stopped: %w", name, reason, ctx.Err())
		case <-t.C:
		}
	}
}

// unlockSSHArgv is the fetch: the unlock identity only (see serverSSHArgv).
// No remote command is given: the server's authorized_keys forces
// serve-key.
func (e *OffsiteEnv) unlockSSHArgv(server *config.Host) ([]string, error) {
	return serverSSHArgv(e.Host.Name, server, "unlock identity", e.Host.Unlock.IdentityOrDefault(), e.KnownHosts)
}

// serverSSHArgv is ssh from the offsite host to its server with one
// identity whose forced command there does the one thing it may: the
// server's host key pinned by our own known_hosts alone, no prompt, no
// config file (root's ssh config must not reroute it).
func serverSSHArgv(self string, server *config.Host, what, identity, knownHosts string) ([]string, error) {
	for _, f := range []struct{ path, what string }{{identity, what}, {knownHosts, "known_hosts of " + server.Name}} {
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("%s %s is missing (provision %s from %s): %w", f.what, f.path, self, server.Name, err)
		}
	}
	if server.Address == "" || strings.HasPrefix(server.Address, "-") {
		// A leading '-' would make ssh read the address as an option.
		return nil, fmt.Errorf("server %s has no usable address (%q)", server.Name, server.Address)
	}
	c := host.Command(tools.SSH,
		"-F", "none",
		"-T",
		"-i", identity,
		"-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UpdateHostKeys=no",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10",
		"-p", strconv.Itoa(server.SSH.PortOrDefault()),
		server.SSH.UserOrDefault()+"@"+server.Address,
	)
	return c.Argv, nil
}

// fetchOnce runs the ssh argv once. It returns the key, or why not and
// whether another try could help.
//
// ssh runs through os/exec here, not host.Run: host.Run collects stdout in
// a growing buffer whose earlier copies cannot be zeroed. ssh's stdout is a
// pipe read straight into the key buffer, so the key exists in this process
// in that buffer only.
func (e *OffsiteEnv) fetchOnce(ctx context.Context, argv []string, name string) (key *fetchedKey, reason string, retry bool) {
	ctx, cancel := context.WithTimeout(ctx, e.FetchTimeout)
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Sprintf("pipe: %v", err), false
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = w
	stderr := &keyTail{max: 4 << 10}
	cmd.Stderr = stderr
	host.OwnGroup(cmd)
	err = cmd.Start()
	w.Close() // ssh holds its own copy; ours would keep the pipe from ending
	if err != nil {
		return nil, fmt.Sprintf("run %s: %v", argv[0], err), false
	}
	// A killed ssh whose pipe some child still holds must not block the read.
	stopDeadline := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Now()) })
	k := newFetchedKey()
	n, overflow, rerr := readKey(r, k.buf)
	k.n = n
	stopDeadline()
	if overflow {
		cmd.Cancel()
	}
	werr := cmd.Wait()

	ok := false
	defer func() {
		if !ok {
			k.wipe()
		}
	}()
	msg := stderr.last()
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !overflow:
		return nil, fmt.Sprintf("no answer within %s", e.FetchTimeout), true
	case ctx.Err() != nil:
		return nil, ctx.Err().Error(), false
	case overflow:
		return nil, fmt.Sprintf("the server sent more than %d bytes, which is no keyfile; nothing was used", MaxUnlockKey), false
	case werr != nil:
		code := -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
		reason, retry := unlockSSHFailure(code, msg, e.KnownHosts, name)
		return nil, reason, retry
	case rerr != nil:
		return nil, fmt.Sprintf("reading the key: %v", rerr), true
	case n == 0:
		return nil, "the server sent no key", false
	}
	ok = true
	return k, "", false
}

// unlockSSHFailure explains a failed ssh run and says whether retrying helps:
// only a failure to reach the server does.
func unlockSSHFailure(code int, msg, knownHosts, name string) (string, bool) {
	if msg == "" {
		msg = "no error output"
	}
	switch {
	case code != 255:
		// ssh connected and the forced command failed: serve-key said why
		// (revoked, not an offsite host of that server, keyfile missing).
		return fmt.Sprintf("the server refused (exit %d): %s", code, msg), false
	case strings.Contains(msg, "Host key verification failed") || strings.Contains(msg, "IDENTIFICATION HAS CHANGED") ||
		strings.Contains(msg, "host key is known"):
		return fmt.Sprintf("its host key does not match %s, so no key was asked for (reinstalled server, or someone in between; re-provision if the server changed): %s",
			knownHosts, msg), false
	case strings.Contains(msg, "Permission denied"):
		return fmt.Sprintf("%s does not accept the unlock key (revoked, or the server not provisioned for it): %s", name, msg), false
	}
	return msg, true
}

// readKey reads r into buf until EOF. overflow says r had more than buf
// holds; the excess byte read to find out is zeroed.
func readKey(r io.Reader, buf []byte) (n int, overflow bool, err error) {
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if errors.Is(err, io.EOF) {
			return n, false, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	var one [1]byte
	m, err := r.Read(one[:])
	clear(one[:])
	if m > 0 {
		return n, true, nil
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, false, err
}

// keyTail keeps the last max bytes written: a program's stderr, for errors.
type keyTail struct {
	max int
	b   []byte
}

func (t *keyTail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

// last is the last non-empty line: ssh's own error comes last.
func (t *keyTail) last() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}
