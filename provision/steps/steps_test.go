package steps_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
)

func rooted(t *testing.T) (host.Host, string) {
	t.Helper()
	dir := t.TempDir()
	h := host.NewRooted("test", dir)
	t.Cleanup(func() { h.Close() })
	return h, dir
}

func check(t *testing.T, h host.Host, s plan.Step) plan.Check {
	t.Helper()
	c, err := s.Check(context.Background(), h)
	if err != nil {
		t.Fatalf("check %s: %v", s.ID(), err)
	}
	return c
}

// converge applies s and insists the next check is satisfied.
func converge(t *testing.T, h host.Host, s plan.Step) {
	t.Helper()
	if err := s.Apply(context.Background(), h); err != nil {
		t.Fatalf("apply %s: %v", s.ID(), err)
	}
	if c := check(t, h, s); c.Action != plan.OK {
		t.Fatalf("after apply %s: %v %s%s", s.ID(), c.Action, c.Summary, c.Reason)
	}
}

func write(t *testing.T, dir, p, content string, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(dir, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, dir, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFile(t *testing.T) {
	tests := []struct {
		name     string
		existing string // "" = absent
		mode     os.FileMode
		want     plan.Action
		reason   string
	}{
		{"absent", "", 0, plan.Create, ""},
		{"same", "# Managed by borgkit\nx\n", 0o644, plan.OK, ""},
		{"mode drift", "# Managed by borgkit\nx\n", 0o666, plan.Modify, ""},
		{"ours, changed", "# Managed by borgkit\nold\n", 0o644, plan.Modify, ""},
		{"foreign", "user's own\n", 0o644, plan.Conflict, "not written by borgkit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, dir := rooted(t)
			if tt.existing != "" {
				write(t, dir, "/etc/f", tt.existing, tt.mode)
				os.Chmod(filepath.Join(dir, "/etc/f"), tt.mode)
			}
			f := &steps.File{Path: "/etc/f", Content: []byte("# Managed by borgkit\nx\n"), Mode: 0o644, Owner: host.Root, Marker: "Managed by borgkit"}
			c := check(t, h, f)
			if c.Action != tt.want || !strings.Contains(c.Reason, tt.reason) {
				t.Fatalf("got %v %q, want %v %q", c.Action, c.Reason, tt.want, tt.reason)
			}
			if c.Action == plan.Conflict {
				if got := read(t, dir, "/etc/f"); got != tt.existing {
					t.Fatalf("conflicting file changed by check: %q", got)
				}
				return
			}
			if c.Action.Pending() {
				converge(t, h, f)
			}
			if got := read(t, dir, "/etc/f"); got != "# Managed by borgkit\nx\n" {
				t.Fatalf("content %q", got)
			}
		})
	}
}

func TestSecretFileHidesContentAndIsNeverRegenerated(t *testing.T) {
	h, dir := rooted(t)
	s := &steps.Secret{Path: "/etc/borgkit/keys/r.pass", Mode: 0o600, Owner: host.Root, What: "pass", Generate: steps.Passphrase}
	c := check(t, h, s)
	if c.Action != plan.Create || c.Diff != "" {
		t.Fatalf("check: %+v", c)
	}
	// The keys dir does not exist yet: WriteFile must not need it... it
	// does, so create it as the role would.
	os.MkdirAll(filepath.Join(dir, "/etc/borgkit/keys"), 0o700)
	converge(t, h, s)
	first := read(t, dir, "/etc/borgkit/keys/r.pass")
	if len(strings.TrimSpace(first)) < 40 {
		t.Fatalf("passphrase too short: %q", first)
	}
	os.Chmod(filepath.Join(dir, "/etc/borgkit/keys/r.pass"), 0o644)
	if c := check(t, h, s); c.Action != plan.Modify {
		t.Fatalf("mode drift not seen: %+v", c)
	}
	converge(t, h, s)
	if got := read(t, dir, "/etc/borgkit/keys/r.pass"); got != first {
		t.Fatal("secret was regenerated")
	}
	fi, _ := os.Stat(filepath.Join(dir, "/etc/borgkit/keys/r.pass"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestBlock(t *testing.T) {
	const user = "# /etc/fstab: static file system information.\nUUID=1111 / ext4 errors=remount-ro 0 1\n"
	tests := []struct {
		name     string
		existing string
		want     plan.Action
		reason   string
		after    string
	}{
		{"absent", "", plan.Create, "", "# BEGIN borgkit\nA\n# END borgkit\n"},
		{"append keeps user lines", user, plan.Modify, "", user + "# BEGIN borgkit\nA\n# END borgkit\n"},
		{"no final newline", "x", plan.Modify, "", "x\n# BEGIN borgkit\nA\n# END borgkit\n"},
		{"replace inside only", "top\n# BEGIN borgkit\nOLD\n# END borgkit\nbottom\n", plan.Modify, "", "top\n# BEGIN borgkit\nA\n# END borgkit\nbottom\n"},
		{"satisfied", "top\n# BEGIN borgkit\nA\n# END borgkit\n", plan.OK, "", "top\n# BEGIN borgkit\nA\n# END borgkit\n"},
		{"begin without end", "# BEGIN borgkit\nA\n", plan.Conflict, "without", ""},
		{"two blocks", "# BEGIN borgkit\n# END borgkit\n# BEGIN borgkit\n# END borgkit\n", plan.Conflict, "second", ""},
		{"stray end", "# END borgkit\n", plan.Conflict, "without a matching begin", ""},
		{"clash outside", "UUID=2 /mnt/backup ext4 defaults 0 2\n", plan.Conflict, "already mounts /mnt/backup", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, dir := rooted(t)
			if tt.existing != "" {
				write(t, dir, "/etc/fstab", tt.existing, 0o644)
			}
			b := &steps.Block{Path: "/etc/fstab", Lines: []byte("A"), Mode: 0o644, Owner: host.Root,
				Outside: func(lines []string) string {
					for _, l := range lines {
						if f := strings.Fields(l); len(f) > 1 && f[1] == "/mnt/backup" {
							return "already mounts /mnt/backup"
						}
					}
					return ""
				}}
			c := check(t, h, b)
			if c.Action != tt.want || !strings.Contains(c.Reason, tt.reason) {
				t.Fatalf("got %v %q, want %v %q", c.Action, c.Reason, tt.want, tt.reason)
			}
			if c.Action == plan.Conflict {
				if got := read(t, dir, "/etc/fstab"); got != tt.existing {
					t.Fatalf("changed: %q", got)
				}
				return
			}
			if c.Action.Pending() {
				converge(t, h, b)
			}
			if got := read(t, dir, "/etc/fstab"); got != tt.after {
				t.Fatalf("got %q\nwant %q", got, tt.after)
			}
		})
	}
}

// TestBlockDropEmpty: a block with nothing left in it goes, markers and
// all, and no file is created for it.
func TestBlockDropEmpty(t *testing.T) {
	const ak = "/root/.ssh/authorized_keys"
	tests := []struct{ name, existing, want string }{
		{"old line removed", "ssh-ed25519 AAAA admin\n# BEGIN borgkit\nrestrict,command=\"rrsync\" ssh-ed25519 BBBB\n# END borgkit\n", "ssh-ed25519 AAAA admin\n"},
		{"nothing to remove", "ssh-ed25519 AAAA admin\n", "ssh-ed25519 AAAA admin\n"},
		{"no file", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, dir := rooted(t)
			if tt.existing != "" {
				write(t, dir, ak, tt.existing, 0o600)
			}
			b := &steps.Block{Path: ak, Mode: 0o600, Owner: host.Root, DropEmpty: true}
			c := check(t, h, b)
			if c.Action.Pending() != (tt.existing != tt.want) {
				t.Fatalf("check %v %s", c.Action, c.Summary)
			}
			if c.Action.Pending() {
				converge(t, h, b)
			}
			if tt.existing == "" {
				if _, err := os.Stat(filepath.Join(dir, ak)); !os.IsNotExist(err) {
					t.Fatalf("a file was made for an empty block: %v", err)
				}
				return
			}
			if got := read(t, dir, ak); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A block's Vet runs at plan time: the plan shows the refusal provisioning
// would meet, instead of a run that applies earlier steps and then fails.
// It sees the rest of the file at its own line numbers.
func TestBlockVetRefusesAtPlanTime(t *testing.T) {
	h, dir := rooted(t)
	existing := "keep\n# BEGIN borgkit\nold\n# END borgkit\nbroken line\n"
	write(t, dir, "/etc/fstab", existing, 0o644)
	var seen []byte
	b := &steps.Block{Path: "/etc/fstab", Lines: []byte("A"), Mode: 0o644, Owner: host.Root,
		Vet: func(_ context.Context, _ host.Host, others, lines []byte) (string, []string, error) {
			seen = others
			return "findmnt says no", []string{"line 5 is broken"}, nil
		}}
	c := check(t, h, b)
	if c.Action != plan.Conflict || c.Reason != "findmnt says no" || len(c.Warnings) != 1 {
		t.Fatalf("check: %+v", c)
	}
	if string(seen) != "keep\n\n\n\nbroken line\n" {
		t.Fatalf("Vet saw %q", seen)
	}
	if err := b.Apply(context.Background(), h); err == nil || !strings.Contains(err.Error(), "left unchanged") {
		t.Fatalf("apply: %v", err)
	}
	if got := read(t, dir, "/etc/fstab"); got != existing {
		t.Fatalf("file changed: %q", got)
	}
}

func TestSSHKey(t *testing.T) {
	h, dir := rooted(t)
	os.MkdirAll(filepath.Join(dir, "/root/.ssh"), 0o700)
	k := &steps.SSHKey{Path: "/root/.ssh/k", Comment: "borgkit@test"}
	if c := check(t, h, k); c.Action != plan.Create {
		t.Fatalf("%+v", c)
	}
	converge(t, h, k)
	priv := read(t, dir, "/root/.ssh/k")
	pub := read(t, dir, "/root/.ssh/k.pub")
	if !strings.HasPrefix(pub, "ssh-ed25519 ") || !strings.HasSuffix(pub, " borgkit@test\n") {
		t.Fatalf("pub %q", pub)
	}
	// Losing the public half is repaired from the private key, not by a new pair.
	os.Remove(filepath.Join(dir, "/root/.ssh/k.pub"))
	if c := check(t, h, k); c.Action != plan.Modify {
		t.Fatalf("%+v", c)
	}
	converge(t, h, k)
	if read(t, dir, "/root/.ssh/k") != priv || read(t, dir, "/root/.ssh/k.pub") != pub {
		t.Fatal("key pair changed")
	}
	// A public key of another pair is a conflict.
	other := &steps.SSHKey{Path: "/root/.ssh/other"}
	converge(t, h, other)
	write(t, dir, "/root/.ssh/k.pub", read(t, dir, "/root/.ssh/other.pub"), 0o644)
	if c := check(t, h, k); c.Action != plan.Conflict || !strings.Contains(c.Reason, "does not belong") {
		t.Fatalf("%+v", c)
	}
	// A non-ed25519 or garbage private key is a conflict too.
	write(t, dir, "/root/.ssh/k", "garbage", 0o600)
	if c := check(t, h, k); c.Action != plan.Conflict {
		t.Fatalf("%+v", c)
	}
}

func TestPackagesSkipUnderRoot(t *testing.T) {
	h, _ := rooted(t)
	c := check(t, h, &steps.Packages{Names: []string{"borgbackup"}})
	if c.Action != plan.Skip || !strings.Contains(c.Reason, "--root") {
		t.Fatalf("%+v", c)
	}
}

func TestPackagesLive(t *testing.T) {
	if _, err := os.Stat("/usr/bin/dpkg-query"); err != nil {
		t.Skip("needs dpkg-query: this test reads the real package database")
	}
	h := host.NewLocal("local")
	c := check(t, h, &steps.Packages{Names: []string{"dpkg", "borgkit-no-such-package"}})
	if c.Action != plan.Create || c.Summary != "apt-get install borgkit-no-such-package" {
		t.Fatalf("%+v", c)
	}
	if c := check(t, h, &steps.Packages{Names: []string{"dpkg"}}); c.Action != plan.OK {
		t.Fatalf("%+v", c)
	}
}

// TestSecretPlaceholder: a secret only the user can supply warns while it
// holds the placeholder borgkit wrote, from the plan that creates it on,
// and stops warning once the user replaced it.
func TestSecretPlaceholder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h := host.NewRooted("t", dir)
	s := &steps.Secret{Path: "/etc/borgkit/smtp.pass", Mode: 0o600, Owner: host.Root, What: "placeholder",
		Generate: func() ([]byte, error) { return []byte("CHANGE-ME\n"), nil }, Placeholder: []byte("CHANGE-ME\n"), Warn: "put the password in"}
	c, err := s.Check(ctx, h)
	if err != nil || c.Action != plan.Create || strings.Join(c.Warnings, "|") != "put the password in" {
		t.Fatalf("absent: %+v %v", c, err)
	}
	if err := s.Apply(ctx, h); err != nil {
		t.Fatal(err)
	}
	c, err = s.Check(ctx, h)
	if err != nil || c.Action != plan.OK || strings.Join(c.Warnings, "|") != "put the password in" {
		t.Fatalf("placeholder in place: %+v %v", c, err)
	}
	for _, real := range []string{"hunter2!!\n", "CHANGE-Me\n"} {
		if err := os.WriteFile(filepath.Join(dir, s.Path), []byte(real), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err = s.Check(ctx, h)
		if err != nil || c.Action != plan.OK || len(c.Warnings) != 0 {
			t.Fatalf("replaced with %q: %+v %v", real, c, err)
		}
	}
}
