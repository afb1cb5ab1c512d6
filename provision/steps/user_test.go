package steps_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/testing/loopdev"
)

// TestPushUserOwnsTheMirrorsDirectories is the offsite push user as the
// offsite role provisions it, on a real disk: the user is made unlocked
// for key login, the mirror root becomes its, and the directories an
// earlier root push left below it too, while the files stay root's.
func TestPushUserOwnsTheMirrorsDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("makes a system user and mounts a disk: needs root")
	}
	var b [4]byte
	rand.Read(b[:])
	name := "bkstep-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	dev := loopdev.New(t, 16<<20)
	dev.Run(t, "mkfs.ext4", "-q", "-F", dev.Path)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev.Path, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	root := filepath.Join(mnt, "borgkit")
	// What a root push left: directories and files, all root's.
	for _, d := range []string{"system/data/0", ".heartbeat"} {
		os.MkdirAll(filepath.Join(root, d), 0o700)
	}
	os.WriteFile(filepath.Join(root, "system/data/0/1"), []byte("segment"), 0o600)

	h := host.NewLocal("pi")
	home := filepath.Join(t.TempDir(), "home")
	u := &steps.SystemUser{Name: name, Home: home, Shell: "/bin/sh", Comment: "borgkit push"}
	dir := &steps.MountedDir{Mountpoint: mnt, Dir: steps.Dir{Path: root, Mode: 0o700, User: name}}
	owned := &steps.OwnedDirs{Root: root, User: name, Mountpoint: mnt}
	for _, s := range []plan.Step{u, dir, owned} {
		if c := check(t, h, s); !c.Action.Pending() {
			t.Fatalf("%s before: %v %s", s.ID(), c.Action, c.Summary)
		}
	}
	for _, s := range []plan.Step{u, dir, owned} {
		converge(t, h, s)
	}
	pw, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pw.Uid)
	if uid == 0 || uid >= 1000 {
		t.Errorf("uid %d is not a system user's", uid)
	}
	shadow, _ := os.ReadFile("/etc/shadow")
	if !strings.Contains(string(shadow), "\n"+name+":*:") {
		t.Errorf("password of %s is not *", name)
	}
	for _, d := range []string{"", "system", "system/data", "system/data/0", ".heartbeat"} {
		if st := lstat(t, filepath.Join(root, d)); int(st.Uid) != uid {
			t.Errorf("%s/%s is uid %d", root, d, st.Uid)
		}
	}
	if st := lstat(t, filepath.Join(root, "system/data/0/1")); st.Uid != 0 {
		t.Errorf("a file was given away: uid %d", st.Uid)
	}
	// A locked account (useradd's default) is unlocked again.
	exec.Command("usermod", "--lock", name).Run()
	if c := check(t, h, u); c.Action != plan.Modify || !strings.Contains(c.Summary, "locked") {
		t.Fatalf("locked user: %v %s", c.Action, c.Summary)
	}
	converge(t, h, u)

	// Under --root there are no users to make: skipped, nothing written.
	rh, rdir := rooted(t)
	for _, s := range []plan.Step{u, &steps.Dir{Path: "/mnt/backup/borgkit", Mode: 0o700, User: name}, owned} {
		if c := check(t, rh, s); c.Action != plan.Skip {
			t.Errorf("%s under --root: %v %s", s.ID(), c.Action, c.Summary)
		}
	}
	if ents, _ := os.ReadDir(rdir); len(ents) != 0 {
		t.Errorf("--root tree: %v", ents)
	}
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}
