package steps

import (
	"bytes"
	"context"
	"fmt"
	"path"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// BorgEnv is the environment borg runs with for a repo. The passphrase is
// read by borg itself from a 0600 file through BORG_PASSCOMMAND, so it never
// appears in an argv or an environment block. Under --root, BORG_BASE_DIR
// moves borg's keys, cache and security dirs into the tree too.
func BorgEnv(h host.Host, passFile string) []string {
	// Legacy exit codes (0 ok, 1 warning, 2 error): jobs tell a warning from
	// a failure by them, and borg 1.4's modern codes would move warnings.
	env := []string{"BORG_DISPLAY_PASSPHRASE=no", "BORG_EXIT_CODES=legacy"}
	if passFile != "" {
		// borg splits the command with shlex, so quote the path for it.
		env = append(env, "BORG_PASSCOMMAND=cat "+host.QuoteArgv([]string{h.Path(passFile)}))
	}
	if !h.Live() {
		env = append(env, "BORG_BASE_DIR="+h.Path("/root"))
	}
	return env
}

// BorgRepo is a borg repository, created with borg init only where nothing
// else stands.
type BorgRepo struct {
	Name       string
	Path       string
	Encryption string
	PassFile   string // "" for encryption none
	// Mountpoint is the disk the repo must live on. On a live host an init
	// while it is unmounted would put the repo on the root filesystem.
	Mountpoint string
	// Disk is the plan's step that mounts Mountpoint, if any (a Mount, a
	// ZFSDataset): when it mounts the filesystem in this run, the init
	// waits for it instead of conflicting.
	Disk Mounter
}

func (r *BorgRepo) ID() string { return "repo." + r.Name }

// isRepo reads the repo's config file rather than running borg: a
// no-change run must not pay for a Python start per repo.
func isRepo(ctx context.Context, h host.Host, dir string) (bool, error) {
	cfg, err := h.ReadFile(ctx, path.Join(dir, "config"))
	if host.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return bytes.Contains(cfg, []byte("[repository]")), nil
}

// Mounter is a step that mounts a filesystem; MountsThisRun says its last
// check found it will, so steps after it may plan on the mount.
type Mounter interface{ MountsThisRun() bool }

func (r *BorgRepo) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	return r.check(ctx, h, r.Disk != nil && r.Disk.MountsThisRun())
}

// check is Check, told whether the disk's mount is still to come.
func (r *BorgRepo) check(ctx context.Context, h host.Host, mountPending bool) (plan.Check, error) {
	ok, err := isRepo(ctx, h, r.Path)
	if err != nil || ok {
		return plan.Satisfied(), err
	}
	if r.Mountpoint != "" && h.Live() {
		if _, err := h.Run(ctx, tools.Cmd(tools.Mountpoint, "-q", r.Mountpoint)); err != nil {
			if mountPending {
				// What the disk holds is checked again in Apply, once mounted.
				return plan.Creates("borg init --encryption=" + r.Encryption + " once " + r.Mountpoint + " is mounted"), nil
			}
			return plan.Conflicts(fmt.Sprintf("%s is not mounted; borg init would write %s to the wrong filesystem", r.Mountpoint, r.Path)), nil
		}
	}
	fi, err := h.Lstat(ctx, r.Path)
	if host.IsNotExist(err) {
		return plan.Creates("borg init --encryption=" + r.Encryption), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	if !fi.IsDir() {
		return plan.Conflicts(fmt.Sprintf("%s is %s, not a borg repository", r.Path, kind(fi.Mode))), nil
	}
	empty, err := emptyDir(ctx, h, r.Path)
	if err != nil {
		return plan.Check{}, err
	}
	if !empty {
		return plan.Conflicts(fmt.Sprintf("%s holds files but no borg repository; borgkit will not init over them", r.Path)), nil
	}
	return plan.Creates("borg init --encryption=" + r.Encryption + " (empty directory)"), nil
}

func emptyDir(ctx context.Context, h host.Host, dir string) (bool, error) {
	c := tools.Cmd(tools.Find, h.Path(dir), "-mindepth", "1", "-maxdepth", "1", "-print", "-quit")
	res, err := h.Run(ctx, c)
	if err != nil {
		return false, fmt.Errorf("list %s: %w", dir, err)
	}
	return len(bytes.TrimSpace(res.Stdout)) == 0, nil
}

func (r *BorgRepo) Apply(ctx context.Context, h host.Host) error {
	if r.Disk != nil {
		// The check ran before the disk was mounted: look at what it holds.
		c, err := r.check(ctx, h, false)
		switch {
		case err != nil:
			return err
		case c.Action == plan.OK:
			return nil // the disk already carries the repo
		case c.Action == plan.Conflict:
			return fmt.Errorf("borg init %s: %s", r.Path, c.Reason)
		}
	}
	c := tools.Cmd(tools.Borg, "init", "--encryption="+r.Encryption, "--make-parent-dirs", h.Path(r.Path))
	c.Env = BorgEnv(h, r.PassFile)
	if _, err := h.Run(ctx, c); err != nil {
		return fmt.Errorf("borg init %s: %w", r.Path, err)
	}
	return nil
}

// BorgKeyExport keeps an export of an encrypted repo's key: without it, a
// damaged repo config or a lost keyfile makes every archive unreadable.
type BorgKeyExport struct {
	Repo     string // name, for the id
	RepoPath string
	Dest     string
	PassFile string
}

func (k *BorgKeyExport) ID() string { return "borg-key." + k.Repo }

func (k *BorgKeyExport) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	fi, err := h.Lstat(ctx, k.Dest)
	if host.IsNotExist(err) {
		return plan.Creates("borg key export to " + k.Dest), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	if drift := metaDrift(h, fi, 0o600, host.Root); drift != "" {
		return plan.Modifies(drift), nil
	}
	return plan.Satisfied(), nil
}

func (k *BorgKeyExport) Apply(ctx context.Context, h host.Host) error {
	if _, err := h.Lstat(ctx, k.Dest); host.IsNotExist(err) {
		c := tools.Cmd(tools.Borg, "key", "export", h.Path(k.RepoPath), h.Path(k.Dest))
		c.Env = BorgEnv(h, k.PassFile)
		if _, err := h.Run(ctx, c); err != nil {
			return fmt.Errorf("borg key export %s: %w", k.RepoPath, err)
		}
	}
	return fixMeta(ctx, h, k.Dest, 0o600, host.Root)
}
