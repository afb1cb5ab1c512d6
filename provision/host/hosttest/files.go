package hosttest

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
)

var leave = host.Owner{UID: -1, GID: -1}

func testWriteFileModes(t *testing.T, h host.Host, root string) {
	owner := otherOwner(t, h)
	for _, mode := range []fs.FileMode{0o600, 0o644, 0o400, 0o750} {
		p := path.Join(root, "file-"+mode.String())
		data := "secret " + mode.String()
		if err := h.WriteFile(ctx(t), p, []byte(data), mode, owner); err != nil {
			t.Fatal(err)
		}
		fi := lstat(t, h, p)
		if fi.Mode != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode, mode)
		}
		if fi.UID != owner.UID || fi.GID != owner.GID {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, fi.UID, fi.GID, owner.UID, owner.GID)
		}
		if got := read(t, h, p); got != data {
			t.Errorf("%s: read %q", p, got)
		}
	}
	// -1 leaves an id as the creating user's.
	uid, _ := ids(t, h)
	p := path.Join(root, "gid-only")
	if err := h.WriteFile(ctx(t), p, nil, 0o640, host.Owner{UID: -1, GID: owner.GID}); err != nil {
		t.Fatal(err)
	}
	if fi := lstat(t, h, p); fi.UID != uid || fi.GID != owner.GID || fi.Size != 0 {
		t.Errorf("owner %d:%d size %d, want %d:%d size 0", fi.UID, fi.GID, fi.Size, uid, owner.GID)
	}
}

func testWriteFileOverwrite(t *testing.T, h host.Host, root string) {
	p := path.Join(root, "conf")
	old := p + host.OldSuffix
	write(t, h, p, "v1", 0o640)
	if _, err := h.Lstat(ctx(t), old); !host.IsNotExist(err) {
		t.Errorf("first write left %s (err %v)", old, err)
	}
	write(t, h, p, "v2", 0o600)
	if got := read(t, h, p); got != "v2" {
		t.Errorf("after overwrite %q", got)
	}
	if got := read(t, h, old); got != "v1" {
		t.Errorf("old copy %q, want v1", got)
	}
	if m := lstat(t, h, old).Mode; m != 0o640 {
		t.Errorf("old copy mode %v, want the old 0640", m)
	}
	if m := lstat(t, h, p).Mode; m != 0o600 {
		t.Errorf("new mode %v, want 0600", m)
	}
	write(t, h, p, "v3", 0o600)
	if got := read(t, h, old); got != "v2" {
		t.Errorf("old copy after third write %q, want v2", got)
	}
}

func testWriteFileNoTempLeft(t *testing.T, h host.Host, root string) {
	dir := path.Join(root, "d")
	if err := h.MkdirAll(ctx(t), dir, 0o755, leave); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{"a", "bb", "ccc"} {
		write(t, h, path.Join(dir, "f"), data, 0o644)
	}
	if got, want := ls(t, h, dir), []string{"f", "f" + host.OldSuffix}; !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}
}

func testWriteFileSymlinkRefused(t *testing.T, h host.Host, root string) {
	target := path.Join(root, "target")
	link := path.Join(root, "link")
	write(t, h, target, "original", 0o600)
	run(t, h, "ln", "-s", "target", h.Path(link))
	err := h.WriteFile(ctx(t), link, []byte("planted"), 0o644, leave)
	if err == nil {
		t.Fatal("WriteFile through a symlink succeeded")
	}
	if got := read(t, h, target); got != "original" {
		t.Errorf("symlink target now holds %q", got)
	}
	if fi := lstat(t, h, link); fi.Mode&fs.ModeSymlink == 0 {
		t.Errorf("link replaced by %v", fi.Mode)
	}
	if got := ls(t, h, root); !slices.Equal(got, []string{"link", "target"}) {
		t.Errorf("directory holds %q after the refusal", got)
	}
}

func testWriteFileNotADirectory(t *testing.T, h host.Host, root string) {
	if err := h.MkdirAll(ctx(t), path.Join(root, "dir"), 0o755, leave); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile(ctx(t), path.Join(root, "dir"), []byte("x"), 0o644, leave); err == nil {
		t.Error("WriteFile replaced a directory")
	}
	if err := h.WriteFile(ctx(t), path.Join(root, "missing", "f"), []byte("x"), 0o644, leave); !host.IsNotExist(err) {
		t.Errorf("WriteFile into a missing directory: %v, want not-exist", err)
	}
}

