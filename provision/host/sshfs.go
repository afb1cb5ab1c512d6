package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/borgkit/borgkit/provision/tools"
	"github.com/pkg/sftp"
)

// files returns the host's SFTP client, starting the session on first use:
// a run that only executes programs never opens it.
func (h *sshHost) files(ctx context.Context, p string) (*sftp.Client, string, error) {
	if !path.IsAbs(p) {
		return nil, "", errRelative
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, "", errors.New("host is closed")
	}
	if h.sftp == nil {
		c, err := sftp.NewClient(h.client)
		if err != nil {
			return nil, "", fmt.Errorf("start sftp: %w", err)
		}
		h.sftp = c
	}
	return h.sftp, path.Clean(p), nil
}

func (h *sshHost) ReadFile(ctx context.Context, p string) ([]byte, error) {
	c, p2, err := h.files(ctx, p)
	if err != nil {
		return nil, wrapOp("read", p, h.name, err)
	}
	f, err := c.Open(p2)
	if err != nil {
		return nil, wrapOp("read", p, h.name, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		return nil, wrapOp("read", p, h.name, err)
	}
	return buf.Bytes(), nil
}

func (h *sshHost) Digest(ctx context.Context, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", wrapOp("digest", p, h.name, errRelative)
	}
	// sha256sum is coreutils, on every Debian; SFTP has no digest request.
	res, err := h.Run(ctx, Cmd{Argv: tools.Argv(tools.Sha256sum, "-b", "--", path.Clean(p)), Env: []string{"LC_ALL=C"}})
	if err != nil {
		if bytes.Contains(res.Stderr, []byte("No such file or directory")) {
			err = fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
		}
		return "", wrapOp("digest", p, h.name, err)
	}
	sum, err := parseSHA256Sum(res.Stdout)
	return sum, wrapOp("digest", p, h.name, err)
}

func (h *sshHost) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner Owner) error {
	c, p2, err := h.files(ctx, p)
	if err == nil {
		err = sftpWrite(ctx, c, p2, data, mode, owner)
	}
	return wrapOp("write", p, h.name, err)
}

// sftpWrite is writeAtomic over SFTP, with one difference. SFTP cannot give
// a mode at create (pkg/sftp sends no attributes with OPEN), so a new file
// starts as 0666 minus the server's umask, and whoever opens it in that
// moment keeps reading it after our chmod. The file is therefore created in a
// fresh directory that is made 0700 first: nobody else can look up names in
// it. The directory goes away after the rename.
//
// SFTP has no directory fsync: the rename is atomic but its durability is the
// file system's journal. fsync@openssh.com syncs the data where offered.
func sftpWrite(ctx context.Context, c *sftp.Client, p string, data []byte, mode fs.FileMode, owner Owner) (err error) {
	exists, err := regularTarget(c.Lstat(p))
	if err != nil {
		return err
	}
	tmpDir := path.Join(path.Dir(p), tempName(path.Base(p)))
	if err := c.Mkdir(tmpDir); err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	tmp := path.Join(tmpDir, "new")
	defer func() {
		if err != nil {
			c.Remove(tmp)
		}
		if rerr := c.RemoveDirectory(tmpDir); err == nil && rerr != nil {
			err = fmt.Errorf("remove temp dir: %w", rerr)
		}
	}()
	if err := c.Chmod(tmpDir, 0o700); err != nil {
		return err
	}
	f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	defer f.Close() // after the explicit Close below: harmless
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, ok := c.HasExtension("fsync@openssh.com"); ok {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	// chown before chmod: chown by root clears setuid/setgid bits. -1 reaches
	// the server as 0xffffffff, which fchown(2) reads as "leave".
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
		old := p + OldSuffix
		if err := c.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := c.Link(p, old); err != nil {
			return fmt.Errorf("keep old content (hardlink@openssh.com): %w", err)
		}
	}
	if err := c.PosixRename(tmp, p); err != nil {
		return fmt.Errorf("rename (posix-rename@openssh.com): %w", err)
	}
	return nil
}

func (h *sshHost) Lstat(ctx context.Context, p string) (FileInfo, error) {
	c, p2, err := h.files(ctx, p)
	if err != nil {
		return FileInfo{}, wrapOp("lstat", p, h.name, err)
	}
	fi, err := c.Lstat(p2)
	if err != nil {
		return FileInfo{}, wrapOp("lstat", p, h.name, err)
	}
	info := FileInfo{Name: path.Base(p2), Size: fi.Size(), Mode: fi.Mode(), UID: -1, GID: -1, ModTime: fi.ModTime()}
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		info.UID, info.GID = int(st.UID), int(st.GID)
	}
	return info, nil
}

func (h *sshHost) MkdirAll(ctx context.Context, p string, mode fs.FileMode, owner Owner) error {
	c, p2, err := h.files(ctx, p)
	if err == nil {
		err = sftpMkdirAll(c, p2, mode, owner)
	}
	return wrapOp("mkdir", p, h.name, err)
}

// sftpMkdirAll creates one level at a time, like mkdirAll. The first Stat
// makes the common case (it exists) one round trip.
func sftpMkdirAll(c *sftp.Client, p string, mode fs.FileMode, owner Owner) error {
	if fi, err := c.Stat(p); err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
		}
		return nil
	}
	var missing []string
	for d := p; d != "/"; d = path.Dir(d) {
		fi, err := c.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: d, Err: syscall.ENOTDIR}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := c.Mkdir(d); err != nil {
			if fi, serr := c.Stat(d); serr == nil && fi.IsDir() {
				continue // created by someone else meanwhile: not ours to change
			}
			return err
		}
		if owner.ownerSet() {
			if err := c.Chown(d, owner.UID, owner.GID); err != nil {
				return err
			}
		}
		if err := c.Chmod(d, mode); err != nil {
			return err
		}
	}
	return nil
}

func (h *sshHost) Chmod(ctx context.Context, p string, mode fs.FileMode) error {
	c, p2, err := h.sftpNoSymlink(ctx, p)
	if err == nil {
		err = c.Chmod(p2, mode)
	}
	return wrapOp("chmod", p, h.name, err)
}

func (h *sshHost) Chown(ctx context.Context, p string, owner Owner) error {
	c, p2, err := h.sftpNoSymlink(ctx, p)
	if err == nil && owner.ownerSet() {
		err = c.Chown(p2, owner.UID, owner.GID)
	}
	return wrapOp("chown", p, h.name, err)
}

// sftpNoSymlink refuses a final symlink: sftp-server's SETSTAT follows it.
func (h *sshHost) sftpNoSymlink(ctx context.Context, p string) (*sftp.Client, string, error) {
	c, p2, err := h.files(ctx, p)
	if err != nil {
		return nil, "", err
	}
	fi, err := c.Lstat(p2)
	if err != nil {
		return nil, "", err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, "", fmt.Errorf("%w: %s is a symlink", errSymlink, p)
	}
	return c, p2, nil
}

func (h *sshHost) Remove(ctx context.Context, p string) error {
	c, p2, err := h.files(ctx, p)
	if err == nil {
		err = c.Remove(p2)
	}
	return wrapOp("remove", p, h.name, err)
}
