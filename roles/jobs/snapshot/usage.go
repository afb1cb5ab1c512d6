package snapshot

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// Usage is what the snapshots cost on the disk beyond the mirror.
type Usage struct {
	Snapshots int `json:"snapshots"`
	// HeldFiles and HeldBytes are the files only snapshots still link
	// (compacted segments, replaced indexes) and the disk space they take,
	// each counted once however many snapshots hold it.
	HeldFiles int   `json:"held_files"`
	HeldBytes int64 `json:"held_bytes"`
	// DirBytes is the snapshots' own directories.
	DirBytes int64 `json:"dir_bytes"`
	// MirrorBytes is the disk space of the mirror's files, for scale.
	MirrorBytes int64 `json:"mirror_bytes"`
}

// Total is the disk space the snapshots take beyond the mirror.
func (u Usage) Total() int64 { return u.HeldBytes + u.DirBytes }

type inode struct{ dev, ino uint64 }

// Usage walks the mirror and every snapshot (never following a symlink) and
// counts the space that would come back if every snapshot were removed.
func (s *Store) Usage() (Usage, error) {
	var u Usage
	inMirror := map[inode]bool{}
	err := walkTree(s.Mirror, func(st *syscall.Stat_t, dir bool) {
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
		err := walkTree(sn.Path, func(st *syscall.Stat_t, dir bool) {
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
		})
		if err != nil {
			return u, err
		}
	}
	return u, nil
}

// walkTree calls fn for every directory and regular file under root.
func walkTree(root string, fn func(st *syscall.Stat_t, dir bool)) error {
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
			fn(st, d.IsDir())
		}
		return nil
	})
}
