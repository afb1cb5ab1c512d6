package recipe

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/release"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/templates"
)

// offsite is the first seed's Raspberry Pi: a LUKS2 disk whose key is
// fetched from the server at boot, an rrsync-only push target, a watchdog.
// It is provisioned from the server, whose files (keys, host key) are read
// through o.Local.
func offsite(cfg *config.Config, h *config.Host, o Options) ([]plan.Step, error) {
	s, err := base(h, o)
	if err != nil {
		return nil, err
	}
	s = append([]plan.Step{packages(cfg, h, "rsync", "openssh-server", "openssh-client", "cryptsetup-bin", "e2fsprogs")}, s...)
	server := cfg.OffsiteServer(h)
	if server == nil {
		return nil, fmt.Errorf("host %s: no server unlocks it or mirrors to it", h.Name)
	}
	local := o.Local
	readLocal := func(ctx context.Context, p string) ([]byte, error) {
		if local == nil {
			return nil, fmt.Errorf("%s lives on %s; run this provisioning from %s", p, server.Name, server.Name)
		}
		b, err := local.ReadFile(ctx, p)
		if host.IsNotExist(err) {
			return nil, fmt.Errorf("%s is missing on %s: provision %s first, then provision %s from it", p, local.Name(), server.Name, h.Name)
		}
		return b, err
	}

	// Plain disks are mounted from fstab; LUKS disks by the unlock job.
	mounts, err := mountSteps(cfg, h)
	if err != nil {
		return nil, err
	}
	s = append(s, mounts...)
	luks := false
	for i := range h.Disks {
		d := &h.Disks[i]
		if d.LUKS == nil {
			continue
		}
		luks = true
		s = append(s, &steps.Dir{Path: d.Mountpoint, Mode: 0o755, Owner: host.Root, CreateOnly: true})
		keyfile := cfg.LUKSKeyfile(h, d)
		s = append(s, &steps.LUKSFormat{
			Device:     d.Device,
			Allowed:    slices.Contains(o.Format, d.Device),
			FormatArgs: o.LUKSFormatArgs,
			FSType:     d.FSTypeOrDefault(),
			FSUUID:     d.UUID,
			Mapper:     d.LUKS.MapperName(d),
			Key:        func(ctx context.Context) ([]byte, error) { return readLocal(ctx, keyfile) },
			KeyFrom:    server.Name + ":" + keyfile,
			HeaderBackup: func(ctx context.Context, img []byte) error {
				if local == nil {
					return fmt.Errorf("no server to keep the header backup on")
				}
				return local.WriteFile(ctx, layout.HeaderBackup(h.Name, d.Name), img, 0o400, host.Root)
			},
		})
	}
	// A disk formatted by hand (adopted) has no header backup on the
	// server yet; one formatted above has.
	for i := range h.Disks {
		d := &h.Disks[i]
		if d.LUKS == nil {
			continue
		}
		hb := layout.HeaderBackup(h.Name, d.Name)
		s = append(s, &steps.LUKSHeaderBackup{Device: d.Device, Where: server.Name + ":" + hb,
			Have: func(ctx context.Context) (bool, error) {
				if local == nil {
					return false, fmt.Errorf("no server to keep the header backup of %s on; run this provisioning from %s", d.Device, server.Name)
				}
				_, err := local.Lstat(ctx, hb)
				if host.IsNotExist(err) {
					return false, nil
				}
				return err == nil, err
			},
			Save: func(ctx context.Context, img []byte) error { return local.WriteFile(ctx, hb, img, 0o400, host.Root) }})
	}
	s = append(s, trustServerSteps(server, readLocal)...)
	if luks && h.Unlock != nil {
		unlock, err := unlockSteps(h, readLocal)
		if err != nil {
			return nil, err
		}
		s = append(s, unlock...)
	}
	// The watchdog reports to the server with a key that can do nothing
	// else (the forced command watchdog-report there).
	s = append(s, &fromServer{id: "file." + layout.ReportIdentity, path: layout.ReportIdentity, mode: 0o600, secret: true,
		read: func(ctx context.Context) ([]byte, error) { return readLocal(ctx, layout.ReportKey(h.Name)) }})

	mirror := ""
	if mp := backupMount(h); mp != "" {
		mirror = h.MirrorRootOrDefault()
		s = append(s, pushSteps(server, mp, mirror, pushedRepos(cfg, h), o.release(), readLocal)...)
		s = append(s, &steps.MirrorContents{Root: mirror, Mountpoint: mp, Names: pushedRepos(cfg, h),
			Repos: func(ctx context.Context, _ host.Host) (map[string]string, error) {
				if local == nil {
					return nil, fmt.Errorf("the repos mirrored to %s live on %s; run this provisioning from %s", h.Name, server.Name, server.Name)
				}
				ids := map[string]string{}
				for _, srv := range pushers(cfg, h) {
					got, err := repoIDs(ctx, srv, local.ReadFile)
					if err != nil {
						return nil, err
					}
					for k, v := range got {
						ids[k] = v
					}
				}
				return ids, nil
			}})
	}
	// root's authorized_keys holds the server's hash key, serve-hashes on
	// the mirror and its snapshots only (names, sizes and sums; the
	// snapshots' files are root's to read), and no
	// longer the push key: the push line an older borgkit left there goes,
	// with the root login it gave the server, and so does the block when
	// there is no hash key.
	s = append(s, &steps.Dir{Path: layout.RootSSHDir, Mode: 0o700, Owner: host.Root})
	keys := &steps.Block{Path: layout.AuthorizedKeys, Mode: 0o600, Owner: host.Root, Note: "(" + layout.Managed() + ")", DropEmpty: true,
		LinesFrom: func(ctx context.Context, _ host.Host) ([]byte, error) {
			if mirror == "" {
				return nil, nil
			}
			return hashKeyLine(ctx, local, server.Address, mirror, layout.SnapshotRoot(backupMount(h)))
		}}
	if mp := backupMount(h); mp != "" {
		keys.TakeOver = takeOverRootPush(mp)
	}
	s = append(s, keys)
	return finish(cfg, h, s, o)
}

