package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/legacy"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// borgDirs are what borg finds on its own below BORG_BASE_DIR (under
// --root, layout.BorgHome in the tree): its config (keys, security) and
// its cache.
var borgDirs = []string{layout.BorgHome + "/.config/borg/security", layout.BorgHome + "/.config/borg/keys", layout.BorgHome + "/.cache/borg"}

// borgInside checks, on a rooted host, every path borg is given or finds on
// its own below BORG_BASE_DIR: borg follows symlinks, so ROOT/root/.config
// linked elsewhere would put its security and key directories outside the
// tree. It says why not, or "".
func borgInside(h host.Host, paths ...string) string {
	if h.Live() {
		return ""
	}
	for _, p := range append(paths, borgDirs...) {
		if p == "" {
			continue
		}
		if _, err := host.PathInside(h, p); err != nil {
			return fmt.Sprintf("borg would be given %s, which leaves the tree: %v", p, err)
		}
	}
	return ""
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

func (r *BorgRepo) Reads() []host.Want {
	w := []host.Want{{Path: path.Join(r.Path, "config"), Content: true}, {Path: r.Path}}
	if r.Mountpoint != "" {
		w = append(w, host.Want{Run: mountpointArgv(r.Mountpoint)})
	}
	return w
}

// CheckAfter is the disk's step: whether it mounts in this run is what
// its check found.
func (r *BorgRepo) CheckAfter() []plan.Step {
	if s, ok := r.Disk.(plan.Step); ok {
		return []plan.Step{s}
	}
	return nil
}

// Mounter is a step that mounts a filesystem; MountsThisRun says its last
// check found it will, so steps after it may plan on the mount.
type Mounter interface{ MountsThisRun() bool }

func (r *BorgRepo) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	return r.check(ctx, h, r.Disk != nil && r.Disk.MountsThisRun())
}

