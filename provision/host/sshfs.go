package host

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/borgkit/borgkit/provision/tools"
	"github.com/pkg/sftp"
)

// files returns the host's SFTP client, waiting for the session DialSSH
// began to start.
func (h *sshHost) files(ctx context.Context, p string) (*sftp.Client, string, error) {
	if !path.IsAbs(p) {
		return nil, "", errRelative
	}
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, "", errors.New("host is closed")
	}
	if h.sftpErr != nil {
		return nil, "", h.sftpErr
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
	// Closing a handle we only read from cannot lose anything: it is not
	// waited for.
	defer func() { go f.Close() }()
	// Reads larger than one SFTP packet go out at once and a short one
	// means the end: a small file is one round trip after the open, where
	// WriteTo would ask for its size first and read once more for the end.
	var out []byte
	buf := make([]byte, readChunk)
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, wrapOp("read", p, h.name, err)
		}
	}
}

// readChunk is what one Read of ReadFile asks for: eight SFTP packets.
const readChunk = 256 << 10

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

// WriteFile sends data to a program on the host that writes it the way
// writeAtomic does: one exchange, where over SFTP every step (lstat, mkdir,
// chmod, open, write, fsync, chown, chmod, close, link, rename, rmdir)
// would wait for the one before. Large data is gzip-compressed on the way
// and unpacked by the host's gzip: the borgkit binary is half its size on
// the wire.
func (h *sshHost) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner Owner) error {
	if !path.IsAbs(p) {
		return wrapOp("write", p, h.name, errRelative)
	}
	p = path.Clean(p)
	var stdin io.Reader = bytes.NewReader(data)
	how := "cat"
	if len(data) >= compressAbove {
		pr, pw := io.Pipe()
		go func() {
			// In large pieces: the compressor's own writes are a few
			// hundred bytes, and an SSH packet each made the link crawl.
			bw := bufio.NewWriterSize(pw, 64<<10)
			// Level 4: as fast as BestSpeed here (15-27 MB/s of the 15 MB
			// binary at load 10, both), 8 % smaller (6.4 MB, not 7.0: a
			// quarter of a second at 20 Mbit/s); 5 and above are up to
			// twice as slow, which a busy host makes slower than the link.
			zw, _ := gzip.NewWriterLevel(bw, 4)
			_, err := zw.Write(data)
			if err == nil {
				err = zw.Close()
			}
			if err == nil {
				err = bw.Flush()
			}
			pw.CloseWithError(err)
		}()
		// Ends the compressor if the program stops reading early.
		defer pr.CloseWithError(errors.New("write ended"))
		stdin, how = pr, "gzip"
	}
	args := []string{"-c", writeScript, "sh", p, octalMode(mode), strconv.Itoa(owner.UID), strconv.Itoa(owner.GID), how}
	res, err := h.Run(ctx, Cmd{Argv: tools.Argv(tools.Sh, args...), Stdin: stdin, Env: []string{"LC_ALL=C"}})
	return wrapOp("write", p, h.name, scriptError(res, err))
}

// compressAbove is the size from which WriteFile compresses: below it the
// bytes saved do not pay for the compressor.
const compressAbove = 64 << 10

// writeScript is writeAtomic in sh. The new file is made in a fresh 0700
// directory beside the target (mktemp -d), so nobody else can open it
// while it still has the default mode; chown comes before chmod (chown by
// root clears setuid bits); the old content stays as a hard link; the
// rename and the directory are synced. Exit 3, 4, 5: a symlink, something
// other than a file, no directory at the target.
const writeScript = `p=$1; mode=$2; uid=$3; gid=$4; how=$5
d=${p%/*}; d=${d:-/}; b=${p##*/}
if [ -L "$p" ]; then echo "the target is a symlink" >&2; exit 3; fi
if [ -e "$p" ] && [ ! -f "$p" ]; then echo "the target is not a regular file" >&2; exit 4; fi
if [ ! -d "$d" ]; then echo "no directory $d" >&2; exit 5; fi
t=$(mktemp -d "$d/.$(printf %.100s "$b").borgkit-tmp-XXXXXXXXXXXXXXXX") || exit 1
trap 'rm -rf -- "$t"' EXIT
if [ "$how" = gzip ]; then gzip -dc; else cat; fi > "$t/new" || exit 1
sync -- "$t/new" || exit 1
if [ "$uid" != -1 ] && [ "$gid" != -1 ]; then chown -- "+$uid:+$gid" "$t/new" || exit 1
elif [ "$uid" != -1 ]; then chown -- "+$uid" "$t/new" || exit 1
elif [ "$gid" != -1 ]; then chgrp -- "+$gid" "$t/new" || exit 1; fi
chmod -- "$mode" "$t/new" || exit 1
if [ -f "$p" ]; then ln -f -T -- "$p" "$p.borgkit-old" || exit 1; fi
mv -f -T -- "$t/new" "$p" || exit 1
sync -- "$d"
`

