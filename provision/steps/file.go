package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// File is a whole file borgkit owns.
type File struct {
	Path    string
	Content []byte
	Mode    fs.FileMode
	Owner   host.Owner
	// Secret hides the content from diffs and reports.
	Secret bool
	// Marker, when set, must start the first line of an existing file that
	// differs (after its comment sign), or the file is someone else's and
	// the step conflicts instead of overwriting it.
	Marker string
	// Foreign, when set, replaces Marker for files that cannot carry one
	// (a program, a one-line file): it says why an existing file that
	// differs is not borgkit's to replace, or "" when it is.
	Foreign func(old []byte) string

	// Sum is the SHA-256 of Content (lowercase hex), computed when first
	// needed if empty: a caller that already has it (the borgkit build)
	// saves hashing 15 MB again.
	Sum string
}

// digestAbove is the size from which an unchanged file is recognised by
// size and SHA-256, computed on the host, rather than by reading it back:
// the borgkit binary is 11 MB, and a plan of the Pi over its uplink would
// otherwise fetch it twice per run. Smaller files are read: one SFTP read
// costs less than starting sha256sum, and a change needs their diff anyway.
const digestAbove = host.DigestAbove

// holds reports whether the host's file, of the given size, holds Content.
// old is its content when it had to be read: a small file, or a large one
// that differs (its diff and its marker need it).
func (f *File) holds(ctx context.Context, h host.Host, size int64) (same bool, old []byte, err error) {
	if len(f.Content) >= digestAbove && size == int64(len(f.Content)) {
		if f.Sum == "" {
			s := sha256.Sum256(f.Content)
			f.Sum = hex.EncodeToString(s[:])
		}
		// A host that cannot digest (no sha256sum) is read instead.
		if got, err := h.Digest(ctx, f.Path); err == nil && got == f.Sum {
			return true, nil, nil
		}
	}
	if old, err = h.ReadFile(ctx, f.Path); err != nil {
		return false, nil, err
	}
	return bytes.Equal(old, f.Content), old, nil
}

func (f *File) ID() string { return "file." + f.Path }

func (f *File) Reads() []host.Want { return []host.Want{{Path: f.Path, Content: true}} }

// Place lets the engine write a small file beside other steps (see
// plan.Beside); a large one goes alone: its bytes fill the link, and the
// others' exchanges would only queue behind them.
func (f *File) Place() string {
	if len(f.Content) >= digestAbove {
		return ""
	}
	return f.Path
}

func (f *File) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	fi, err := h.Lstat(ctx, f.Path)
	if host.IsNotExist(err) {
		c := plan.Creates(fmt.Sprintf("write %d bytes, mode %04o", len(f.Content), f.Mode.Perm()))
		return c.WithDiff(f.diff(nil)), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	if !fi.Mode.IsRegular() {
		return plan.Conflicts(fmt.Sprintf("%s is %s, not a file", f.Path, kind(fi.Mode))), nil
	}
	drift := metaDrift(h, fi, f.Mode, f.Owner)
	same, old, err := f.holds(ctx, h, fi.Size)
	if err != nil {
		return plan.Check{}, err
	}
	if same {
		if drift == "" {
			return plan.Satisfied(), nil
		}
		return plan.Modifies(drift), nil
	}
	if why := f.foreign(old); why != "" {
		return plan.Conflicts(fmt.Sprintf("%s exists and %s; move it aside for borgkit to manage it", f.Path, why)), nil
	}
	summary := fmt.Sprintf("rewrite %d -> %d bytes", len(old), len(f.Content))
	if drift != "" {
		summary += ", " + drift
	}
	return plan.Modifies(summary).WithDiff(f.diff(old)), nil
}

// foreign says why an existing file that differs is not borgkit's.
func (f *File) foreign(old []byte) string {
	switch {
	case f.Foreign != nil:
		return f.Foreign(old)
	case f.Marker != "":
		return ForeignUnlessMarked(f.Marker)(old)
	}
	return ""
}

func (f *File) diff(old []byte) string {
	if f.Secret {
		return ""
	}
	return plan.UnifiedDiff(f.Path, old, f.Content)
}

func (f *File) Apply(ctx context.Context, h host.Host) error {
	if fi, err := h.Lstat(ctx, f.Path); err == nil && fi.Mode.IsRegular() {
		same, old, err := f.holds(ctx, h, fi.Size)
		if err == nil && same {
			return fixMeta(ctx, h, f.Path, f.Mode, f.Owner)
		}
		// It may have been replaced since the plan was checked.
		if why := f.foreign(old); err == nil && old != nil && why != "" {
			return fmt.Errorf("%s %s; left as it is", f.Path, why)
		}
	}
	return writeFile(ctx, h, f.Path, f.Content, f.Mode, f.Owner)
}

