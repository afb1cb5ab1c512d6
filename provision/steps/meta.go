package steps

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
)

// ownerMatters says whether ownership can be set here: a rooted tree built
// by a normal user cannot chown, and the rooted host skips it, so comparing
// owners there would report a change forever.
func ownerMatters(h host.Host) bool { return h.Live() || os.Geteuid() == 0 }

// metaDrift describes how an entry's mode and owner differ from the wanted
// ones; "" when they match.
func metaDrift(h host.Host, fi host.FileInfo, mode fs.FileMode, owner host.Owner) string {
	var d []string
	if fi.Mode.Perm() != mode.Perm() {
		d = append(d, fmt.Sprintf("mode %04o -> %04o", fi.Mode.Perm(), mode.Perm()))
	}
	if ownerMatters(h) && ((owner.UID >= 0 && fi.UID != owner.UID) || (owner.GID >= 0 && fi.GID != owner.GID)) {
		d = append(d, fmt.Sprintf("owner %d:%d -> %d:%d", fi.UID, fi.GID, owner.UID, owner.GID))
	}
	return strings.Join(d, ", ")
}

// fixMeta sets mode and owner of an existing entry.
func fixMeta(ctx context.Context, h host.Host, path string, mode fs.FileMode, owner host.Owner) error {
	if err := h.Chmod(ctx, path, mode); err != nil {
		return err
	}
	if ownerMatters(h) {
		return h.Chown(ctx, path, owner)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsRegular():
		return "a file"
	default:
		return "a special file"
	}
}

// writeFile writes through h, creating missing parent directories 0755:
// under --root the tree starts empty, and on a live host /usr/local/bin or
// /etc/cron.d may be missing on a minimal system. Directories that must be
// private are steps of their own, placed before the files in them.
//
// The write is tried first: its parent nearly always exists, and over a
// slow link asking first would cost a round trip a file.
func writeFile(ctx context.Context, h host.Host, p string, data []byte, mode fs.FileMode, owner host.Owner) error {
	err := h.WriteFile(ctx, p, data, mode, owner)
	if !host.IsNotExist(err) {
		return err
	}
	if err := h.MkdirAll(ctx, path.Dir(p), 0o755, host.Root); err != nil {
		return err
	}
	return h.WriteFile(ctx, p, data, mode, owner)
}
