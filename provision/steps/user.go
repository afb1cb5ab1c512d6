package steps

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// Where a host keeps its users.
const passwdFile = "/etc/passwd"

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	Name        string
	UID, GID    int
	Home, Shell string
}

// lookupUser finds name in the host's /etc/passwd; nil when it has none.
func lookupUser(ctx context.Context, h host.Host, name string) (*passwdEntry, error) {
	b, err := h.ReadFile(ctx, passwdFile)
	if host.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) != 7 || f[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: the entry of %s has no numeric ids: %q", passwdFile, name, line)
		}
		return &passwdEntry{Name: name, UID: uid, GID: gid, Home: f[5], Shell: f[6]}, nil
	}
	return nil, nil
}

// userOwner is the owner a step gives its file when it names a user: the
// user and its primary group. ok is false while the user does not exist.
func userOwner(ctx context.Context, h host.Host, name string) (o host.Owner, ok bool, err error) {
	u, err := lookupUser(ctx, h, name)
	if err != nil || u == nil {
		return host.Owner{}, false, err
	}
	return host.Owner{UID: u.UID, GID: u.GID}, true, nil
}

// SystemUser is an unprivileged system user that logs in by key alone,
// such as the offsite host's push user: its own group, Shell to run the
// forced command of its key, Home not made here (Dir steps make it with
// the owners it needs), and "*" for a password: no password logs in, and
// sshd without PAM does not take the account for locked, as it does
// useradd's default "!".
type SystemUser struct {
	Name, Home, Shell, Comment string
}

func (u *SystemUser) ID() string { return "user." + u.Name }

// Reads are the passwd file and the user's own shadow entry (getent's
// line, not the whole shadow file: other users' hashes never cross the
// link), both answered by the survey.
func (u *SystemUser) Reads() []host.Want {
	return []host.Want{{Path: passwdFile, Content: true}, {Run: u.shadowQuery().Argv}}
}

// shadowQuery asks for the user's shadow entry alone.
func (u *SystemUser) shadowQuery() host.Cmd { return host.Command(tools.Getent, "shadow", u.Name) }

func (u *SystemUser) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	if !h.Live() {
		return plan.Skipped("--root makes no users"), nil
	}
	e, err := lookupUser(ctx, h, u.Name)
	if err != nil {
		return plan.Check{}, err
	}
	if e == nil {
		return plan.Creates(fmt.Sprintf("useradd --system %s (home %s, shell %s, no password)", u.Name, u.Home, u.Shell)), nil
	}
	if e.UID == 0 {
		return plan.Conflicts(fmt.Sprintf("user %s is uid 0; it must be an unprivileged user", u.Name)), nil
	}
	var drift []string
	if e.Home != u.Home {
		drift = append(drift, fmt.Sprintf("home %s -> %s", e.Home, u.Home))
	}
	if e.Shell != u.Shell {
		drift = append(drift, fmt.Sprintf("shell %s -> %s", e.Shell, u.Shell))
	}
	locked, err := u.locked(ctx, h)
	if err != nil {
		return plan.Check{}, err
	}
	if locked {
		drift = append(drift, "password ! (locked: sshd without PAM refuses its key) -> *")
	}
	if len(drift) > 0 {
		return plan.Modifies("usermod " + strings.Join(drift, ", ")), nil
	}
	return plan.Satisfied(), nil
}

// locked reports whether the user's shadow password is "!"-locked. An
// entry that cannot be read is an error that never quotes it: it holds a
// password hash.
func (u *SystemUser) locked(ctx context.Context, h host.Host) (bool, error) {
	res, err := h.Run(ctx, u.shadowQuery())
	if ee := (*host.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode == getentNotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("the shadow entry of %s: %w", u.Name, err)
	}
	f := strings.Split(strings.TrimSuffix(string(res.Stdout), "\n"), ":")
	if len(f) < 2 || f[0] != u.Name {
		return false, fmt.Errorf("getent shadow %s printed no entry of %s (%d bytes)", u.Name, u.Name, len(res.Stdout))
	}
	return strings.HasPrefix(f[1], "!"), nil
}

// getentNotFound is getent's exit status for a key the database lacks.
const getentNotFound = 2

