package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/borgkit/borgkit/provision/digest"
)

func (h *osHost) ReadFile(ctx context.Context, p string) ([]byte, error) {
	real, err := h.resolve(p, true)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, wrapOp("read", p, h.name, err)
	}
	b, err := os.ReadFile(real)
	return b, wrapOp("read", p, h.name, err)
}

func (h *osHost) Digest(ctx context.Context, p string) (string, error) {
	real, err := h.resolve(p, true)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return "", wrapOp("digest", p, h.name, err)
	}
	sum, _, err := digest.File(real)
	return sum, wrapOp("digest", p, h.name, err)
}

func (h *osHost) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner Owner) error {
	real, err := h.resolve(p, false)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = writeAtomic(real, data, mode, h.owner(owner))
	}
	return wrapOp("write", p, h.name, err)
}

// writeAtomic is WriteFile on real paths: readers see the old or the new
// content, never a mix, and a crash leaves at worst a dot-named temp file.
func writeAtomic(path string, data []byte, mode fs.FileMode, owner Owner) (err error) {
	exists, err := regularTarget(os.Lstat(path))
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	// CreateTemp opens with O_EXCL and mode 0600: nobody else can hold the
	// file open from before the secret is in it, and a planted name fails.
	f, err := os.CreateTemp(dir, tempPrefix(filepath.Base(path))+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	// chown before chmod: chown by root clears setuid/setgid bits.
	if owner.ownerSet() {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			return err
		}
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if exists {
		// A hard link, not a copy: the old content keeps its inode, and so its
		// mode and owner, and costs no I/O.
		old := path + OldSuffix
		if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Link(path, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename is durable only once the directory is synced.
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func (h *osHost) Lstat(ctx context.Context, p string) (FileInfo, error) {
	real, err := h.resolve(p, false)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return FileInfo{}, wrapOp("lstat", p, h.name, err)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return FileInfo{}, wrapOp("lstat", p, h.name, err)
	}
	return fileInfo(filepath.Base(filepath.Clean(p)), fi), nil
}

func (h *osHost) ReadDir(ctx context.Context, p string) ([]FileInfo, error) {
	real, err := h.resolve(p, true)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, wrapOp("readdir", p, h.name, err)
	}
	ents, err := os.ReadDir(real)
	if err != nil {
		return nil, wrapOp("readdir", p, h.name, err)
	}
	out := make([]FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, wrapOp("readdir", p, h.name, err)
		}
		out = append(out, fileInfo(e.Name(), fi))
	}
	return out, nil
}

func fileInfo(name string, fi fs.FileInfo) FileInfo {
	info := FileInfo{Name: name, Size: fi.Size(), Mode: fi.Mode(), UID: -1, GID: -1, ModTime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		info.UID, info.GID = int(st.Uid), int(st.Gid)
	}
	return info
}

func (h *osHost) MkdirAll(ctx context.Context, p string, mode fs.FileMode, owner Owner) error {
	real, err := h.resolve(p, true)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = mkdirAll(real, mode, h.owner(owner))
	}
	return wrapOp("mkdir", p, h.name, err)
}

// mkdirAll creates one level at a time so that each new directory gets mode
// and owner, and directories that already existed keep theirs.
func mkdirAll(path string, mode fs.FileMode, owner Owner) error {
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		// 0700 until mode and owner are set: never briefly wider than asked.
		if err := os.Mkdir(d, 0o700); err != nil {
			if fi, serr := os.Stat(d); serr == nil && fi.IsDir() {
				continue // created by someone else meanwhile: not ours to change
			}
			return err
		}
		if owner.ownerSet() {
			if err := os.Lchown(d, owner.UID, owner.GID); err != nil {
				return err
			}
		}
		if err := os.Chmod(d, mode); err != nil {
			return err
		}
	}
	return nil
}

func (h *osHost) Chmod(ctx context.Context, p string, mode fs.FileMode) error {
	real, err := h.noSymlink(ctx, p)
	if err == nil {
		err = os.Chmod(real, mode)
	}
	return wrapOp("chmod", p, h.name, err)
}

func (h *osHost) Chown(ctx context.Context, p string, owner Owner) error {
	real, err := h.noSymlink(ctx, p)
	if o := h.owner(owner); err == nil && o.ownerSet() {
		err = os.Lchown(real, o.UID, o.GID)
	}
	return wrapOp("chown", p, h.name, err)
}

// noSymlink resolves p for a metadata change. chmod(2) follows a final
// symlink, so a link there is refused rather than changing its target.
func (h *osHost) noSymlink(ctx context.Context, p string) (string, error) {
	real, err := h.resolve(p, false)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return "", fmt.Errorf("%w: %s is a symlink", errSymlink, p)
	}
	return real, nil
}

func (h *osHost) Remove(ctx context.Context, p string) error {
	real, err := h.resolve(p, false)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = os.Remove(real)
	}
	return wrapOp("remove", p, h.name, err)
}
