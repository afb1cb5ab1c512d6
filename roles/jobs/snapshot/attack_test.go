package snapshot_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/snapshot"
	"github.com/borgkit/borgkit/roles/recipe"
	"github.com/borgkit/borgkit/testing/loopdev"
	"github.com/borgkit/borgkit/testing/sshd"
	"github.com/borgkit/borgkit/testing/sysuser"
)

// pushLab is the offsite host as the offsite role provisions it, on this
// machine: an ext4 backup disk (loop device, with ext4's default 5% kept
// for root), the mirror owned by an unprivileged push user, the snapshots
// beside it, and a real sshd whose only key for that user is the rrsync
// line. The "server" pushes from a directory of repo-like files the way
// the sync job does.
type pushLab struct {
	t      *testing.T
	mount  string
	store  *snapshot.Store
	user   string
	rsh    string
	src    string // the server's repos
	asRoot bool
}

func need(t *testing.T, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed (make deps installs it); these tests run it for real", p)
		}
	}
	if _, err := os.Stat(recipe.Rrsync); err != nil {
		t.Skip("rrsync is not installed (package rsync)")
	}
}

// reachable lets other users through dir's ancestors that the test made
// (t.TempDir makes them 0700): rrsync runs as the push user.
func reachable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			os.Chmod(d, fi.Mode().Perm()|0o005)
		}
	}
}

func newPushLab(t *testing.T) *pushLab {
	t.Helper()
	need(t, "rsync", "ssh", "mkfs.ext4")
	l := &pushLab{t: t, asRoot: os.Getenv("BORGKIT_ATTACK_PUSH_AS_ROOT") != ""}
	dev := loopdev.New(t, 48<<20)
	dev.Run(t, "mkfs.ext4", "-q", "-F", dev.Path)
	l.mount = filepath.Join(t.TempDir(), "mnt-backup")
	os.Mkdir(l.mount, 0o755)
	if out, err := exec.Command("mount", dev.Path, l.mount).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", l.mount).Run() })
	reachable(t, l.mount)
	l.store = snapshot.For(layout.MirrorRoot(l.mount), l.mount)
	os.Mkdir(l.store.Mirror, 0o700)

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "borgkit@john-ai")
	key := filepath.Join(t.TempDir(), "borgkit_ed25519")
	os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
	signer, _ := ssh.NewSignerFromKey(priv)
	line, err := recipe.RrsyncLine("127.0.0.1", l.store.Mirror, ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	var srv *sshd.Server
	if l.asRoot {
		// Today's layout: the push key in root's authorized_keys.
		l.user = "root"
		srv = sshd.Start(t, sshd.Options{AuthorizedKeys: []string{string(line)}})
	} else {
		u := sysuser.New(t, "bkpush")
		l.user = u.Name
		os.Lchown(l.store.Mirror, u.UID, u.GID)
		srv = sshd.Start(t, sshd.Options{UserKeys: map[string][]string{u.Name: {string(line)}}})
	}
	l.rsh = strings.Join([]string{"ssh", "-i", key, "-p", strconv.Itoa(srv.Port), "-l", l.user,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + srv.KnownHostsPath, "-o", "StrictHostKeyChecking=yes"}, " ")

	// A repo as borg leaves it: 0700 directories, 0600 files.
	l.src = t.TempDir()
	files := map[string]int{"config": 700, "README": 26, "nonce": 16, "hints.5": 300, "index.5": 2000, "integrity.5": 190,
		"data/0/1": 40 << 10, "data/0/3": 100 << 10, "data/0/5": 17, "data/1/1000": 70 << 10}
	for rel, size := range files {
		p := filepath.Join(l.src, "system", rel)
		os.MkdirAll(filepath.Dir(p), 0o700)
		b := make([]byte, size)
		rand.Read(b)
		os.WriteFile(p, b, 0o600)
	}
	return l
}

