package copies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
)

// A root served with versions holds one tree per top-level directory (the
// offsite host's snapshots, named by their time). Its hard links share
// inodes between versions and with the mirror, so a listing names each
// inode once: the file in the oldest version that holds it, and none the
// Beside root's directory holds (the mirror's files, which the audit
// compares as the mirror). Only names, sizes and sums leave the host; the
// inode numbers stay in the server.

// inode is a file's identity on its filesystem.
type inode struct{ dev, ino uint64 }

func inodeOf(fi fs.FileInfo) (inode, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return inode{}, false
	}
	return inode{uint64(st.Dev), st.Ino}, true
}

// versionNames are the versions in root, oldest first (their names sort
// as their times do); a name starting with '.' is one being made.
func versionNames(root *os.Root) ([]string, error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, ".") || checkRel(n) != nil {
			continue
		}
		if fi, err := root.Lstat(n); err == nil && fi.IsDir() {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// splitVersion cuts VERSION/PATH, refusing a version being made.
func splitVersion(p string) (version, rel string, err error) {
	version, rel, ok := strings.Cut(p, "/")
	if err := checkRel(p); err != nil {
		return "", "", err
	}
	if !ok || strings.HasPrefix(version, ".") {
		return "", "", fmt.Errorf("path %q is not VERSION/PATH", p)
	}
	return version, rel, nil
}

// listVersions is every regular file of dir in each version, once per
// inode, leaving out the inodes in skip.
func listVersions(ctx context.Context, root *os.Root, dir string, skip map[inode]bool) ([]File, error) {
	versions, err := versionNames(root)
	if err != nil {
		return nil, err
	}
	seen := map[inode]bool{}
	held := false
	var out []File
	for _, v := range versions {
		err := walk(ctx, root, v+"/"+dir, func(rel string, fi fs.FileInfo) error {
			if id, ok := inodeOf(fi); ok {
				if skip[id] || seen[id] {
					return nil
				}
				seen[id] = true
			}
			if len(out) >= MaxPaths {
				return fmt.Errorf("more than %d files", MaxPaths)
			}
			out = append(out, File{Path: v + "/" + rel, Size: fi.Size()})
			return nil
		})
		if errors.Is(err, ErrNoRepo) {
			continue
		}
		if err != nil {
			return nil, err
		}
		held = true
	}
	if !held {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoRepo)
	}
	return out, nil
}

// inodes are the inodes of the regular files below dir in the root named
// name, none when it does not hold dir.
func inodes(ctx context.Context, roots map[string]string, name, dir string) (map[inode]bool, error) {
	out := map[inode]bool{}
	if name == "" {
		return out, nil
	}
	path, ok := roots[name]
	if !ok {
		return nil, fmt.Errorf("no root %q", name)
	}
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("root %s: %s", name, errText(err))
	}
	defer root.Close()
	err = walk(ctx, root, dir, func(_ string, fi fs.FileInfo) error {
		if id, ok := inodeOf(fi); ok {
			out[id] = true
		}
		return nil
	})
	if errors.Is(err, ErrNoRepo) {
		return out, nil
	}
	return out, err
}

// serveVersions answers a versions request; what fails is said in end.
func serveVersions(ctx context.Context, roots map[string]string, root *os.Root, req request, end *reply, enc *json.Encoder) error {
	switch req.Op {
	case "list":
		skip, err := inodes(ctx, roots, req.Beside, req.Dir)
		if err != nil {
			end.Fail = err.Error()
			return nil
		}
		files, err := listVersions(ctx, root, req.Dir, skip)
		if errors.Is(err, ErrNoRepo) {
			end.NoRepo = true
			return nil
		}
		if err != nil {
			end.Fail = err.Error()
			return nil
		}
		for _, f := range files {
			if err := enc.Encode(reply{File: f}); err != nil {
				return err
			}
		}
	case "hash":
		if len(req.Paths) > MaxPaths {
			end.Fail = fmt.Sprintf("%d paths in one request, more than %d", len(req.Paths), MaxPaths)
			return nil
		}
		for _, p := range req.Paths {
			if err := ctx.Err(); err != nil {
				end.Fail = err.Error()
				return nil
			}
			v, rel, err := splitVersion(p)
			f := File{Path: p}
			if err != nil {
				f.Err = err.Error()
			} else {
				f = hashOne(ctx, root, v+"/"+req.Dir, rel)
				f.Path = p
			}
			if err := enc.Encode(reply{File: f}); err != nil {
				return err
			}
		}
	}
	return nil
}