// Dir is a directory with a fixed mode and owner.
type Dir struct {
	Path  string
	Mode  fs.FileMode
	Owner host.Owner
	// User, when set, owns the directory instead of Owner: that user and
	// its group, looked up on the host when checked and applied (a system
	// user an earlier step of the same run makes).
	User string
	// CreateOnly leaves an existing directory's mode and owner alone: a
	// mountpoint shows the mounted filesystem's root, which is not ours.
	CreateOnly bool
}

func (d *Dir) ID() string { return "dir." + d.Path }

// Place lets the engine make the directory beside other steps (see
// plan.Beside).
func (d *Dir) Place() string { return d.Path }

// Reads are the directory and, when it is owned by a user, the passwd
// file that says who that is.
func (d *Dir) Reads() []host.Want {
	if d.User == "" {
		return []host.Want{{Path: d.Path}}
	}
	return []host.Want{{Path: d.Path}, {Path: passwdFile, Content: true}}
}

// owner is who owns the directory; known is false while User does not
// exist yet.
func (d *Dir) owner(ctx context.Context, h host.Host) (o host.Owner, known bool, err error) {
	if d.User == "" {
		return d.Owner, true, nil
	}
	return userOwner(ctx, h, d.User)
}

func (d *Dir) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	owner, known, err := d.owner(ctx, h)
	if err != nil {
		return plan.Check{}, err
	}
	if !known && !h.Live() {
		return plan.Skipped(fmt.Sprintf("owned by %s, and --root makes no users", d.User)), nil
	}
	fi, err := h.Lstat(ctx, d.Path)
	if host.IsNotExist(err) {
		return plan.Creates(fmt.Sprintf("mkdir, mode %04o%s", d.Mode.Perm(), d.byUser())), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	if !fi.IsDir() {
		return plan.Conflicts(fmt.Sprintf("%s is %s, not a directory", d.Path, kind(fi.Mode))), nil
	}
	if d.CreateOnly {
		return plan.Satisfied(), nil
	}
	if !known {
		return plan.Modifies("owner " + d.User + " (made above)"), nil
	}
	if drift := metaDrift(h, fi, d.Mode, owner); drift != "" {
		return plan.Modifies(drift + d.byUser()), nil
	}
	return plan.Satisfied(), nil
}

func (d *Dir) byUser() string {
	if d.User == "" {
		return ""
	}
	return ", owner " + d.User
}

func (d *Dir) Apply(ctx context.Context, h host.Host) error {
	owner, known, err := d.owner(ctx, h)
	if err != nil {
		return err
	}
	if !known {
		return fmt.Errorf("%s: owner %s does not exist", d.Path, d.User)
	}
	// A directory MkdirAll makes gets mode and owner with it: only one
	// that was there already needs them fixed.
	_, err = h.Lstat(ctx, d.Path)
	if host.IsNotExist(err) || d.CreateOnly {
		return h.MkdirAll(ctx, d.Path, d.Mode, owner)
	}
	return fixMeta(ctx, h, d.Path, d.Mode, owner)
}

// MountedDir is a directory that must exist only on the filesystem mounted
// at Mountpoint: made there while it is mounted, never under the empty
// mountpoint on the root filesystem, where a push would fill the wrong disk.
type MountedDir struct {
	Mountpoint string
	Dir
}

func (m *MountedDir) ID() string { return "mounted-dir." + m.Path }

// Place is "": the directory waits for the steps before it, the disk's
// mount among them.
func (m *MountedDir) Place() string { return "" }

// Reads are the directory's, and whether its disk is mounted.
func (m *MountedDir) Reads() []host.Want {
	return append(m.Dir.Reads(), host.Want{Run: mountpointArgv(m.Mountpoint)})
}

// mountpointArgv asks whether mp is a mountpoint. Checks ask it through
// Reads too, so that a survey answers it (host.Want.Run).
func mountpointArgv(mp string) []string { return tools.Argv(tools.Mountpoint, "-q", mp) }

func (m *MountedDir) mounted(ctx context.Context, h host.Host) (bool, error) {
	if !h.Live() {
		return true, nil // a tree under --root has no mounts; the path is the disk
	}
	res, err := h.Run(ctx, host.Cmd{Argv: mountpointArgv(m.Mountpoint)})
	// 32: not a mountpoint; 1: the path does not exist yet (a fresh host).
	if err != nil && (res.ExitCode == 32 || res.ExitCode == 1) {
		return false, nil
	}
	return err == nil, err
}

func (m *MountedDir) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	ok, err := m.mounted(ctx, h)
	if err != nil {
		return plan.Check{}, fmt.Errorf("is %s mounted: %w", m.Mountpoint, err)
	}
	if !ok {
		return plan.Skipped(m.Mountpoint + " is not mounted; the directory is made on the disk once it is"), nil
	}
	return m.Dir.Check(ctx, h)
}