func testRelativePathRefused(t *testing.T, h host.Host, _ string) {
	if err := h.WriteFile(ctx(t), "relative-file", []byte("x"), 0o644, leave); err == nil {
		t.Error("WriteFile accepted a relative path")
	}
	if _, err := h.Lstat(ctx(t), "relative-file"); err == nil {
		t.Error("Lstat accepted a relative path")
	}
}

func testReadFileMissing(t *testing.T, h host.Host, root string) {
	p := path.Join(root, "missing")
	if _, err := h.ReadFile(ctx(t), p); !host.IsNotExist(err) {
		t.Errorf("ReadFile: %v, want not-exist", err)
	}
	if _, err := h.Lstat(ctx(t), p); !host.IsNotExist(err) {
		t.Errorf("Lstat: %v, want not-exist", err)
	}
}

func testLstat(t *testing.T, h host.Host, root string) {
	uid, gid := ids(t, h)
	p := path.Join(root, "five")
	before := time.Now().Add(-2 * time.Second)
	write(t, h, p, "12345", 0o640)
	fi := lstat(t, h, p)
	if fi.Name != "five" || fi.Size != 5 || fi.Mode != 0o640 || fi.IsDir() {
		t.Errorf("Lstat = %+v", fi)
	}
	if fi.UID != uid || fi.GID != gid {
		t.Errorf("owner %d:%d, want %d:%d", fi.UID, fi.GID, uid, gid)
	}
	if fi.ModTime.Before(before) || fi.ModTime.After(time.Now().Add(2*time.Second)) {
		t.Errorf("mtime %v, want about now", fi.ModTime)
	}
	if fi := lstat(t, h, root); !fi.IsDir() {
		t.Errorf("root mode %v", fi.Mode)
	}
	run(t, h, "ln", "-s", "five", h.Path(path.Join(root, "sym")))
	if fi := lstat(t, h, path.Join(root, "sym")); fi.Mode&fs.ModeSymlink == 0 {
		t.Errorf("Lstat of a symlink: mode %v", fi.Mode)
	}
}

