package snapshot

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/borgkit/borgkit/roles/jobs/state"
)

type inode struct{ dev, ino uint64 }

// Usage walks the mirror and every snapshot (never following a symlink) and
// counts the space that would come back if every snapshot were removed.
func (s *Store) Usage() (state.SnapshotUsage, error) {
	var u state.SnapshotUsage
	inMirror := map[inode]bool{}
	err := walkTree(s.Mirror, func(_ string, st *syscall.Stat_t, dir bool) {
		if !dir {
			inMirror[inode{uint64(st.Dev), st.Ino}] = true
			u.MirrorBytes += st.Blocks * 512
		}
	})
	if err != nil {
		return u, err
	}
	snaps, err := s.List()
	if err != nil {
		return u, err
	}
	u.Snapshots = len(snaps)
	held := map[inode]bool{}
	for _, sn := range snaps {
		err := walkTree(sn.Path, func(p string, st *syscall.Stat_t, dir bool) {
			if dir {
				u.DirBytes += st.Blocks * 512
				return
			}
			in := inode{uint64(st.Dev), st.Ino}
			if inMirror[in] || held[in] {
				return
			}
			held[in] = true
			u.HeldFiles++
			u.HeldBytes += st.Blocks * 512
			if segment(p) {
				u.HeldSegmentBytes += st.Blocks * 512
			}
		})
		if err != nil {
			return u, err
		}
	}
	return u, nil
}

// segment reports whether p is a borg segment file: REPO/data/N/M.
func segment(p string) bool {
	dir, _ := filepath.Split(p)
	return filepath.Base(filepath.Dir(filepath.Clean(dir))) == "data"
}

// walkTree calls fn for every directory and regular file under root.
func walkTree(root string, fn func(p string, st *syscall.Stat_t, dir bool)) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			fn(p, st, d.IsDir())
		}
		return nil
	})
}