// pushers are the servers that mirror to h.
func pushers(cfg *config.Config, h *config.Host) []*config.Host {
	var out []*config.Host
	for i := range cfg.Hosts {
		for _, m := range cfg.Hosts[i].Mirrors {
			if m.Host == h.Name {
				out = append(out, &cfg.Hosts[i])
				break
			}
		}
	}
	return out
}

// pushedRepos are the names of the repos the servers push to h: the
// directories at the top of its mirror.
func pushedRepos(cfg *config.Config, h *config.Host) []string {
	return repoNames(pushers(cfg, h)...)
}

// trustServerSteps pin the server's host key for the Pi's own connections
// to it (the unlock's key fetch, the watchdog's report): from the config,
// or from the server itself.
func trustServerSteps(server *config.Host, readLocal func(context.Context, string) ([]byte, error)) []plan.Step {
	return []plan.Step{
		&steps.Dir{Path: layout.SSHDir, Mode: 0o700, Owner: host.Root},
		&fromServer{id: "file." + layout.UnlockKnownHosts, path: layout.UnlockKnownHosts, mode: 0o644,
			read: func(ctx context.Context) ([]byte, error) {
				key := server.SSH.HostPublicKey
				if key == "" {
					b, err := readLocal(ctx, layout.ServerHostKeyPub)
					if err != nil {
						return nil, err
					}
					key = string(b)
				}
				return knownHostsLine(server, key)
			}},
	}
}

// unlockSteps install the boot-time unlock: the identity made on the
// server and the timer.
func unlockSteps(h *config.Host, readLocal func(context.Context, string) ([]byte, error)) ([]plan.Step, error) {
	identity := h.Unlock.IdentityOrDefault()
	var s []plan.Step
	if path.Dir(identity) != layout.SSHDir {
		s = append(s, &steps.Dir{Path: path.Dir(identity), Mode: 0o700, Owner: host.Root})
	}
	s = append(s, &fromServer{id: "file." + identity, path: identity, mode: 0o600, secret: true,
		read: func(ctx context.Context) ([]byte, error) { return readLocal(ctx, layout.UnlockKey(h.Name)) }})
	units, err := unlockUnits(h)
	if err != nil {
		return nil, err
	}
	return append(s, units...), nil
}

