package roles

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/templates"
)

// Files of the server's SSH side.
const (
	SSHConfig      = "/root/.ssh/config"
	KnownHosts     = "/root/.ssh/known_hosts"
	AuthorizedKeys = "/root/.ssh/authorized_keys"
)

// UnlockKey is where the server keeps the key pair an offsite host uses to
// fetch its LUKS key at boot. The pair is made here, where the LUKS key
// already lives, and the private half is installed on the offsite host by
// its own provisioning; the public half is authorized below, restricted to
// the serve-key job.
func UnlockKey(offsite string) string { return path.Join(KeysDir, offsite+"-unlock_ed25519") }

// sshSteps are the server's push key, its ssh config and known_hosts for
// the mirror targets, and the key-serving side of every offsite unlock.
func sshSteps(cfg *config.Config, h *config.Host) ([]plan.Step, error) {
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
	if len(targets) == 0 && len(unlocks) == 0 {
		return nil, nil
	}
	s := []plan.Step{&steps.Dir{Path: "/root/.ssh", Mode: 0o700, Owner: host.Root}}
	if len(targets) > 0 {
		s = append(s, &steps.SSHKey{Path: SSHKey, Comment: "borgkit@" + h.Name})
		cfgLines, err := templates.Render("ssh-config", map[string]any{"Hosts": sshHosts(targets), "Identity": SSHKey})
		if err != nil {
			return nil, err
		}
		aliases := map[string]bool{}
		for _, t := range targets {
			aliases[t.Name] = true
		}
		s = append(s, &steps.Block{Path: SSHConfig, Lines: cfgLines, Mode: 0o600, Owner: host.Root,
			Note: "(" + Managed() + ")", Outside: func(l []string) string { return hostClash(l, aliases) }})
		if kh := knownHostLines(targets); len(kh) > 0 {
			s = append(s, &steps.Block{Path: KnownHosts, Lines: kh, Mode: 0o600, Owner: host.Root, Note: "(" + Managed() + ")"})
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
		s = append(s, &steps.SSHKey{Path: UnlockKey(o.Name), Comment: "borgkit-unlock@" + o.Name})
	}
	if len(unlocks) > 0 {
		s = append(s, &steps.Block{Path: AuthorizedKeys, Mode: 0o600, Owner: host.Root, Note: "(" + Managed() + ")",
			Pending:   "authorize the unlock keys generated above, each limited to serve-key",
			LinesFrom: func(ctx context.Context, hh host.Host) ([]byte, error) { return serveKeyLines(ctx, hh, unlocks) }})
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

func sshHosts(ts []*config.Host) []sshHost {
	var out []sshHost
	for _, t := range ts {
		out = append(out, sshHost{Alias: t.Name, Address: t.Address, User: t.SSH.UserOrDefault(), Port: t.SSH.PortOrDefault()})
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
	var b bytes.Buffer
	for _, o := range offsite {
		// A revoked host stays revoked: provisioning never re-authorizes it.
		if _, err := h.Lstat(ctx, RevokedMarker(o.Name)); err == nil {
			continue
		}
		pub, err := h.ReadFile(ctx, UnlockKey(o.Name)+".pub")
		if host.IsNotExist(err) {
			return nil, steps.ErrNotYet
		}
		if err != nil {
			return nil, err
		}
		line, err := ServeKeyLine(o.Address, Binary+" job serve-key "+o.Name, pub)
		if err != nil {
			return nil, fmt.Errorf("%s.pub: %w", UnlockKey(o.Name), err)
		}
		b.Write(line)
	}
	return b.Bytes(), nil
}

// RevokedMarker is the file whose presence revokes an offsite host's unlock.
func RevokedMarker(offsite string) string { return path.Join(jobs.RevokedDir, offsite) }

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
	all, err := sshSteps(cfg, server)
	if err != nil {
		return nil, nil, err
	}
	marker := fmt.Sprintf("# %s\nunlock of %s revoked %s; delete this file to allow it again\n", Managed(), name, when.UTC().Format(time.RFC3339))
	mark := []plan.Step{
		&steps.Dir{Path: jobs.RevokedDir, Mode: 0o755, Owner: host.Root},
		&steps.Secret{Path: RevokedMarker(name), Mode: 0o644, Owner: host.Root, What: "revocation marker",
			Generate: func() ([]byte, error) { return []byte(marker), nil }},
	}
	var drop []plan.Step
	for _, st := range all {
		if b, ok := st.(*steps.Block); ok && b.Path == AuthorizedKeys {
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
				return fmt.Sprintf("%s already has a Host entry for %s outside the borgkit block; remove it or rename the host", SSHConfig, a)
			}
		}
	}
	return ""
}
