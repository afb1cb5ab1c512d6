package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/borgkit/borgkit/provision/layout"
)

// Store is the snapshots of one mirror.
type Store struct {
	// Mirror is the push target, the rrsync root (the host's mirror_root,
	// by default layout.MirrorRoot).
	Mirror string
	// Root holds the snapshots (layout.SnapshotRoot): root's, mode 0700.
	Root string
	// LockWait bounds the wait for a push in progress to end (default
	// DefaultLockWait); Take then gives up with ErrBusy.
	LockWait time.Duration
}

// DefaultLockWait is how long a snapshot waits for a push to finish. A
// longer push (the first one, a compaction night over a slow link) only
// defers the snapshot to the job's next run.
const DefaultLockWait = 5 * time.Minute

// PushMode is the rsync mode of a push into a mirror: recursion and
// symlinks as symlinks, none of -a's times, permissions, owner or group.
// A snapshot freezes each file it keeps (root's, no group or other write)
// and shares its inode with the mirror, so the push user may not, and
// must not, change a kept file's metadata in place: with -a the next push
// fails with exit 23 on the first same-size file borg rewrote (the nonce)
// or on a file whose mode the freeze narrowed, and its second pass, the
// one that carries the new nonce, never runs. The passes compare by size
// and by checksum, so times are never needed.
const PushMode = "-rl"

// ErrBusy is a push that held the mirror's lock for all of LockWait.
var ErrBusy = errors.New("a push into the mirror is in progress")

// For is the store of the mirror at mirror on the backup disk mounted at
// mount. The snapshots live on that disk (hard links cannot leave it),
// beside the mirror; a mirror kept at the top of the disk (adopted from a
// hand-built setup) holds them, and its snapshots leave them out.
func For(mirror, mount string) *Store {
	return &Store{Mirror: mirror, Root: layout.SnapshotRoot(mount)}
}

// Housekeeping are the entries at the top of a mirror that are not the
// pushed tree when the mirror is the disk's root: the snapshots themselves
// and the filesystem's lost+found. A snapshot leaves them out.
func (s *Store) housekeeping() map[string]bool {
	if path.Dir(path.Clean(s.Root)) != path.Clean(s.Mirror) {
		return nil
	}
	return map[string]bool{path.Base(s.Root): true, layout.LostFound: true}
}

// Snapshot is one kept snapshot.
type Snapshot struct {
	Name string
	Time time.Time
	Path string
}

// partialPrefix starts a snapshot still being made: List ignores it and the
// next Take removes it.
const partialPrefix = ".partial-"

