package jobs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/borgkit/borgkit/provision/config"
)

// ServeKey writes the LUKS keyfile of offsite host name to w. It runs as the
// forced command of that host's unlock key, so name comes from
// authorized_keys, never from the client; it still checks that name is an
// offsite host unlocked by this server and not revoked.
func ServeKey(_ context.Context, cfg *config.Config, self, name, revokedDir string, w io.Writer) error {
	h, ok := cfg.Host(name)
	if !ok || h.Role != config.RoleOffsite || h.Unlock == nil || h.Unlock.Server != self {
		return fmt.Errorf("serve-key %s: not an offsite host unlocked by %s", name, self)
	}
	if _, err := os.Stat(filepath.Join(revokedDir, name)); err == nil {
		return fmt.Errorf("serve-key %s: unlock revoked (%s)", name, filepath.Join(revokedDir, name))
	}
	for i := range h.Disks {
		d := &h.Disks[i]
		if d.LUKS == nil || d.LUKS.KeyHost != self {
			continue
		}
		key, err := os.ReadFile(cfg.LUKSKeyfile(h, d))
		if err != nil {
			return fmt.Errorf("serve-key %s: %w", name, err)
		}
		_, err = w.Write(key)
		return err
	}
	return fmt.Errorf("serve-key %s: no LUKS disk of %s has its key on %s", name, name, self)
}
