package host_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/host/hosttest"
)

func TestRooted(t *testing.T) {
	hosttest.Run(t, func(t *testing.T) (host.Host, string) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "scratch"), 0o755); err != nil {
			t.Fatal(err)
		}
		h := host.NewRooted("rooted", dir)
		t.Cleanup(func() { h.Close() })
		return h, "/scratch"
	})
}

func TestRootedPath(t *testing.T) {
	dir := t.TempDir()
	h := host.NewRooted("img", dir)
	if h.Live() {
		t.Error("a rooted host claims to be live")
	}
	for in, want := range map[string]string{
		"/etc/fstab":        dir + "/etc/fstab",
		"/../../etc/passwd": dir + "/etc/passwd",
		"/":                 dir,
		"/a/./b/../c":       dir + "/a/c",
	} {
		if got := h.Path(in); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
	ctx := context.Background()
	if err := h.WriteFile(ctx, "/../../outside", []byte("x"), 0o644, host.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "outside")); err != nil {
		t.Errorf(".. was not kept inside the root: %v", err)
	}
}

// A symlink inside the tree that points out of it must not be followed by
// any write, by ReadFile, or as a directory on the way.
func TestRootedSymlinkEscape(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("/", filepath.Join(dir, "rootlink")))              // absolute, to /
	must(os.Symlink(outside, filepath.Join(dir, "etc")))               // a directory outside
	must(os.Symlink("../../../../../../..", filepath.Join(dir, "up"))) // relative, climbing out
	must(os.Symlink(secret, filepath.Join(dir, "file")))               // a file outside
	must(os.Symlink(filepath.Join(outside, "nope"), filepath.Join(dir, "dangling")))
	must(os.MkdirAll(filepath.Join(dir, "usr", "bin"), 0o755))
	must(os.Symlink("usr/bin", filepath.Join(dir, "bin"))) // inside: allowed

	h := host.NewRooted("img", dir)
	ctx := context.Background()
	leave := host.Owner{UID: -1, GID: -1}
	_, readErr := h.ReadFile(ctx, "/file")
	refused := []struct {
		what string
		err  error
	}{
		{"write via /rootlink", h.WriteFile(ctx, "/rootlink"+outside+"/secret", []byte("pwned"), 0o644, leave)},
		{"write via /etc", h.WriteFile(ctx, "/etc/secret", []byte("pwned"), 0o644, leave)},
		{"write via /up", h.WriteFile(ctx, "/up"+outside+"/secret", []byte("pwned"), 0o644, leave)},
		{"write to /file", h.WriteFile(ctx, "/file", []byte("pwned"), 0o644, leave)},
		{"read /file", readErr},
		{"mkdir via /etc", h.MkdirAll(ctx, "/etc/new", 0o755, leave)},
		{"mkdir via /dangling", h.MkdirAll(ctx, "/dangling/new", 0o755, leave)},
		{"chmod via /etc", h.Chmod(ctx, "/etc/secret", 0o666)},
		{"chmod /file", h.Chmod(ctx, "/file", 0o666)},
		{"chown /file", h.Chown(ctx, "/file", leave)},
		{"remove via /etc", h.Remove(ctx, "/etc/secret")},
	}
	for _, r := range refused {
		if r.err == nil {
			t.Errorf("%s: not refused", r.what)
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "outside" {
		t.Errorf("outside file now %q", b)
	}
	if fi, _ := os.Stat(secret); fi.Mode().Perm() != 0o600 {
		t.Errorf("outside file mode now %v", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Error("a directory was created outside the root")
	}

	// The link itself is an entry of the tree: Lstat and Remove do not follow it.
	if fi, err := h.Lstat(ctx, "/file"); err != nil || fi.Mode&os.ModeSymlink == 0 {
		t.Errorf("Lstat /file: %+v %v", fi, err)
	}
	if err := h.Remove(ctx, "/file"); err != nil {
		t.Errorf("Remove of the link itself: %v", err)
	}
	// A link that stays inside the tree works.
	if err := h.WriteFile(ctx, "/bin/tool", []byte("ok"), 0o755, leave); err != nil {
		t.Errorf("write via an inside link: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "usr", "bin", "tool")); err != nil || string(b) != "ok" {
		t.Errorf("usr/bin/tool: %q %v", b, err)
	}
}