func (u *SystemUser) Apply(ctx context.Context, h host.Host) error {
	e, err := lookupUser(ctx, h, u.Name)
	if err != nil {
		return err
	}
	// "*" is a password hash nothing matches, not a secret.
	args := []string{"--home", u.Home, "--shell", u.Shell, "--password", "*"}
	c := host.Command(tools.Usermod, append(args, u.Name)...)
	if e == nil {
		args = []string{"--system", "--user-group", "--no-create-home", "--home-dir", u.Home, "--shell", u.Shell, "--password", "*"}
		if u.Comment != "" {
			args = append(args, "--comment", u.Comment)
		}
		c = host.Command(tools.Useradd, append(args, u.Name)...)
	}
	if _, err := h.Run(ctx, c); err != nil {
		return fmt.Errorf("user %s: %w", u.Name, err)
	}
	return nil
}

// OwnedDirs gives every directory below Root (Root itself not included, a
// Dir step keeps it) to User, on the filesystem mounted at Mountpoint only:
// the offsite mirror's tree, pushed as root before the push user existed,
// which the push user must be able to write. Files keep their owner.
type OwnedDirs struct {
	Root, User, Mountpoint string
}

func (o *OwnedDirs) ID() string { return "owned-dirs." + o.Root }

// Reads include the check's find for a user that exists (the no-change
// case): the survey runs it, so it costs no exchange of its own.
func (o *OwnedDirs) Reads() []host.Want {
	return []host.Want{{Path: o.Root}, {Path: passwdFile, Content: true}, {Run: mountpointArgv(o.Mountpoint)},
		{Run: o.findArgv(o.Root, []string{"!", "-user", o.User}, nil)}}
}

// findArgv is find's argv for the directories below root matching
// filter: the first one printed, or exec run on them all.
func (o *OwnedDirs) findArgv(root string, filter, exec []string) []string {
	args := append([]string{root, "-xdev", "-mindepth", "1", "-type", "d"}, filter...)
	if exec == nil {
		args = append(args, "-print", "-quit")
	} else {
		args = append(append(append(args, "-exec"), exec...), "{}", "+")
	}
	return tools.Argv(tools.Find, args...)
}

// foreign lists (at most one of) the directories below Root matching
// filter (not owned by the user; nil asks for any directory at all), or
// runs exec on them all.
func (o *OwnedDirs) foreign(ctx context.Context, h host.Host, filter, exec []string) (string, error) {
	res, err := h.Run(ctx, host.Cmd{Argv: o.findArgv(h.Path(o.Root), filter, exec)})
	if err != nil {
		return "", fmt.Errorf("directories below %s: %w", o.Root, err)
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

func (o *OwnedDirs) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	if !h.Live() {
		return plan.Skipped("--root makes no users to own directories"), nil
	}
	md := &MountedDir{Mountpoint: o.Mountpoint}
	if ok, err := md.mounted(ctx, h); err != nil || !ok {
		if err != nil {
			return plan.Check{}, err
		}
		return plan.Skipped(o.Mountpoint + " is not mounted"), nil
	}
	if _, err := h.Lstat(ctx, o.Root); host.IsNotExist(err) {
		return plan.Satisfied(), nil // a fresh disk: the Dir step makes it
	}
	_, ok, err := userOwner(ctx, h, o.User)
	if err != nil {
		return plan.Check{}, err
	}
	// By name, as Reads has it; a user still to be made owns nothing yet.
	var filter []string
	if ok {
		filter = []string{"!", "-user", o.User}
	}
	first, err := o.foreign(ctx, h, filter, nil)
	if err != nil || first == "" {
		return plan.Satisfied(), err
	}
	return plan.Modifies(fmt.Sprintf("chown %s every directory below %s (%s and others)", o.User, o.Root, first)), nil
}

func (o *OwnedDirs) Apply(ctx context.Context, h host.Host) error {
	owner, ok, err := userOwner(ctx, h, o.User)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("user %s does not exist (its step comes first)", o.User)
	}
	// -h: a symlink the push user planted is changed itself, never what it
	// points to (find -type d lists no symlinks; this is for a race).
	chown := tools.Argv(tools.Chown, "-h", fmt.Sprintf("%d:%d", owner.UID, owner.GID))
	_, err = o.foreign(ctx, h, []string{"!", "-uid", strconv.Itoa(owner.UID)}, chown)
	return err
}
