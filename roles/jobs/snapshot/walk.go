package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"

	"golang.org/x/sys/unix"
)

// maxDepth bounds the walk: a borg repo is three levels deep, and a tree
// the push user made a thousand levels deep must not exhaust descriptors.
const maxDepth = 32

// maxSkipped bounds the list of skipped entries kept for the record.
const maxSkipped = 20

// walker links one tree into a snapshot. Every entry is opened relative to
// its parent's descriptor with O_NOFOLLOW: a name the push user swaps for a
// symlink while the walk runs is refused, never followed.
type walker struct {
	ctx     context.Context
	res     *Result
	dev     uint64
	skipped int
	// skipTop are names at the top of the mirror that are not its tree.
	skipTop map[string]bool
}

func (w *walker) skip(rel, why string) {
	w.skipped++
	if len(w.res.Skipped) < maxSkipped {
		w.res.Skipped = append(w.res.Skipped, rel+" ("+why+")")
	}
}

// dir links the entries of directory src into directory dst.
func (w *walker) dir(src, dst int, rel string, depth int) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	// Readdirnames through a duplicate: os.File closes what it wraps.
	dup, err := unix.Dup(src)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), rel)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", shown(rel), err)
	}
	sort.Strings(names)
	for _, name := range names {
		if depth == 0 && w.skipTop[name] {
			continue
		}
		if err := w.entry(src, dst, name, path.Join(rel, name), depth); err != nil {
			return err
		}
	}
	return nil
}

func shown(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

func (w *walker) entry(src, dst int, name, rel string, depth int) error {
	fd, err := unix.Openat(src, name, openFlags, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		w.skip(rel, "symlink")
		return nil
	case errors.Is(err, unix.ENOENT):
		// Gone since the listing: only the push user removes, and it
		// cannot while the lock is held; say so rather than fail.
		w.skip(rel, "vanished")
		return nil
	case err != nil:
		return fmt.Errorf("open %s: %w", rel, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	if uint64(st.Dev) != w.dev {
		w.skip(rel, "another filesystem")
		return nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if depth+1 >= maxDepth {
			w.skip(rel, fmt.Sprintf("deeper than %d levels", maxDepth))
			return nil
		}
		if err := unix.Mkdirat(dst, name, 0o700); err != nil {
			return fmt.Errorf("mkdir %s: %w", rel, err)
		}
		sub, err := openDir(dst, name)
		if err != nil {
			return err
		}
		defer unix.Close(sub)
		w.res.Dirs++
		return w.dir(fd, sub, rel, depth+1)
	case unix.S_IFREG:
		frozen, err := freeze(fd, &st)
		if err != nil {
			return fmt.Errorf("freeze %s: %w", rel, err)
		}
		// The descriptor's own inode, whatever the name points to now.
		if err := unix.Linkat(fd, "", dst, name, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("link %s: %w", rel, err)
		}
		w.res.Files++
		w.res.Bytes += st.Size
		if frozen {
			w.res.Frozen++
			w.res.FrozenBytes += st.Size
		}
		return nil
	default:
		w.skip(rel, "not a regular file")
		return nil
	}
}

// frozenMode strips what would let anyone but root write the file or run
// it as someone else.
const frozenMode = 0o022 | unix.S_ISUID | unix.S_ISGID | unix.S_ISVTX

// freeze gives the file to root:root and takes away group and other write
// (and set-id bits). A borg file arrives 0600 (borg's umask is 077), so
// its mode is left as rsync set it, and the next push finds nothing to
// change on it: rsync run by the push user skips the owner and group it
// may not set, and its mode and mtime are the source's already.
func freeze(fd int, st *unix.Stat_t) (bool, error) {
	changed := false
	if st.Uid != 0 || st.Gid != 0 {
		if err := unix.Fchown(fd, 0, 0); err != nil {
			return false, err
		}
		changed = true
	}
	if mode := st.Mode & 0o7777; mode&frozenMode != 0 {
		if err := unix.Fchmod(fd, mode&^frozenMode); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, nil
}
