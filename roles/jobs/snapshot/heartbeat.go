package snapshot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/borgkit/borgkit/provision/layout"
)

// Heartbeat is one server's heartbeat file in a mirror (or a snapshot):
// what the push key left there, read without following a symlink or
// blocking on a FIFO the push user may have put in its place.
type Heartbeat struct {
	Server string // whose heartbeat, from the file name
	Name   string // the file name in layout.HeartbeatDir
	// Line is the file's first line, at most maxHeartbeatLine bytes.
	Line string
	// ModTime is the file's mtime (rsync -t keeps the server's); Arrived
	// is its ctime, when it landed here, by this host's clock: the push
	// user cannot set it.
	ModTime, Arrived time.Time
	Dev, Ino         uint64
	// Err says why the entry is no heartbeat (not a regular file).
	Err error
}

// maxHeartbeatLine bounds what is read of a heartbeat: it is one line.
const maxHeartbeatLine = 4 << 10

// openFlags open what the push user may have made: never through a final
// symlink, never blocking on a FIFO, never taking a terminal.
const openFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// openDir opens directory name below the directory fd at (AT_FDCWD for
// an absolute name) without following a symlink at its last component.
func openDir(at int, name string) (int, error) {
	fd, err := unix.Openat(at, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

// ReadHeartbeats lists the heartbeats in the tree at root (a mirror or a
// snapshot), by server name. A tree without a heartbeat directory has
// none. root itself is trusted (its parent is root's); nothing below it is.
func ReadHeartbeats(root string) ([]Heartbeat, error) {
	rfd, err := openDir(unix.AT_FDCWD, root)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	hfd, err := openDir(rfd, layout.HeartbeatDir)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w (not a directory, or a symlink)", root, layout.HeartbeatDir, err)
	}
	dir := os.NewFile(uintptr(hfd), root+"/"+layout.HeartbeatDir)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir.Name(), err)
	}
	sort.Strings(names)
	var out []Heartbeat
	for _, name := range names {
		server, ok := layout.HeartbeatServer(name)
		if !ok {
			continue
		}
		out = append(out, readHeartbeat(hfd, server, name))
	}
	return out, nil
}

func readHeartbeat(dirfd int, server, name string) Heartbeat {
	hb := Heartbeat{Server: server, Name: name}
	fd, err := unix.Openat(dirfd, name, openFlags, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			err = errors.New("a symlink, not a heartbeat")
		}
		hb.Err = fmt.Errorf("%s: %w", name, err)
		return hb
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		hb.Err = fmt.Errorf("%s: %w", name, err)
		return hb
	}
	hb.Dev, hb.Ino = uint64(st.Dev), st.Ino
	hb.ModTime = time.Unix(st.Mtim.Unix())
	hb.Arrived = time.Unix(st.Ctim.Unix())
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		hb.Err = fmt.Errorf("%s is not a regular file", name)
		return hb
	}
	b, _ := io.ReadAll(io.LimitReader(f, maxHeartbeatLine))
	line, _, _ := strings.Cut(string(b), "\n")
	hb.Line = strings.TrimSpace(line)
	return hb
}

// At is when the server says it last succeeded: the RFC 3339 time on the
// first line, else the mtime (a heartbeat written by an older or hand-made
// script).
func (h Heartbeat) At() time.Time {
	if t, err := time.Parse(time.RFC3339, h.Line); err == nil {
		return t
	}
	return h.ModTime
}

// Same reports whether h and o are the same file (one inode, two names).
func (h Heartbeat) Same(o Heartbeat) bool {
	return h.Err == nil && o.Err == nil && h.Dev == o.Dev && h.Ino == o.Ino
}
