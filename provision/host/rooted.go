package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/borgkit/borgkit/provision/layout"
)

// NewRooted returns a host whose files live under dir (--root): /etc/fstab is
// dir/etc/fstab. It builds or inspects a tree (an image, a test fixture)
// without touching the running system. Run still runs programs on this
// machine unchanged; steps give them paths through Path. dir must exist.
func NewRooted(name, dir string) Host {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir) // only fails without a cwd; resolve reports it
	}
	return &osHost{name: name, root: abs}
}

// rootedPath maps p under the root and makes sure the result stays there.
// Cleaning removes "..", so only a symlink inside the tree could lead out:
// every existing component is checked, and a symlink is allowed only if it
// resolves inside the tree (a relative /bin -> usr/bin is fine, an absolute
// /etc -> /etc is not: followed here it would reach the live system).
// With follow false the last component is left alone, because the operation
// does not follow it (Lstat, Remove) or refuses a symlink there (WriteFile).
func (h *osHost) rootedPath(p string, follow bool) (string, error) {
	realRoot, err := filepath.EvalSymlinks(h.root)
	if err != nil {
		return "", fmt.Errorf("root directory: %w", err)
	}
	mapped := filepath.Join(h.root, filepath.Clean(p))
	rel := strings.TrimPrefix(filepath.Clean(p), "/")
	if rel == "" {
		return mapped, nil
	}
	parts := strings.Split(rel, "/")
	if !follow {
		parts = parts[:len(parts)-1]
	}
	cur := h.root
	for _, part := range parts {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			break // nothing below exists, so there are no more links to check
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		target, err := filepath.EvalSymlinks(cur)
		if err != nil {
			return "", fmt.Errorf("%w: %s is a symlink that does not resolve: %w", errSymlink, cur, err)
		}
		if !layout.Under(target, realRoot) {
			return "", fmt.Errorf("%w: %s points to %s, outside the root %s", errSymlink, cur, target, h.root)
		}
	}
	return mapped, nil
}

// owner drops ownership changes on a rooted host run by a normal user: such
// a run builds a tree to inspect or pack, and chown to root would fail there.
// A live host always applies them; failing is right if it cannot.
func (h *osHost) owner(o Owner) Owner {
	if h.root != "" && os.Geteuid() != 0 {
		return Owner{UID: -1, GID: -1}
	}
	return o
}

// PathInside is Path for a path handed to a program that follows symlinks
// on its own (borg with its repo, its key export and BORG_BASE_DIR): on a
// rooted host it refuses a path any existing part of which is a symlink
// leading out of the tree, since the program would write out there. A live
// host has no tree to leave.
func PathInside(h Host, p string) (string, error) {
	for {
		switch x := h.(type) {
		case *osHost:
			if x.root == "" {
				return x.Path(p), nil
			}
			return x.rootedPath(p, true)
		case interface{ Unwrap() Host }:
			h = x.Unwrap()
		default:
			return h.Path(p), nil
		}
	}
}