// scriptError turns the exit codes of writeScript and mkdirScript into
// the errors the other hosts give.
func scriptError(res Result, err error) error {
	var ee *ExitError
	if !errors.As(err, &ee) {
		return err
	}
	switch res.ExitCode {
	case 3:
		return fmt.Errorf("%w: the target is a symlink", errSymlink)
	case 4:
		return errors.New("the target is not a regular file")
	case 5:
		return &fs.PathError{Op: "write", Path: strings.TrimSpace(string(res.Stderr)), Err: fs.ErrNotExist}
	case 6:
		return &fs.PathError{Op: "mkdir", Path: strings.TrimSpace(string(res.Stderr)), Err: syscall.ENOTDIR}
	}
	return err
}

// octalMode is mode as chmod takes it, the special bits included.
func octalMode(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
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
	return sftpInfo(path.Base(p2), fi), nil
}

func sftpInfo(name string, fi fs.FileInfo) FileInfo {
	info := FileInfo{Name: name, Size: fi.Size(), Mode: fi.Mode(), UID: -1, GID: -1, ModTime: fi.ModTime()}
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		info.UID, info.GID = int(st.UID), int(st.GID)
	}
	return info
}

func (h *sshHost) ReadDir(ctx context.Context, p string) ([]FileInfo, error) {
	c, p2, err := h.files(ctx, p)
	if err != nil {
		return nil, wrapOp("readdir", p, h.name, err)
	}
	ents, err := c.ReadDir(p2)
	if err != nil {
		return nil, wrapOp("readdir", p, h.name, err)
	}
	out := make([]FileInfo, 0, len(ents))
	for _, fi := range ents {
		out = append(out, sftpInfo(fi.Name(), fi))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// MkdirAll is one program that makes every missing level, where SFTP
// would take a stat per level and a mkdir, chown and chmod per new
// directory. Callers ask when they know something is missing (a write
// that found no directory, a directory step whose check found none), so
// there is no SFTP stat in front for the case that it exists.
func (h *sshHost) MkdirAll(ctx context.Context, p string, mode fs.FileMode, owner Owner) error {
	if !path.IsAbs(p) {
		return wrapOp("mkdir", p, h.name, errRelative)
	}
	p2 := path.Clean(p)
	var levels []string
	for d := p2; d != "/"; d = path.Dir(d) {
		levels = append(levels, d)
	}
	slices.Reverse(levels)
	args := append([]string{"-c", mkdirScript, "sh", octalMode(mode), strconv.Itoa(owner.UID), strconv.Itoa(owner.GID)}, levels...)
	res, err := h.Run(ctx, Cmd{Argv: tools.Argv(tools.Sh, args...), Env: []string{"LC_ALL=C"}})
	return wrapOp("mkdir", p, h.name, scriptError(res, err))
}

// mkdirScript is mkdirAll in sh: given every level from the top, it makes
// the missing ones 0700, then gives each its owner and mode; a level that
// exists must be a directory (exit 6), and one made by someone else
// meanwhile is left as it is.
const mkdirScript = `mode=$1; uid=$2; gid=$3; shift 3
for d do
  if [ -e "$d" ] || [ -L "$d" ]; then
    [ -d "$d" ] || { echo "$d" >&2; exit 6; }
    continue
  fi
  if ! mkdir -m 700 -- "$d"; then [ -d "$d" ] && continue; exit 1; fi
  if [ "$uid" != -1 ] && [ "$gid" != -1 ]; then chown -- "+$uid:+$gid" "$d" || exit 1
  elif [ "$uid" != -1 ]; then chown -- "+$uid" "$d" || exit 1
  elif [ "$gid" != -1 ]; then chgrp -- "+$gid" "$d" || exit 1; fi
  chmod -- "$mode" "$d" || exit 1
done
`

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
