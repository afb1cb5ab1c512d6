package recipe

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/templates"
)

// sshSteps are the server's push key, its ssh config and known_hosts for
// the mirror targets, the key-serving side of every offsite unlock, and the
// pull guard of every archive host pulling from it. local is the machine
// borgkit runs on (nil when unknown): an archive's pull key is read there.
func sshSteps(cfg *config.Config, h *config.Host, local host.Host) ([]plan.Step, error) {
	var targets []*config.Host
	for _, m := range h.Mirrors {
		if m.Host == "" {
			continue
		}
		if t, ok := cfg.Host(m.Host); ok {
			targets = append(targets, t)
		}
	}
	var unlocks []*config.Host
	for _, o := range cfg.HostsByRole(config.RoleOffsite) {
		if o.Unlock != nil && o.Unlock.Server == h.Name && keyedHere(o, h) {
			unlocks = append(unlocks, o)
		}
	}
	pullers := cfg.Pullers(h)
	reporters := cfg.OffsiteHosts(h)
	if len(targets) == 0 && len(unlocks) == 0 && len(pullers) == 0 && len(reporters) == 0 {
		return nil, nil
	}
	s := []plan.Step{&steps.Dir{Path: layout.RootSSHDir, Mode: 0o700, Owner: host.Root}}
	if len(targets) > 0 {
		s = append(s, &steps.SSHKey{Path: layout.SSHKey, Comment: "borgkit@" + h.Name},
			&steps.SSHKey{Path: layout.HashKey, Comment: "borgkit-hash@" + h.Name})
		cfgLines, err := templates.Render("ssh-config", map[string]any{"Hosts": pushHosts(targets), "Identity": layout.SSHKey})
		if err != nil {
			return nil, err
		}
		aliases := map[string]bool{}
		for _, t := range targets {
			aliases[t.Name] = true
		}
		s = append(s, &steps.Block{Path: layout.SSHConfig, Lines: cfgLines, Mode: 0o600, Owner: host.Root,
			Note: "(" + layout.Managed() + ")", Outside: func(l []string) string { return hostClash(l, aliases) }})
		if kh := knownHostLines(targets); len(kh) > 0 {
			s = append(s, &steps.Block{Path: layout.KnownHosts, Lines: kh, Mode: 0o600, Owner: host.Root, Note: "(" + layout.Managed() + ")"})
		}
	}
	for _, o := range unlocks {
		for i := range o.Disks {
			d := &o.Disks[i]
			if d.LUKS == nil || d.LUKS.KeyHost != h.Name {
				continue
			}
			s = append(s, &steps.Secret{Path: cfg.LUKSKeyfile(o, d), Mode: 0o400, Owner: host.Root,
				What: fmt.Sprintf("LUKS keyfile of %s:%s (64 random bytes)", o.Name, d.Name), Generate: steps.Keyfile(64)})
		}
		s = append(s, &steps.SSHKey{Path: layout.UnlockKey(o.Name), Comment: "borgkit-unlock@" + o.Name})
	}
	for _, o := range reporters {
		s = append(s, &steps.SSHKey{Path: layout.ReportKey(o.Name), Comment: "borgkit-report@" + o.Name})
	}
	// One block holds every key borgkit authorizes here: two blocks in one
	// file would each replace the other.
	if len(unlocks) > 0 || len(pullers) > 0 || len(reporters) > 0 {
		s = append(s, &steps.Block{Path: layout.AuthorizedKeys, Mode: 0o600, Owner: host.Root, Note: "(" + layout.Managed() + ")",
			Pending: "authorize the unlock and report keys generated above, each limited to its one command",
			LinesFrom: func(ctx context.Context, hh host.Host) ([]byte, error) {
				serve, err := serveKeyLines(ctx, hh, unlocks)
				if err != nil {
					return nil, err
				}
				report, err := reportKeyLines(ctx, hh, reporters)
				if err != nil {
					return nil, err
				}
				pull, err := pullGuardLines(ctx, hh, local, pullers)
				return append(append(serve, report...), pull...), err
			}})
		for _, a := range pullers {
			s = append(s, &pullKeyCheck{archive: a, server: h, local: local})
		}
	}
	return s, nil
}

// keyedHere reports whether one of offsite host o's LUKS disks has its key
// on server h: only then is there a key to serve.
func keyedHere(o, h *config.Host) bool {
	for _, d := range o.Disks {
		if d.LUKS != nil && d.LUKS.KeyHost == h.Name {
			return true
		}
	}
	return false
}

type sshHost struct {
	Alias, Address, User string
	Port                 int
}

