package lab

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/borgkit/borgkit/provision/digest"
)

// dirEntry is HashTree's value for a directory.
const dirEntry = "dir"

// HashTree maps every path below dir on host (relative, "." excluded) to
// the SHA-256 of a regular file, "dir" for a directory, "-> TARGET" for a
// symlink, or "other" for anything else.
func (l *Lab) HashTree(host, dir string) (map[string]string, error) {
	root, err := l.Path(host, dir)
	if err != nil {
		return nil, err
	}
	tree := map[string]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		switch {
		case d.IsDir():
			tree[rel] = dirEntry
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			tree[rel] = "-> " + t
		case d.Type().IsRegular():
			sum, _, err := digest.File(p)
			if err != nil {
				return err
			}
			tree[rel] = sum
		default:
			tree[rel] = "other"
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: %s: hash %s: %w", host, dir, err)
	}
	return tree, nil
}

// DiffTrees lists, sorted, the paths where two HashTree results differ:
// "PATH (differs)", "PATH (missing)" from b, "PATH (extra)" in b.
func DiffTrees(a, b map[string]string) []string {
	var out []string
	for p, v := range a {
		w, ok := b[p]
		switch {
		case !ok:
			out = append(out, p+" (missing)")
		case v != w:
			out = append(out, p+" (differs)")
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, p+" (extra)")
		}
	}
	slices.Sort(out)
	return out
}

// Snapshot maps every path below each of dirs on host (absolute, as the
// host sees it) to its type, mode, owner, size, mtime and, for a regular
// file, content hash: two snapshots differ where anything was written,
// chmod'ed or touched. Paths under skip are left out.
func (l *Lab) Snapshot(host string, dirs []string, skip ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, dir := range dirs {
		root, err := l.Path(host, dir)
		if err != nil {
			return nil, err
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && p == root {
					return filepath.SkipDir
				}
				return err
			}
			rel := filepath.Join(dir, strings.TrimPrefix(p, root))
			if slices.ContainsFunc(skip, func(s string) bool { return rel == s || strings.HasPrefix(rel, s+"/") }) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				v += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
			}
			if fi.Mode().IsRegular() {
				sum, _, err := digest.File(p)
				if err != nil {
					return err
				}
				v += " " + sum
			}
			out[rel] = v
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("lab: %s: snapshot %s: %w", host, dir, err)
		}
	}
	return out, nil
}
