package recipe

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/templates"
)

// archive is the second seed's ZFS backup server: datasets with their
// properties, root-only, an encrypted borg repo on one of them archived
// from a snapshot, scrubs and SMART tests, and a syncoid pull.
func archive(cfg *config.Config, h *config.Host, o Options) ([]plan.Step, error) {
	s, err := base(h, o)
	if err != nil {
		return nil, err
	}
	s = append([]plan.Step{archivePackages(cfg, h)}, s...)
	s = append(s, &steps.Dir{Path: layout.KeysDir, Mode: 0o700, Owner: host.Root})
	for i := range h.Datasets {
		d := &h.Datasets[i]
		if key, gen := zfsKey(d); key != "" {
			s = append(s, &steps.Secret{Path: key, Mode: 0o400, Owner: host.Root,
				What: "ZFS encryption key of " + d.Name, Generate: gen})
		}
		// The pull target is made by syncoid's first receive: it refuses a
		// target that exists without the source's snapshots.
		received := h.Pull != nil && d.Name == h.Pull.Target
		s = append(s, &steps.ZFSDataset{Name: d.Name, Properties: d.Properties, Received: received, Mountpoint: datasetMount(d)})
		mode, err := strconv.ParseUint(d.ModeOrDefault(), 8, 32)
		if err != nil {
			return nil, fmt.Errorf("dataset %s mode %q: %w", d.Name, d.ModeOrDefault(), err)
		}
		s = append(s, &steps.Dir{Path: datasetMount(d), Mode: fsMode(mode), Owner: host.Root})
	}
	s = append(s, withDisks(repoSteps(h, o.Records), s)...)
	s = append(s, zfsKeyUnit(h)...)
	if h.Pull != nil {
		// The pull key; a live server of this file authorizes it for its
		// pull guard when provisioned from here (PullKeyComment).
		s = append(s, &steps.Dir{Path: layout.RootSSHDir, Mode: 0o700, Owner: host.Root},
			&steps.SSHKey{Path: layout.SSHKey, Comment: PullKeyComment(h.Name)})
		if live, ok := cfg.PullServer(h); ok {
			if kh := knownHostLines([]*config.Host{live}); len(kh) > 0 {
				s = append(s, &steps.Block{Path: layout.KnownHosts, Lines: kh, Mode: 0o600, Owner: host.Root, Note: "(" + layout.Managed() + ")"})
			}
		}
	}
	return finish(cfg, h, s, o)
}

func archivePackages(cfg *config.Config, h *config.Host) *steps.Packages {
	p := []string{"borgbackup", "zfsutils-linux", "smartmontools"}
	if h.Pull != nil {
		p = append(p, "sanoid", "openssh-client")
	}
	return packages(cfg, h, p...)
}

// zfsKeyUnit opens the encrypted datasets at every boot (LoadZFSKeys), a
// systemd unit whatever the host's schedule mode: it belongs to the boot,
// not to a schedule.
func zfsKeyUnit(h *config.Host) []plan.Step {
	keyed := false
	for i := range h.Datasets {
		if k, _ := zfsKey(&h.Datasets[i]); k != "" {
			keyed = true
		}
	}
	if !keyed {
		return nil
	}
	b, err := templates.Render("zfs-load-key-service", map[string]any{"Managed": layout.Managed(), "Host": h.Name, "Binary": layout.Binary})
	if err != nil {
		panic(err) // an embedded template with fixed data
	}
	return []plan.Step{managedFile(layout.UnitPath("zfs-load-key", "service"), b, 0o644),
		&steps.Timers{Name: "zfs-load-key", Units: []string{"borgkit-zfs-load-key.service"}}}
}

// datasetMount is where a dataset is mounted: its mountpoint property, or
// ZFS's default below the pool's root.
func datasetMount(d *config.Dataset) string {
	if mp := d.Properties["mountpoint"]; strings.HasPrefix(mp, "/") {
		return mp
	}
	return "/" + d.Name
}

// zfsKey is the keyfile a dataset's keylocation=file:// names, with a
// generator for its keyformat; "" when ZFS prompts or uses no key.
func zfsKey(d *config.Dataset) (string, func() ([]byte, error)) {
	file := d.KeyFile()
	if file == "" {
		return "", nil
	}
	switch d.Properties["keyformat"] {
	case "raw":
		return file, steps.Keyfile(32)
	case "hex":
		return file, func() ([]byte, error) {
			b, err := steps.Keyfile(32)()
			return []byte(hex.EncodeToString(b)), err
		}
	}
	return "", nil
}
