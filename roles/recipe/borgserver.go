package recipe

import (
	"fmt"
	"path"
	"strings"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
)

// borgServer serves borg repos to many clients: one system user, one
// directory per client that only the user may enter, and one
// authorized_keys line per client whose only command is borg serve,
// confined to that directory, append-only and within a quota. A client
// can add archives but not remove history, and cannot reach another
// client's repo. Nothing here prunes or compacts: that is the server
// owner's, with append-only off (see the README).
func borgServer(cfg *config.Config, h *config.Host, o Options) ([]plan.Step, error) {
	s, err := base(h, o)
	if err != nil {
		return nil, err
	}
	b := h.BorgServer
	if b == nil {
		return nil, fmt.Errorf("host %s: a borg-server host needs a borg_server block", h.Name)
	}
	user := b.UserOrDefault()
	keys, err := BorgServerKeys(b)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	s = append([]plan.Step{packages(cfg, h, "borgbackup")}, s...)
	sshDir := path.Join(layout.BorgServeHome, ".ssh")
	s = append(s,
		&steps.SystemUser{Name: user, Home: layout.BorgServeHome, Shell: layout.BorgServeShell, Comment: "borgkit borg serve"},
		// sshd reads the keys as the user, who must not change them.
		&steps.Dir{Path: layout.BorgServeHome, Mode: 0o755, Owner: host.Root},
		&steps.Dir{Path: sshDir, Mode: 0o755, Owner: host.Root},
		&steps.File{Path: path.Join(sshDir, "authorized_keys"), Content: keys, Mode: 0o644, Owner: host.Root, Marker: layout.Marker},
		// borg serve's own config (security dir) and cache.
		&steps.Dir{Path: path.Join(layout.BorgServeHome, ".config"), Mode: 0o700, User: user},
		&steps.Dir{Path: path.Join(layout.BorgServeHome, ".cache"), Mode: 0o700, User: user},
		// The root is root's: the user cannot rename or remove a client's
		// directory, only write inside those it owns.
		&steps.Dir{Path: b.Root, Mode: 0o755, Owner: host.Root},
	)
	for _, c := range b.Clients {
		s = append(s, &steps.Dir{Path: b.Dir(c), Mode: 0o700, User: user})
	}
	return finish(cfg, h, s, o)
}

// BorgServerKeys is the borg user's authorized_keys: a marked first line,
// then one forced-command line per client, in config order.
func BorgServerKeys(b *config.BorgServer) ([]byte, error) {
	var out strings.Builder
	out.WriteString("# " + layout.Managed() + "\n")
	for _, c := range b.Clients {
		line, err := b.AuthorizedKeysLine(c)
		if err != nil {
			return nil, err
		}
		out.WriteString(line + "\n")
	}
	return []byte(out.String()), nil
}
