package steps_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/testing/loopdev"
)

// mountedSource is what the kernel's mount table has on target, "" if
// nothing.
func mountedSource(t *testing.T, target string) string {
	t.Helper()
	out, err := exec.Command("findmnt", "-n", "-o", "UUID", "--mountpoint", target).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// A fresh server: the fstab line is written, the attached disk is mounted
// in the same run and the repo is made on it, not on the root filesystem
// under the empty mountpoint.
func TestMountThenInit(t *testing.T) {
	type disk struct {
		attached bool
		prepare  func(t *testing.T, mnt string) // run with the disk mounted
	}
	cases := []struct {
		name           string
		disk           disk
		wantMount      plan.Action
		wantRepo       plan.Action
		wantErr        error
		wantRepoOnDisk bool
	}{
		{"blank disk", disk{attached: true}, plan.Create, plan.Create, nil, true},
		{"disk already holds the repo", disk{attached: true, prepare: func(t *testing.T, mnt string) {
			borgInit(t, filepath.Join(mnt, "borg/john-ai"))
		}}, plan.Create, plan.Create, nil, true},
		{"disk holds foreign files where the repo goes", disk{attached: true, prepare: func(t *testing.T, mnt string) {
			if err := os.MkdirAll(filepath.Join(mnt, "borg/john-ai"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mnt, "borg/john-ai/photo.jpg"), []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
		}}, plan.Create, plan.Create, plan.ErrApply, false},
		{"disk not attached", disk{}, plan.Skip, plan.Conflict, plan.ErrConflict, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mnt := filepath.Join(dir, "mnt", "backup")
			if err := os.MkdirAll(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			id := uuid.NewString()
			if tc.disk.attached {
				d := loopdev.New(t, 64<<20)
				d.Run(t, "mkfs.ext4", "-q", "-U", id, d.Path)
				if tc.disk.prepare != nil {
					d.Run(t, "mount", d.Path, mnt)
					tc.disk.prepare(t, mnt)
					d.Run(t, "umount", mnt)
				}
			}
			t.Cleanup(func() {
				if mountedSource(t, mnt) != "" {
					if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
						t.Errorf("umount %s: %v %s", mnt, err, out)
					}
				}
			})
			fstab := filepath.Join(dir, "fstab")
			if err := os.WriteFile(fstab, []byte("UUID="+id+" "+mnt+" ext4 nofail 0 2\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			m := &steps.Mount{Target: mnt, UUID: id, Fstab: fstab}
			repo := &steps.BorgRepo{Name: "john-ai", Path: filepath.Join(mnt, "borg/john-ai"), Encryption: "none",
				Mountpoint: mnt, Disk: m}
			t.Setenv("BORG_BASE_DIR", t.TempDir())
			r, err := plan.Run(context.Background(), host.NewLocal("john-ai"), []plan.Step{m, repo}, plan.Options{})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("run: %v, want %v", err, tc.wantErr)
			}
			if got := r.Steps[0].Check.Action; got != tc.wantMount {
				t.Errorf("mount planned %v, want %v (%s)", got, tc.wantMount, r.Steps[0].Check.Reason)
			}
			if got := r.Steps[1].Check.Action; got != tc.wantRepo {
				t.Errorf("repo planned %v, want %v (%s)", got, tc.wantRepo, r.Steps[1].Check.Reason)
			}
			onDisk := mountedSource(t, mnt) == id
			if tc.disk.attached != onDisk {
				t.Errorf("mounted %v, want %v", onDisk, tc.disk.attached)
			}
			_, err = os.Stat(filepath.Join(mnt, "borg/john-ai/config"))
			if got := err == nil && onDisk; got != tc.wantRepoOnDisk {
				t.Errorf("repo on the disk: %v, want %v", got, tc.wantRepoOnDisk)
			}
			if !onDisk {
				// Nothing may have been written under the empty mountpoint.
				if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
					t.Errorf("the root filesystem under %s got %d entries", mnt, len(ents))
				}
			} else if !tc.wantRepoOnDisk {
				if b, err := os.ReadFile(filepath.Join(mnt, "borg/john-ai/photo.jpg")); err != nil || string(b) != "precious" {
					t.Errorf("foreign file changed: %q %v", b, err)
				}
			}
		})
	}
}

// A different filesystem on the mountpoint is a conflict, never a remount.
func TestMountWrongDisk(t *testing.T) {
	dir := t.TempDir()
	d := loopdev.New(t, 64<<20)
	d.Run(t, "mkfs.ext4", "-q", d.Path)
	d.Run(t, "mount", d.Path, dir)
	t.Cleanup(func() { d.Run(t, "umount", dir) })
	m := &steps.Mount{Target: dir, UUID: uuid.NewString()}
	c, err := m.Check(context.Background(), host.NewLocal("john-ai"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Action != plan.Conflict || !strings.Contains(c.Reason, "not the configured UUID="+m.UUID) {
		t.Errorf("check = %v %q, want a conflict naming the configured UUID", c.Action, c.Reason)
	}
}

func borgInit(t *testing.T, repo string) {
	t.Helper()
	c := exec.Command("borg", "init", "--encryption=none", "--make-parent-dirs", repo)
	c.Env = append(os.Environ(), "BORG_BASE_DIR="+t.TempDir())
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("borg init: %v\n%s", err, out)
	}
}