// pushSteps are the push target on the backup disk mounted at mount: the
// server's push key logs in as the push user, an unprivileged user who may
// only rsync into the mirror directory, write-only, and owns its
// directories and nothing else; the snapshots beside the mirror are
// root's, and so is every file a snapshot froze.
//
// A mirror kept at the top of the disk (mirror_root is the mountpoint, as a
// hand-built setup had it) holds the snapshots and lost+found too: the
// disk's root directory then stays root's, and the push user owns only the
// repos' directories and the heartbeat's, so it can neither rename nor
// remove what is not its own.
func pushSteps(server *config.Host, mount, root string, repos []string, rel release.Release, readLocal func(context.Context, string) ([]byte, error)) []plan.Step {
	var s []plan.Step
	if rr := rel.RrsyncStep(); rr != nil {
		s = append(s, rr)
	}
	s = append(s,
		&steps.SystemUser{Name: layout.PushUser, Home: layout.PushHome, Shell: layout.PushShell, Comment: "borgkit push from " + server.Name},
		// sshd reads the key as the push user, who must not change it.
		&steps.Dir{Path: layout.PushHome, Mode: 0o755, Owner: host.Root},
		&steps.Dir{Path: layout.PushSSHDir, Mode: 0o755, Owner: host.Root},
		&fromServer{id: "file." + layout.PushAuthorizedKeys, path: layout.PushAuthorizedKeys, mode: 0o644,
			read: func(ctx context.Context) ([]byte, error) {
				pub, err := readLocal(ctx, layout.SSHKey+".pub")
				if err != nil {
					return nil, err
				}
				line, err := restrictedLine(server.Address, rel.Rrsync+" -wo "+root, pub)
				if err != nil {
					return nil, fmt.Errorf("%s.pub: %w", layout.SSHKey, err)
				}
				return append([]byte("# "+layout.Managed()+"\n"), line...), nil
			}},
	)
	owned := []string{root}
	if root == mount {
		s = append(s, &steps.MountedDir{Mountpoint: mount, Dir: steps.Dir{Path: root, Mode: 0o755, Owner: host.Root, CreateOnly: true}})
		owned = []string{path.Join(root, layout.HeartbeatDir)}
		for _, r := range repos {
			owned = append(owned, path.Join(root, r))
		}
	}
	for _, dir := range owned {
		s = append(s, &steps.MountedDir{Mountpoint: mount, Dir: steps.Dir{Path: dir, Mode: 0o700, User: layout.PushUser}},
			// Directories a push as root left, before there was a push user.
			&steps.OwnedDirs{Root: dir, User: layout.PushUser, Mountpoint: mount})
	}
	return append(s, &steps.MountedDir{Mountpoint: mount, Dir: steps.Dir{Path: layout.SnapshotRoot(mount), Mode: 0o700, Owner: host.Root}})
}

// backupMount is where the server's mirror lands on this host.
func backupMount(h *config.Host) string {
	if d := h.BackupDisk(); d != nil {
		return d.Mountpoint
	}
	return ""
}

// RrsyncLine lets a key run rrsync, write-only, below mount, from one
// address: the server can push and delete pruned segments but not read the
// mirror back, nor get a shell, nor leave the directory. rrsync's
// single-run lock stays on (no -no-lock): the snapshot job takes the same
// lock, so no push writes while a snapshot is made. The offsite role names
// the host release's rrsync; this is Debian's.
func RrsyncLine(from, mount string, pub []byte) ([]byte, error) {
	return restrictedLine(from, Rrsync+" -wo "+mount, pub)
}

// HashLine lets the server's hash key learn names, sizes and SHA-256 sums
// of the files under the mirror root and the snapshots' root, from one
// address, and nothing else: the sync proves each night that the mirror
// equals the source, and the audit compares the segments of both, without
// reading anything back.
func HashLine(from, mirrorRoot, snapshotRoot string, pub []byte) ([]byte, error) {
	return restrictedLine(from, layout.ServeHashesCommand(layout.HashRootMirror+"="+mirrorRoot, layout.HashRootSnapshots+"="+snapshotRoot), pub)
}