// rsync runs the client side of a push through the push key.
func (l *pushLab) rsync(args ...string) (string, error) {
	argv := append([]string{"rsync", "-e", l.rsh}, args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

// push is the sync job's push of every repo, then the heartbeat.
func (l *pushLab) push() {
	l.t.Helper()
	// The nightly's two passes (jobs' transfer): the repo by size, then
	// what lies outside data/ by content, since nonce and config are
	// rewritten at the same size.
	for _, pass := range [][]string{
		{snapshot.PushMode, "--delete", "--size-only", "--stats"},
		{snapshot.PushMode, "--checksum", "--stats", "--exclude=/data/"},
	} {
		if out, err := l.rsync(append(pass, "--hard-links", "--numeric-ids", l.src+"/system/", "127.0.0.1:system/")...); err != nil {
			l.t.Fatalf("push %v: %v\n%s", pass, err, out)
		}
	}
	hb := filepath.Join(l.t.TempDir(), layout.HeartbeatDir)
	os.Mkdir(hb, 0o755)
	os.WriteFile(filepath.Join(hb, layout.HeartbeatName("john-ai")), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
	if out, err := l.rsync("-rtI", hb+"/", "127.0.0.1:"+layout.HeartbeatDir+"/"); err != nil {
		l.t.Fatalf("heartbeat: %v\n%s", err, out)
	}
}

// fileState is what a snapshot must keep of a file: content and metadata.
type fileState struct {
	sum        string
	mode, uid  uint32
	mtime      int64
	size       int64
	regular    bool
	linkTarget string
}

func treeState(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fs := fileState{mode: st.Mode, uid: st.Uid, mtime: st.Mtim.Sec, size: st.Size, regular: d.Type().IsRegular()}
		switch {
		case d.Type()&os.ModeSymlink != 0:
			fs.linkTarget, _ = os.Readlink(p)
		case fs.regular:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			fs.sum = hex.EncodeToString(sum[:])
		}
		out[rel] = fs
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameContent(t *testing.T, what string, got, want map[string]fileState) {
	t.Helper()
	var diffs []string
	for rel, w := range want {
		g, ok := got[rel]
		switch {
		case !ok:
			diffs = append(diffs, rel+" missing")
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s changed: %+v, was %+v", rel, g, w))
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			diffs = append(diffs, rel+" added")
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

// garbage is a tree with the repo's names, filled by fill(rel, size).
func (l *pushLab) garbage(fill func(rel string, size int64) []byte, mode os.FileMode, mtime time.Time) string {
	dir := l.t.TempDir()
	filepath.WalkDir(filepath.Join(l.src, "system"), func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(l.src, p)
		if d.IsDir() {
			os.MkdirAll(filepath.Join(dir, rel), 0o700)
			return nil
		}
		fi, _ := d.Info()
		q := filepath.Join(dir, rel)
		os.WriteFile(q, fill(rel, fi.Size()), mode)
		os.Chmod(q, mode)
		os.Chtimes(q, mtime, mtime)
		return nil
	})
	return dir
}

func random(n int64) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestPushKeyCannotReachSnapshots is the attack on the offsite history
// from a server that is no longer ours: with the push key, every rsync
// option rrsync lets through, against the mirror and the snapshot kept of
// it. The snapshot must come out byte for byte and stat for stat as it
// was, and a snapshot taken afterwards must not have followed anything the
// attacker planted. With BORGKIT_ATTACK_PUSH_AS_ROOT=1 the key logs in as
// root, as it did before the push user: the in-place attacks then rewrite
// the snapshot and this test fails.
func TestPushKeyCannotReachSnapshots(t *testing.T) {
	l := newPushLab(t)
	l.push()
	pending, err := l.store.Pending()
	if err != nil || len(pending) != 1 {
		t.Fatalf("the push left no pending heartbeat: %v %v", pending, err)
	}
	res, err := l.store.Take(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	before := treeState(t, res.Snapshot.Path)
	if n := len(before); n < 12 {
		t.Fatalf("snapshot holds %d entries", n)
	}
	srcState := treeState(t, filepath.Join(l.src, "system"))
	snapState := treeState(t, filepath.Join(res.Snapshot.Path, "system"))
	for rel, s := range srcState {
		if s.sum != snapState[rel].sum {
			t.Fatalf("snapshot of %s differs from the pushed repo", rel)
		}
	}
	passwd := treeState(t, "/etc/passwd")
	mtime := time.Now().Add(-time.Hour)

	attacks := []struct {
		name string
		argv func() []string
	}{
		{"--inplace, same size, new bytes", func() []string {
			g := l.garbage(func(_ string, n int64) []byte { return random(n) }, 0o600, mtime)
			return []string{"-r", "--inplace", "-I", g + "/system/", "127.0.0.1:system/"}
		}},
		{"--inplace, truncating", func() []string {
			g := l.garbage(func(_ string, n int64) []byte { return random(n / 3) }, 0o600, mtime)
			return []string{"-r", "--inplace", "-I", "--no-whole-file", g + "/system/", "127.0.0.1:system/"}
		}},
		{"--append", func() []string {
			g := l.garbage(func(_ string, n int64) []byte { return random(n + 4096) }, 0o600, mtime)
			return []string{"-r", "--append", g + "/system/", "127.0.0.1:system/"}
		}},
		{"--append-verify", func() []string {
			g := l.garbage(func(_ string, n int64) []byte { return random(n + 4096) }, 0o600, mtime)
			return []string{"-r", "--append-verify", g + "/system/", "127.0.0.1:system/"}
		}},
		{"mode, owner, group, times (-a --super -I, world-writable setuid)", func() []string {
			g := l.garbage(func(_ string, n int64) []byte { return random(n) }, 0o4777, mtime)
			return []string{"-a", "--super", "--inplace", "-I", g + "/system/", "127.0.0.1:system/"}
		}},
		{"--fake-super", func() []string {
			g := l.garbage(func(_ string, n int64) []byte { return random(n) }, 0o666, mtime)
			return []string{"-a", "--fake-super", "--inplace", "-I", g + "/system/", "127.0.0.1:system/"}
		}},
		{"hard links to the frozen files (--link-dest, -H)", func() []string {
			g := l.garbage(func(rel string, _ int64) []byte { b, _ := os.ReadFile(filepath.Join(l.src, rel)); return b }, 0o600, mtime)
			os.Link(filepath.Join(g, "system/data/0/1"), filepath.Join(g, "system/hardlink"))
			return []string{"-a", "-H", "--link-dest=/system", "--inplace", g + "/system/", "127.0.0.1:linked/"}
		}},
		{"write through the hard links just made", func() []string {
			g := l.garbage(func(_ string, n int64) []byte { return random(n) }, 0o600, mtime)
			return []string{"-r", "--inplace", "-I", g + "/system/", "127.0.0.1:linked/"}
		}},
		{"symlink planted at a segment, then written through", func() []string {
			g := t.TempDir()
			os.MkdirAll(filepath.Join(g, "data/0"), 0o700)
			os.Symlink("../../../../"+layout.SnapshotDir, filepath.Join(g, "data/0/escape"))
			os.Symlink("/etc/passwd", filepath.Join(g, "data/0/3"))
			return []string{"-rl", "--inplace", g + "/", "127.0.0.1:system/"}
		}},
		{"through the symlink as a destination path", func() []string {
			g := t.TempDir()
			os.WriteFile(filepath.Join(g, "owned"), []byte("x"), 0o600)
			return []string{"-r", g + "/", "127.0.0.1:system/data/0/escape/"}
		}},
		{"into a symlinked directory", func() []string {
			g := t.TempDir()
			os.MkdirAll(filepath.Join(g, "escape"), 0o700)
			os.WriteFile(filepath.Join(g, "escape/owned"), []byte("x"), 0o600)
			return []string{"-r", g + "/", "127.0.0.1:system/data/0/"}
		}},
		{"--backup-dir moves the files aside", func() []string {
			g := l.garbage(func(_ string, n int64) []byte { return random(n) }, 0o600, mtime)
			return []string{"-r", "-I", "-b", "--backup-dir=/aside", g + "/system/", "127.0.0.1:system/"}
		}},
		{"overwrite every file (temporary file and rename)", func() []string {
			g := l.garbage(func(_ string, n int64) []byte { return random(n + 1) }, 0o600, mtime)
			return []string{"-r", "-I", g + "/system/", "127.0.0.1:system/"}
		}},
		{"--delete everything", func() []string {
			empty := t.TempDir()
			return []string{"-r", "--delete", "--force", empty + "/", "127.0.0.1:"}
		}},
		{"fill the disk", func() []string {
			var st unix.Statfs_t
			unix.Statfs(l.mount, &st)
			g := t.TempDir()
			os.WriteFile(filepath.Join(g, "filler"), random(int64(st.Bavail*uint64(st.Bsize))+(1<<20)), 0o600)
			// --inplace keeps what was written when the disk runs full.
			return []string{"-r", "--inplace", g + "/", "127.0.0.1:"}
		}},
	}
	for _, a := range attacks {
		out, err := l.rsync(a.argv()...)
		status := "exit 0"
		if err != nil {
			status = err.Error()
		}
		t.Logf("attack %q: %s: %s", a.name, status, lastLine(out))
		sameContent(t, "snapshot after attack "+strconv.Quote(a.name), treeState(t, res.Snapshot.Path), before)
	}
	if ents, _ := os.ReadDir(l.store.Root); len(ents) != 1 {
		t.Errorf("the snapshot directory holds %d entries after the attacks", len(ents))
	}

	// The full disk leaves root room for the next snapshot; it holds the
	// attacker's files and none of what the symlinks point to.
	var st unix.Statfs_t
	unix.Statfs(l.mount, &st)
	t.Logf("after the attacks: %d blocks free, %d of them for the push user", st.Bfree, st.Bavail)
	if st.Bavail*100 > st.Blocks {
		t.Errorf("the fill attack left %d of %d blocks to the push user", st.Bavail, st.Blocks)
	}
	res2, err := l.store.Take(context.Background(), time.Now().Add(time.Second))
	if err != nil {
		t.Fatalf("snapshot on a disk the push user filled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(res2.Snapshot.Path, "filler")); err != nil {
		t.Errorf("the new snapshot lacks the attacker's filler: %v", err)
	}
	sameContent(t, "/etc/passwd", treeState(t, "/etc/passwd"), passwd)
	sameContent(t, "first snapshot after the second", treeState(t, res.Snapshot.Path), before)
}

// TestPushWaitsForSnapshot: while a snapshot holds the mirror's lock,
// rrsync refuses a push outright, so nothing is written while files are
// frozen and linked.
func TestPushRefusedWhileSnapshotHoldsTheLock(t *testing.T) {
	l := newPushLab(t)
	l.push()
	fd, err := unix.Open(l.store.Mirror, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(l.src, "system/data/0/7"), []byte("new segment"), 0o600)
	out, err := l.rsync("-a", l.src+"/system/", "127.0.0.1:system/")
	if err == nil || !strings.Contains(out, "Another instance of rrsync") {
		t.Fatalf("push during a snapshot: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(l.store.Mirror, "system/data/0/7")); !os.IsNotExist(err) {
		t.Fatalf("the push wrote while the lock was held: %v", err)
	}
	unix.Close(fd)
	if out, err := l.rsync("-a", l.src+"/system/", "127.0.0.1:system/"); err != nil {
		t.Fatalf("push after the snapshot: %v\n%s", err, out)
	}
}

// TestNextPushAfterSnapshotIsClean: a normal night after a snapshot. The
// push user's rsync meets root's files: unchanged ones it leaves alone
// (exit 0, not 23: no chmod or utime to try, even on a same-size rewrite
// or a mode the freeze narrowed), changed and new ones it
// writes as new inodes, compacted ones it deletes from the mirror while
// the snapshot keeps them.
func TestNextPushAfterSnapshotIsClean(t *testing.T) {
	l := newPushLab(t)
	l.push()
	res, err := l.store.Take(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(l.src, "system/data/1/1002"), random(30<<10), 0o600)
	os.Remove(filepath.Join(l.src, "system/data/0/3"))
	// borg rewrites the nonce at the same size; an hour on, so that rsync
	// sees a new mtime however fast the test runs.
	nonce := filepath.Join(l.src, "system/nonce")
	os.WriteFile(nonce, random(16), 0o600)
	later := time.Now().Add(time.Hour)
	os.Chtimes(nonce, later, later)
	// A hand-built repo's file, group-writable: the freeze narrowed it.
	os.Chmod(filepath.Join(l.src, "system/README"), 0o664)
	os.Chtimes(filepath.Join(l.src, "system/README"), later, later)
	os.Rename(filepath.Join(l.src, "system/index.5"), filepath.Join(l.src, "system/index.6"))
	l.push() // fails the test on any non-zero exit, 23 included
	sameContent(t, "mirror after the second push", files(treeState(t, filepath.Join(l.store.Mirror, "system"))), files(treeState(t, filepath.Join(l.src, "system"))))
	if _, err := os.Stat(filepath.Join(res.Snapshot.Path, "system/data/0/3")); err != nil {
		t.Fatalf("the snapshot lost the compacted segment: %v", err)
	}
	if p, _ := l.store.Pending(); len(p) != 1 {
		t.Fatalf("the second push is not pending: %v", p)
	}
}

// files is what a mirror must match of the source: every regular file's
// content. Times, modes and owners are not pushed (snapshot.PushMode).
func files(st map[string]fileState) map[string]fileState {
	out := map[string]fileState{}
	for rel, f := range st {
		if f.regular {
			out[rel] = fileState{sum: f.sum, size: f.size, regular: true}
		}
	}
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