// pushHosts are the mirror targets as the push reaches them: an offsite
// host as its unprivileged push user, which owns nothing the snapshots
// keep, never as root.
func pushHosts(ts []*config.Host) []sshHost {
	var out []sshHost
	for _, t := range ts {
		user := t.SSH.UserOrDefault()
		if t.Role == config.RoleOffsite {
			user = layout.PushUser
		}
		out = append(out, sshHost{Alias: t.Name, Address: t.Address, User: user, Port: t.SSH.PortOrDefault()})
	}
	return out
}

// knownHostLines pins each target's host key when the config carries it;
// otherwise the key is recorded when that host is provisioned over SSH
// after its fingerprint was checked.
func knownHostLines(ts []*config.Host) []byte {
	var b bytes.Buffer
	for _, t := range ts {
		if t.SSH.HostPublicKey == "" {
			continue
		}
		addr := t.Address
		if p := t.SSH.PortOrDefault(); p != 22 {
			addr = "[" + t.Address + "]:" + strconv.Itoa(p)
		}
		fmt.Fprintf(&b, "%s,%s %s\n", t.Name, addr, strings.TrimSpace(t.SSH.HostPublicKey))
	}
	return b.Bytes()
}

// serveKeyLines authorizes each offsite host's unlock key for one thing:
// running `borgkit job serve-key HOST` from that host's address.
func serveKeyLines(ctx context.Context, h host.Host, offsite []*config.Host) ([]byte, error) {
	return offsiteKeyLines(ctx, h, offsite, layout.UnlockKey, func(o string) string { return layout.Binary + " job serve-key " + o })
}

// reportKeyLines authorize each offsite host's report key for one thing:
// handing its watchdog's report to `borgkit job watchdog-report HOST` from
// that host's address.
func reportKeyLines(ctx context.Context, h host.Host, offsite []*config.Host) ([]byte, error) {
	return offsiteKeyLines(ctx, h, offsite, layout.ReportKey, WatchdogReportCommand)
}

// offsiteKeyLines authorize the key pair at key(HOST) of each offsite host
// for command(HOST) alone, from that host's address. A revoked host stays
// revoked: provisioning never authorizes its keys again, so a stolen Pi
// neither gets its disk key nor reports a healthy Pi.
func offsiteKeyLines(ctx context.Context, h host.Host, offsite []*config.Host, key, command func(string) string) ([]byte, error) {
	var b bytes.Buffer
	for _, o := range offsite {
		if _, err := h.Lstat(ctx, layout.RevokedMarker(o.Name)); err == nil {
			continue
		}
		pub, err := h.ReadFile(ctx, key(o.Name)+".pub")
		if host.IsNotExist(err) {
			return nil, steps.ErrNotYet
		}
		if err != nil {
			return nil, err
		}
		line, err := restrictedLine(o.Address, command(o.Name), pub)
		if err != nil {
			return nil, fmt.Errorf("%s.pub: %w", key(o.Name), err)
		}
		b.Write(line)
	}
	return b.Bytes(), nil
}

// WatchdogReportCommand is the forced command of an offsite host's report key.
func WatchdogReportCommand(offsite string) string {
	return layout.Binary + " job " + layout.JobCLI(layout.JobWatchdogReport) + " " + offsite
}

// ReportKeyLine lets an offsite host's report key run the watchdog-report
// command for that host, from its address, and nothing else.
func ReportKeyLine(from, command string, pub []byte) ([]byte, error) {
	return restrictedLine(from, command, pub)
}

// Revoke returns the kill switch for offsite host name in two phases, run
// one after the other: the marker, then the server's authorized_keys block,
// which reads the marker and drops that host's line.
func Revoke(cfg *config.Config, name string, when time.Time) (phases [][]plan.Step, server *config.Host, err error) {
	o, ok := cfg.Host(name)
	if !ok || o.Role != config.RoleOffsite || o.Unlock == nil {
		return nil, nil, fmt.Errorf("%q is not an offsite host with an unlock server in %s", name, cfg.File)
	}
	server, ok = cfg.Host(o.Unlock.Server)
	if !ok {
		return nil, nil, fmt.Errorf("unlock server %q of %s is not in the config", o.Unlock.Server, name)
	}
	// No local machine: the pull guard lines keep the keys already there.
	all, err := sshSteps(cfg, server, nil)
	if err != nil {
		return nil, nil, err
	}
	marker := fmt.Sprintf("# %s\nunlock of %s revoked %s; delete this file to allow it again\n", layout.Managed(), name, when.UTC().Format(time.RFC3339))
	mark := []plan.Step{
		&steps.Dir{Path: layout.RevokedDir, Mode: 0o755, Owner: host.Root},
		&steps.Secret{Path: layout.RevokedMarker(name), Mode: 0o644, Owner: host.Root, What: "revocation marker",
			Generate: func() ([]byte, error) { return []byte(marker), nil }},
	}
	var drop []plan.Step
	for _, st := range all {
		if b, ok := st.(*steps.Block); ok && b.Path == layout.AuthorizedKeys {
			drop = append(drop, b)
		}
	}
	return [][]plan.Step{mark, drop}, server, nil
}

