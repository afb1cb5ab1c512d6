// Package sysuser gives tests a real unprivileged system user, such as the
// offsite host's push user, created with useradd and removed with userdel
// when the test ends. Each has a fresh name, so tests and packages running
// at once never share one.
package sysuser

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// User is a system user made for one test.
type User struct {
	Name     string
	UID, GID int
	Home     string // a root-owned directory of the test's
}

// Unavailable says why no user can be made here, or "".
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "making a system user needs root"
	}
	for _, p := range []string{"useradd", "userdel"} {
		if _, err := exec.LookPath(p); err != nil {
			return p + " is missing (package passwd)"
		}
	}
	return ""
}

// New makes a system user with its own group and /bin/sh as its shell (sshd
// runs a forced command through it), whose password is "*": no password
// logs in, yet sshd without PAM does not take the account for locked, as
// it does useradd's default "!". It skips the test where that is not
// possible; BORGKIT_REQUIRE_ROOT makes that a failure.
func New(t testing.TB, prefix string) *User {
	t.Helper()
	if why := Unavailable(); why != "" {
		if os.Getenv("BORGKIT_REQUIRE_ROOT") != "" {
			t.Fatalf("system user required: %s", why)
		}
		t.Skip(why)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := prefix + "-" + hex.EncodeToString(b[:])
	home := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", home,
		"--shell", "/bin/sh", "--password", "*", name).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &User{Name: name, UID: uid, GID: gid, Home: home}
}