// List is every complete snapshot, oldest first. No snapshot directory
// yet is no snapshots.
func (s *Store) List() ([]Snapshot, error) {
	ents, err := os.ReadDir(s.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	var out []Snapshot
	for _, e := range ents {
		t, ok := layout.SnapshotTime(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		out = append(out, Snapshot{Name: e.Name(), Time: t, Path: filepath.Join(s.Root, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// Latest is the newest snapshot, nil when there is none.
func (s *Store) Latest() (*Snapshot, error) {
	all, err := s.List()
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return &all[len(all)-1], nil
}

// Pending are the heartbeats in the mirror that the newest snapshot does
// not hold: complete pushes no snapshot keeps yet. A rewritten heartbeat is
// a new inode (rsync renames a fresh file into place), so a push that
// arrived since the snapshot is told from one that did not by the inode,
// not by anything the push user can write.
func (s *Store) Pending() ([]Heartbeat, error) {
	hbs, err := ReadHeartbeats(s.Mirror)
	if err != nil {
		return nil, err
	}
	latest, err := s.Latest()
	if err != nil {
		return nil, err
	}
	var held []Heartbeat
	if latest != nil {
		if held, err = ReadHeartbeats(latest.Path); err != nil {
			return nil, err
		}
	}
	var out []Heartbeat
	for _, hb := range hbs {
		if hb.Err != nil {
			continue
		}
		kept := false
		for _, o := range held {
			if o.Name == hb.Name && hb.Same(o) {
				kept = true
			}
		}
		if !kept {
			out = append(out, hb)
		}
	}
	return out, nil
}

// Result is what Take made.
type Result struct {
	Snapshot Snapshot
	// Files and Bytes are every regular file the snapshot holds; Frozen
	// and FrozenBytes those it took from the push user (new since the
	// last snapshot), the rest root had already.
	Files       int
	Bytes       int64
	Frozen      int
	FrozenBytes int64
	Dirs        int
	// Skipped are entries that are neither regular files nor directories
	// (a borg repo has none: symlinks, FIFOs, sockets), or too deep.
	Skipped []string
	// LockWait is how long the snapshot waited for a push to end.
	LockWait time.Duration
}

// Take makes a snapshot named for now: it waits for the mirror's push lock,
// gives every file of the mirror to root (read-only for everyone else),
// links each into a new tree under a temporary name, syncs the filesystem
// and renames the tree into place. A failure leaves no partial snapshot
// behind (the next Take removes one a crash left).
func (s *Store) Take(ctx context.Context, now time.Time) (*Result, error) {
	name := layout.SnapshotName(now)
	if err := s.clean(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Root, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(s.Root, name)); err == nil {
		return nil, fmt.Errorf("snapshot %s exists already", name)
	}
	mfd, err := openDir(unix.AT_FDCWD, s.Mirror)
	if err != nil {
		return nil, fmt.Errorf("snapshot: mirror: %w", err)
	}
	defer unix.Close(mfd)
	res := &Result{}
	waited, err := s.lock(ctx, mfd)
	res.LockWait = waited
	if err != nil {
		return res, err
	}
	// The lock goes with the descriptor, closed above.

	rfd, err := openDir(unix.AT_FDCWD, s.Root)
	if err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	defer unix.Close(rfd)
	partial := partialPrefix + name
	if err := unix.Mkdirat(rfd, partial, 0o700); err != nil {
		return res, fmt.Errorf("snapshot: mkdir %s: %w", filepath.Join(s.Root, partial), err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(filepath.Join(s.Root, partial))
		}
	}()
	pfd, err := openDir(rfd, partial)
	if err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(mfd, &st); err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	w := &walker{ctx: ctx, res: res, dev: uint64(st.Dev), skipTop: s.housekeeping()}
	if err := w.dir(mfd, pfd, "", 0); err != nil {
		return res, fmt.Errorf("snapshot of %s: %w", s.Mirror, err)
	}
	// Every link on disk before the name appears, and the name after.
	if err := unix.Syncfs(rfd); err != nil {
		return res, fmt.Errorf("snapshot: sync: %w", err)
	}
	if err := unix.Renameat(rfd, partial, rfd, name); err != nil {
		return res, fmt.Errorf("snapshot: rename %s: %w", partial, err)
	}
	ok = true
	if err := unix.Fsync(rfd); err != nil {
		return res, fmt.Errorf("snapshot: sync %s: %w", s.Root, err)
	}
	res.Snapshot = Snapshot{Name: name, Time: now.Truncate(time.Second), Path: filepath.Join(s.Root, name)}
	return res, nil
}

// lock takes rrsync's single-run lock on the mirror directory (flock on
// the directory itself), waiting up to LockWait for a push to end. While
// it is held, rrsync refuses every new push.
func (s *Store) lock(ctx context.Context, fd int) (time.Duration, error) {
	wait := s.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	start := time.Now()
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return time.Since(start), nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return time.Since(start), fmt.Errorf("snapshot: lock %s: %w", s.Mirror, err)
		}
		if time.Since(start) >= wait {
			return time.Since(start), fmt.Errorf("%w (waited %s for its lock on %s)", ErrBusy, wait, s.Mirror)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(min(time.Second, wait)):
		}
	}
}

// clean removes what an interrupted Take left.
func (s *Store) clean() error {
	ents, err := os.ReadDir(s.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), partialPrefix) {
			if err := os.RemoveAll(filepath.Join(s.Root, e.Name())); err != nil {
				return fmt.Errorf("snapshots: remove an interrupted one: %w", err)
			}
		}
	}
	return nil
}

// Remove deletes one snapshot: its names only; a file the mirror or
// another snapshot still links stays.
func (s *Store) Remove(sn Snapshot) error {
	if _, ok := layout.SnapshotTime(sn.Name); !ok || filepath.Dir(sn.Path) != filepath.Clean(s.Root) {
		return fmt.Errorf("remove snapshot: %s is not a snapshot of %s", sn.Path, s.Root)
	}
	if err := os.RemoveAll(sn.Path); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", sn.Name, err)
	}
	return nil
}