// ServeKeyLine lets an offsite host's unlock key run the serve-key command
// for that host, from its address, and nothing else.
func ServeKeyLine(from, command string, pub []byte) ([]byte, error) {
	return restrictedLine(from, command, pub)
}

// PullKeyComment ends an archive host's pull key in its .pub file. The
// live server authorizes a key read from the machine borgkit runs on only
// when it carries this comment: a server's own push key lives at the same
// path and must never be taken for an archive's.
func PullKeyComment(archive string) string { return "borgkit-pull@" + archive }

// PullGuardCommand is the forced command of an archive's pull key.
func PullGuardCommand(archive string) string { return layout.Binary + " job pull-guard " + archive }

// PullGuardLine lets an archive host's pull key run the pull guard for that
// host, from its address, and nothing else (no shell, pty or forwarding).
func PullGuardLine(from, command string, pub []byte) ([]byte, error) {
	return restrictedLine(from, command, pub)
}

// pullGuardLines authorize each archive's pull key that can be found for
// the pull guard; pullKeyCheck reports the ones that cannot.
func pullGuardLines(ctx context.Context, h, local host.Host, archives []*config.Host) ([]byte, error) {
	var b bytes.Buffer
	for _, a := range archives {
		pub, err := pullKey(ctx, h, local, a)
		if err != nil {
			return nil, err
		}
		if pub == nil {
			continue
		}
		line, err := PullGuardLine(a.Address, PullGuardCommand(a.Name), pub)
		if err != nil {
			return nil, fmt.Errorf("pull key of %s: %w", a.Name, err)
		}
		b.Write(line)
	}
	return b.Bytes(), nil
}

// pullKey is archive a's pull public key: read from the machine borgkit
// runs on when that is a (the live server is provisioned from its archive,
// as the Pi is from its server), else the key already authorized in h's
// borgkit block, so that provisioning the live server from itself, or a
// revocation, keeps the pull working. nil when neither has it.
func pullKey(ctx context.Context, h, local host.Host, a *config.Host) ([]byte, error) {
	if local != nil {
		b, err := local.ReadFile(ctx, layout.SSHKey+".pub")
		switch {
		case err == nil:
			if _, comment, _, _, perr := ssh.ParseAuthorizedKey(b); perr == nil && comment == PullKeyComment(a.Name) {
				return b, nil
			}
		case !host.IsNotExist(err):
			return nil, fmt.Errorf("%s.pub on %s: %w", layout.SSHKey, local.Name(), err)
		}
	}
	ak, err := h.ReadFile(ctx, layout.AuthorizedKeys)
	if host.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	want := fmt.Sprintf("command=%q", PullGuardCommand(a.Name))
	inside := false
	for _, l := range strings.Split(string(ak), "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, steps.BlockBegin):
			inside = true
		case t == steps.BlockEnd:
			inside = false
		case inside:
			key, comment, opts, _, err := ssh.ParseAuthorizedKey([]byte(t))
			if err == nil && slices.Contains(opts, want) {
				return []byte(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + " " + comment), nil
			}
		}
	}
	return nil, nil
}

// pullKeyCheck puts in the plan an archive whose pull cannot be authorized
// from here: its key is neither on this machine nor already in the block.
// It changes nothing itself; the authorized_keys block does.
type pullKeyCheck struct {
	archive, server *config.Host
	local           host.Host
}

func (p *pullKeyCheck) ID() string { return "pull-key." + p.archive.Name }

func (p *pullKeyCheck) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	pub, err := pullKey(ctx, h, p.local, p.archive)
	if err != nil {
		return plan.Check{}, err
	}
	if pub == nil {
		a := p.archive.Name
		return plan.Skipped(fmt.Sprintf("%s's pull key is not on this machine: provision %s, then run `borgkit provision %s` on %s to authorize it for the pull guard",
			a, a, p.server.Name, a)), nil
	}
	return plan.Satisfied(), nil
}

func (p *pullKeyCheck) Apply(context.Context, host.Host) error { return nil }

// hostClash finds a Host line outside borgkit's block that already defines
// one of our aliases: ssh uses the first match, so ours would be ignored.
func hostClash(outside []string, aliases map[string]bool) string {
	for _, l := range outside {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.EqualFold(f[0], "host") {
			continue
		}
		for _, a := range f[1:] {
			if aliases[a] {
				return fmt.Sprintf("%s already has a Host entry for %s outside the borgkit block; remove it or rename the host", layout.SSHConfig, a)
			}
		}
	}
	return ""
}