func testReadDir(t *testing.T, h host.Host, root string) {
	dir := path.Join(root, "dir")
	run(t, h, "mkdir", h.Path(dir))
	write(t, h, path.Join(dir, "b"), "12", 0o600)
	write(t, h, path.Join(dir, "a"), "1", 0o644)
	run(t, h, "ln", "-s", "/nowhere", h.Path(path.Join(dir, "c")))
	if err := h.MkdirAll(ctx(t), path.Join(dir, "d"), 0o755, leave); err != nil {
		t.Fatal(err)
	}
	got, err := h.ReadDir(ctx(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range got {
		names = append(names, fi.Name)
	}
	if strings.Join(names, " ") != "a b c d" || got[1].Size != 2 || got[1].Mode != 0o600 || got[2].Mode&fs.ModeSymlink == 0 || !got[3].IsDir() {
		t.Errorf("ReadDir = %+v", got)
	}
	if _, err := h.ReadDir(ctx(t), path.Join(root, "missing")); !host.IsNotExist(err) {
		t.Errorf("ReadDir of a missing directory: %v", err)
	}
}

func testMkdirAll(t *testing.T, h host.Host, root string) {
	owner := otherOwner(t, h)
	deep := path.Join(root, "a", "b", "c")
	rootMode := lstat(t, h, root).Mode
	if err := h.MkdirAll(ctx(t), deep, 0o750, owner); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{path.Join(root, "a"), path.Join(root, "a", "b"), deep} {
		fi := lstat(t, h, d)
		if fi.Mode != fs.ModeDir|0o750 || fi.UID != owner.UID || fi.GID != owner.GID {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", d, fi.Mode, fi.UID, fi.GID, fs.ModeDir|0o750, owner.UID, owner.GID)
		}
	}
	if m := lstat(t, h, root).Mode; m != rootMode {
		t.Errorf("existing root changed mode %v -> %v", rootMode, m)
	}
	// Existing directories keep their mode.
	if err := h.Chmod(ctx(t), path.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := h.MkdirAll(ctx(t), path.Join(deep, "d"), 0o700, leave); err != nil {
		t.Fatal(err)
	}
	if m := lstat(t, h, path.Join(root, "a")).Mode; m != fs.ModeDir|0o755 {
		t.Errorf("existing a: mode %v", m)
	}
	if m := lstat(t, h, path.Join(deep, "d")).Mode; m != fs.ModeDir|0o700 {
		t.Errorf("new d: mode %v", m)
	}
	if err := h.MkdirAll(ctx(t), deep, 0o700, leave); err != nil {
		t.Errorf("MkdirAll of an existing directory: %v", err)
	}
	write(t, h, path.Join(root, "file"), "x", 0o644)
	if err := h.MkdirAll(ctx(t), path.Join(root, "file", "sub"), 0o755, leave); err == nil {
		t.Error("MkdirAll below a file succeeded")
	}
}

func testChmod(t *testing.T, h host.Host, root string) {
	p := path.Join(root, "f")
	write(t, h, p, "x", 0o600)
	if err := h.Chmod(ctx(t), p, 0o604); err != nil {
		t.Fatal(err)
	}
	if m := lstat(t, h, p).Mode; m != 0o604 {
		t.Errorf("mode %v, want 0604", m)
	}
	if err := h.Chmod(ctx(t), path.Join(root, "missing"), 0o600); !host.IsNotExist(err) {
		t.Errorf("Chmod of a missing file: %v", err)
	}
}

func testChown(t *testing.T, h host.Host, root string) {
	uid, gid := ids(t, h)
	owner := otherOwner(t, h)
	p := path.Join(root, "f")
	write(t, h, p, "x", 0o600)
	if err := h.Chown(ctx(t), p, host.Owner{UID: -1, GID: owner.GID}); err != nil {
		t.Fatal(err)
	}
	if fi := lstat(t, h, p); fi.UID != uid || fi.GID != owner.GID {
		t.Errorf("after gid-only chown %d:%d, want %d:%d", fi.UID, fi.GID, uid, owner.GID)
	}
	if err := h.Chown(ctx(t), p, owner); err != nil {
		t.Fatal(err)
	}
	if fi := lstat(t, h, p); fi.UID != owner.UID || fi.GID != owner.GID {
		t.Errorf("after chown %d:%d, want %d:%d", fi.UID, fi.GID, owner.UID, owner.GID)
	}
	if err := h.Chown(ctx(t), p, host.Owner{UID: uid, GID: gid}); err != nil {
		t.Fatal(err)
	}
	if err := h.Chown(ctx(t), path.Join(root, "missing"), owner); !host.IsNotExist(err) {
		t.Errorf("Chown of a missing file: %v", err)
	}
}

// chmod(2) and SFTP SETSTAT follow symlinks: the host must refuse instead of
// changing the link's target.
func testChmodSymlinkRefused(t *testing.T, h host.Host, root string) {
	target := path.Join(root, "target")
	link := path.Join(root, "link")
	write(t, h, target, "x", 0o600)
	run(t, h, "ln", "-s", "target", h.Path(link))
	if err := h.Chmod(ctx(t), link, 0o666); err == nil {
		t.Error("Chmod through a symlink succeeded")
	}
	if err := h.Chown(ctx(t), link, otherOwner(t, h)); err == nil {
		t.Error("Chown through a symlink succeeded")
	}
	if m := lstat(t, h, target).Mode; m != 0o600 {
		t.Errorf("target mode changed to %v", m)
	}
}

func testRemove(t *testing.T, h host.Host, root string) {
	p := path.Join(root, "f")
	write(t, h, p, "x", 0o600)
	if err := h.Remove(ctx(t), p); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Lstat(ctx(t), p); !host.IsNotExist(err) {
		t.Errorf("after Remove: %v", err)
	}
	if err := h.Remove(ctx(t), p); !host.IsNotExist(err) {
		t.Errorf("Remove of a missing file: %v, want not-exist", err)
	}
	dir := path.Join(root, "dir")
	if err := h.MkdirAll(ctx(t), path.Join(dir, "sub"), 0o755, leave); err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(ctx(t), dir); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove of a non-empty directory: %v, want a failure", err)
	}
	if err := h.Remove(ctx(t), path.Join(dir, "sub")); err != nil {
		t.Errorf("Remove of an empty directory: %v", err)
	}
}

func testDigest(t *testing.T, h host.Host, root string) {
	// sha256sum's own output for "abc".
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	for _, name := range []string{"abc", `back\slash`, "new\nline", "-dash"} {
		p := path.Join(root, name)
		write(t, h, p, "abc", 0o600)
		if got, err := h.Digest(ctx(t), p); err != nil || got != abc {
			t.Errorf("Digest(%q) = %q, %v; want %s", name, got, err, abc)
		}
	}
	if _, err := h.Digest(ctx(t), path.Join(root, "missing")); !host.IsNotExist(err) {
		t.Errorf("Digest of a missing file: %v, want not-exist", err)
	}
	if _, err := h.Digest(ctx(t), root); err == nil {
		t.Error("Digest of a directory gave no error")
	}
	if _, err := h.Digest(ctx(t), "relative"); err == nil {
		t.Error("Digest of a relative path gave no error")
	}
}