// check is Check, told whether the disk's mount is still to come.
func (r *BorgRepo) check(ctx context.Context, h host.Host, mountPending bool) (plan.Check, error) {
	ok, err := borg.IsRepo(ctx, h, r.Path)
	if err != nil {
		return plan.Check{}, err
	}
	if ok {
		// An existing repo is used as it is: never initialised again,
		// its encryption never changed. A config that says otherwise is
		// wrong about it.
		if why, err := r.encryptionMismatch(ctx, h); err != nil {
			return plan.Check{}, err
		} else if why != "" {
			return plan.Conflicts(why), nil
		}
		return plan.Satisfied(), nil
	}
	if why := borgInside(h, r.Path, r.PassFile); why != "" {
		return plan.Conflicts(why), nil
	}
	if r.Mountpoint != "" && h.Live() {
		if _, err := h.Run(ctx, host.Cmd{Argv: mountpointArgv(r.Mountpoint)}); err != nil {
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

// encryptionMismatch compares the config's encryption with what the
// repo's config file shows (a repokey repo keeps its key there).
func (r *BorgRepo) encryptionMismatch(ctx context.Context, h host.Host) (string, error) {
	b, err := h.ReadFile(ctx, path.Join(r.Path, "config"))
	if err != nil {
		return "", err
	}
	rc, err := borg.ParseRepoConfig(b)
	if err != nil {
		return fmt.Sprintf("%s: %v", r.Path, err), nil
	}
	repokey := strings.HasPrefix(r.Encryption, "repokey")
	switch {
	case rc.Key != "" && !repokey:
		return fmt.Sprintf("%s is an existing repokey-encrypted repository, but the config says encryption: %s; borgkit never changes a repository's encryption: write the repo's own (borg info shows it)", r.Path, r.Encryption), nil
	case rc.Key == "" && repokey:
		return fmt.Sprintf("%s is an existing repository without a key of its own (unencrypted, or keyfile mode), but the config says encryption: %s; borgkit never changes a repository's encryption: write the repo's own (borg info shows it)", r.Path, r.Encryption), nil
	}
	return "", nil
}

// ExistingEncrypted says why an encrypted repo's passphrase cannot be made
// up: the repo exists already, and only its own passphrase opens it.
func ExistingEncrypted(name, repoPath, passFile string) func(ctx context.Context, h host.Host) (string, error) {
	return func(ctx context.Context, h host.Host) (string, error) {
		ok, err := borg.IsRepo(ctx, h, repoPath)
		if err != nil || !ok {
			return "", err
		}
		return fmt.Sprintf("repo %s exists at %s and is encrypted, but its passphrase is not in %s: borgkit will not make up a new one, which would not open it. "+
			"Put the passphrase there (0600), or name the file of the old setup that holds it with passphrase_from", name, repoPath, passFile), nil
	}
}

// PassphraseFrom reads an existing repo's passphrase from a file of a
// hand-built setup (BORG_PASSPHRASE='...' or BORG_PASSCOMMAND="cat FILE")
// and checks, with borg reading it from stdin, that it opens the repo.
func PassphraseFrom(repoPath, from string) func(ctx context.Context, h host.Host) ([]byte, error) {
	return func(ctx context.Context, h host.Host) ([]byte, error) {
		b, err := h.ReadFile(ctx, from)
		if err != nil {
			return nil, fmt.Errorf("passphrase_from: %w", err)
		}
		pass, file, err := legacy.Passphrase(b)
		if err != nil {
			return nil, fmt.Errorf("passphrase_from %s: %w", from, err)
		}
		if file != "" {
			if pass, err = h.ReadFile(ctx, file); err != nil {
				return nil, fmt.Errorf("passphrase_from %s names %s: %w", from, file, err)
			}
		}
		if ok, err := borg.IsRepo(ctx, h, repoPath); err != nil || !ok {
			return pass, err // a repo still to be made takes it as it is
		}
		if why := borgInside(h, repoPath); why != "" {
			return nil, errors.New(why)
		}
		env := borg.OnHost(h, "")
		env.PassStdin = true
		c := borg.Cmd(env, "list", "--bypass-lock", "--last", "1", "--short", h.Path(repoPath))
		c.Stdin = bytes.NewReader(pass)
		if _, err := h.Run(ctx, c); err != nil {
			return nil, fmt.Errorf("the passphrase in %s does not open %s (borg list failed)", from, repoPath)
		}
		return pass, nil
	}
}

func emptyDir(ctx context.Context, h host.Host, dir string) (bool, error) {
	c := host.Command(tools.Find, h.Path(dir), "-mindepth", "1", "-maxdepth", "1", "-print", "-quit")
	res, err := h.Run(ctx, c)
	if err != nil {
		return false, fmt.Errorf("list %s: %w", dir, err)
	}
	return len(bytes.TrimSpace(res.Stdout)) == 0, nil
}

func (r *BorgRepo) Apply(ctx context.Context, h host.Host) error {
	if why := borgInside(h, r.Path, r.PassFile); why != "" {
		return errors.New(why)
	}
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
	c := borg.Cmd(borg.OnHost(h, r.PassFile), "init", "--encryption="+r.Encryption, "--make-parent-dirs", h.Path(r.Path))
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
	// Remote marks RepoPath as a borg server's ssh:// location: the key is
	// exported over SSH on a live host. The repo's config is not here to
	// compare an existing export with: Records, when set and vouching,
	// give the repository id the nightly saw instead; without them the
	// export is kept.
	Remote  bool
	Records Voucher
}

func (k *BorgKeyExport) ID() string { return "borg-key." + k.Repo }

func (k *BorgKeyExport) Reads() []host.Want {
	if k.Remote && k.Records != nil {
		return append([]host.Want{{Path: k.Dest, Content: true}}, k.Records.Reads()...)
	}
	return []host.Want{{Path: k.Dest}}
}

func (k *BorgKeyExport) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	if k.Remote && !h.Live() {
		return plan.Skipped("the key of " + k.RepoPath + " is exported when this host is provisioned live"), nil
	}
	if why := borgInside(h, k.localRepo(), k.Dest, k.PassFile); why != "" {
		return plan.Conflicts(why), nil
	}
	fi, err := h.Lstat(ctx, k.Dest)
	if host.IsNotExist(err) {
		return plan.Creates("borg key export to " + k.Dest), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	// borg would write through a symlink, and chmod would refuse it after
	// every step before had been applied.
	if !fi.Mode.IsRegular() {
		return plan.Conflicts(fmt.Sprintf("%s is %s, not a key export file; borgkit does not write through it", k.Dest, kind(fi.Mode))), nil
	}
	if why, err := k.mismatch(ctx, h); err != nil {
		return plan.Check{}, err
	} else if why != "" {
		return plan.Modifies(why + "; export the key afresh (the old export is kept beside it as " + path.Base(k.Dest) + ".replaced-HASH) and write a new recovery bundle"), nil
	}
	if drift := metaDrift(h, fi, 0o600, host.Root); drift != "" {
		return plan.Modifies(drift), nil
	}
	return plan.Satisfied(), nil
}

// localRepo is RepoPath when the repo is a local directory, "" when not.
func (k *BorgKeyExport) localRepo() string {
	if k.Remote {
		return ""
	}
	return k.RepoPath
}

func (k *BorgKeyExport) Apply(ctx context.Context, h host.Host) error {
	if why := borgInside(h, k.localRepo(), k.Dest, k.PassFile); why != "" {
		return errors.New(why)
	}
	_, err := h.Lstat(ctx, k.Dest)
	if err == nil {
		why, merr := k.mismatch(ctx, h)
		if merr != nil {
			return fmt.Errorf("borg key export %s: %w", k.RepoPath, merr)
		}
		if why != "" {
			if err := k.setAside(ctx, h); err != nil {
				return err
			}
		}
		_, err = h.Lstat(ctx, k.Dest)
	}
	if host.IsNotExist(err) {
		repo := k.RepoPath
		if !k.Remote {
			repo = h.Path(repo)
		}
		c := borg.Cmd(borg.OnHost(h, k.PassFile), "key", "export", repo, h.Path(k.Dest))
		if _, err := h.Run(ctx, c); err != nil {
			return fmt.Errorf("borg key export %s: %w", k.RepoPath, err)
		}
	}
	return fixMeta(ctx, h, k.Dest, 0o600, host.Root)
}

// setAside moves an export that no longer opens the repo out of the way,
// never deleting it: it is the only way into the repo it was taken from,
// should that one turn up again (a mirror not yet overwritten, an old
// disk). The name carries a digest of the content, so a second stale
// export never overwrites the first.
func (k *BorgKeyExport) setAside(ctx context.Context, h host.Host) error {
	sum, err := h.Digest(ctx, k.Dest)
	if err != nil {
		return fmt.Errorf("set aside the stale key export %s: %w", k.Dest, err)
	}
	old := k.Dest + ".replaced-" + sum[:12]
	if _, err := h.Lstat(ctx, old); err == nil {
		// The same content is already kept there.
		return h.Remove(ctx, k.Dest)
	}
	if _, err := h.Run(ctx, host.Command(tools.Mv, "-n", "-T", h.Path(k.Dest), h.Path(old))); err != nil {
		return fmt.Errorf("set aside the stale key export %s: %w", k.Dest, err)
	}
	if _, err := h.Lstat(ctx, k.Dest); err == nil {
		return fmt.Errorf("set aside the stale key export %s: it is still there after mv", k.Dest)
	}
	return nil
}

// mismatch checks an existing export against the repo's config file: an
// export that does not open the repo (another repo's, or one taken before
// the passphrase changed) is worse than none, because every copy made of
// it fails on the day it is needed.
func (k *BorgKeyExport) mismatch(ctx context.Context, h host.Host) (string, error) {
	if k.Remote {
		return k.remoteMismatch(ctx, h)
	}
	cb, err := h.ReadFile(ctx, path.Join(k.RepoPath, "config"))
	if host.IsNotExist(err) {
		return "", nil // the repo is not there (its disk unmounted): nothing to compare
	}
	if err != nil {
		return "", err
	}
	rc, err := borg.ParseRepoConfig(cb)
	if err != nil {
		return "", nil // BorgRepo reports a damaged repo
	}
	ex, why, err := k.export(ctx, h)
	if why != "" || err != nil {
		return why, err
	}
	if why := ex.Matches(rc); why != "" {
		return k.stale(why), nil
	}
	return "", nil
}

// export reads and parses the existing export; why says what is wrong
// with one that does not parse.
func (k *BorgKeyExport) export(ctx context.Context, h host.Host) (ex borg.KeyExport, why string, err error) {
	eb, err := h.ReadFile(ctx, k.Dest)
	if err != nil {
		return ex, "", err
	}
	if ex, err = borg.ParseKeyExport(eb); err != nil {
		return ex, fmt.Sprintf("%s: %v", k.Dest, err), nil
	}
	return ex, "", nil
}

func (k *BorgKeyExport) stale(why string) string {
	return fmt.Sprintf("the key export %s does not open repo %s: %s. Copies made from it (a password manager, the recovery bundle) are as stale", k.Dest, k.Repo, why)
}

// remoteMismatch compares an export of a repo on a borg server with the
// repository id the host's records vouch for; with no such records there
// is nothing to compare with but the server, and borg key export over SSH
// on every plan would cost what the records save.
func (k *BorgKeyExport) remoteMismatch(ctx context.Context, h host.Host) (string, error) {
	if k.Records == nil {
		return "", nil
	}
	id, _, err := k.Records.Vouch(ctx, h)
	if err != nil {
		return "", nil
	}
	ex, why, err := k.export(ctx, h)
	if why != "" || err != nil {
		return why, err
	}
	if !strings.EqualFold(ex.ID, id) {
		return k.stale(fmt.Sprintf("it is the key of repository %s, and the last nightly wrote to repository %s", ex.ID, id)), nil
	}
	return "", nil
}
