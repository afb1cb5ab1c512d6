package recipe

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/fstab"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
)

// PushTakenMarker starts the comment borgkit leaves above a hand-built
// push line it took out of root's authorized_keys: the words fstab's
// take-over uses, so one search finds every line borgkit took over.
const PushTakenMarker = fstab.TakenMarker

// takeOverRootPush comments out, in root's authorized_keys, every line
// outside borgkit's block that lets a key run rrsync on the backup disk
// mounted at mount: a hand-built setup pushed as root, and root's rrsync
// reaches the snapshots and every frozen file the push user cannot touch.
// The server now pushes as the push user; the old line stays in the file
// under a marker saying how to undo it.
func takeOverRootPush(mount string) func(ctx context.Context, h host.Host, others []byte) (map[int]string, string, error) {
	return func(_ context.Context, _ host.Host, others []byte) (map[int]string, string, error) {
		repl := map[int]string{}
		for i, line := range strings.Split(string(others), "\n") {
			if dir := rrsyncDir(line); dir != "" && (layout.Under(dir, mount) || layout.Under(mount, dir)) {
				repl[i+1] = fmt.Sprintf("%s (a root login running rrsync on %s reaches the snapshots; the server now pushes as %s); to undo, uncomment it\n#%s", PushTakenMarker, mount, layout.PushUser, line)
			}
		}
		return repl, "", nil
	}
}

// rrsyncDir is the directory an authorized_keys line's forced command runs
// rrsync on, "" when the line forces no rrsync (or is not a key line).
func rrsyncDir(line string) string {
	t := strings.TrimSpace(line)
	if t == "" || strings.HasPrefix(t, "#") {
		return ""
	}
	_, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(t))
	if err != nil {
		return ""
	}
	for _, o := range opts {
		v, ok := strings.CutPrefix(o, "command=")
		if !ok {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		f := strings.Fields(v)
		if len(f) == 0 || path.Base(f[0]) != "rrsync" {
			return ""
		}
		// rrsync's options come before its directory: the last word.
		if dir := f[len(f)-1]; path.IsAbs(dir) {
			return path.Clean(dir)
		}
		return ""
	}
	return ""
}