// hashKeyLine is HashLine for the server's hash key, nothing while the
// server has none yet (provisioned by an older borgkit): the push works
// without it, and the sync reports the mirror it cannot compare.
func hashKeyLine(ctx context.Context, local host.Host, from, mirrorRoot, snapshotRoot string) ([]byte, error) {
	if local == nil {
		return nil, nil
	}
	pub, err := local.ReadFile(ctx, layout.HashKey+".pub")
	if host.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return HashLine(from, mirrorRoot, snapshotRoot, pub)
}

// Rrsync is Debian's restricted-rsync wrapper (package rsync), where the
// tests on this machine find it; hosts get theirs from the release table.
var Rrsync = release.Default().Rrsync

// restrictedLine is an authorized_keys line that allows one command from
// one address and nothing else (no pty, no forwarding).
func restrictedLine(from, command string, pub []byte) ([]byte, error) {
	key, comment, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if strings.ContainsAny(from, "\",\n") || strings.ContainsAny(command, "\"\n") {
		return nil, fmt.Errorf("cannot quote %q / %q in authorized_keys", from, command)
	}
	line := fmt.Sprintf("restrict,from=%q,command=%q %s", from, command, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
	if comment != "" {
		line += " " + comment
	}
	return []byte(line + "\n"), nil
}

func knownHostsLine(server *config.Host, key string) ([]byte, error) {
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil {
		return nil, fmt.Errorf("host key of %s: %w", server.Name, err)
	}
	b, err := templates.Render("known-hosts", map[string]any{"Managed": layout.Managed(), "Names": knownHostNames(server),
		"Key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))})
	return b, err
}

func knownHostNames(h *config.Host) string {
	addr := h.Address
	if p := h.SSH.PortOrDefault(); p != config.DefaultSSHPort {
		addr = fmt.Sprintf("[%s]:%d", h.Address, p)
	}
	return h.Name + "," + addr
}

// unlockUnits is the boot-time unlock: a timer starts the unlock job soon
// after boot and again a few minutes after every run until it succeeds
// (the job returns at once when the disk is already open and mounted).
// A timer rather than a service in multi-user.target, so an unreachable
// server can never hold up the boot.
func unlockUnits(h *config.Host) ([]plan.Step, error) {
	data := map[string]any{"Managed": layout.Managed(), "Host": h.Name, "Binary": layout.Binary, "Server": h.Unlock.Server,
		"RetrySec": int(h.Unlock.RetryOrDefault() / time.Second)}
	var s []plan.Step
	for _, kind := range []string{"service", "timer"} {
		b, err := templates.Render("unlock-"+kind, data)
		if err != nil {
			return nil, err
		}
		s = append(s, managedFile(layout.UnitPath(layout.JobUnlock, kind), b, 0o644))
	}
	return append(s, &steps.Timers{Units: []string{"borgkit-unlock.timer"}}), nil
}

// fromServer is a whole file whose content is read from the server when
// the plan is checked: the unlock identity, the server's host key.
type fromServer struct {
	id, path string
	mode     fs.FileMode
	secret   bool
	read     func(ctx context.Context) ([]byte, error)
}

func (f *fromServer) file(ctx context.Context) (*steps.File, error) {
	b, err := f.read(ctx)
	if err != nil {
		return nil, err
	}
	return &steps.File{Path: f.path, Content: b, Mode: f.mode, Owner: host.Root, Secret: f.secret}, nil
}

func (f *fromServer) ID() string { return f.id }

// Place lets the engine write the key beside other steps (plan.Beside):
// a small file, made like any other.
func (f *fromServer) Place() string { return f.path }

func (f *fromServer) Reads() []host.Want { return []host.Want{{Path: f.path, Content: true}} }

func (f *fromServer) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	file, err := f.file(ctx)
	if err != nil {
		return plan.Conflicts(err.Error()), nil
	}
	return file.Check(ctx, h)
}

func (f *fromServer) Apply(ctx context.Context, h host.Host) error {
	file, err := f.file(ctx)
	if err != nil {
		return err
	}
	return file.Apply(ctx, h)
}
