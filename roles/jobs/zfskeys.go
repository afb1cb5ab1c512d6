package jobs

import (
	"context"
	"slices"
	"strings"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/roles/jobs/alert"
)

// LoadZFSKeys opens the host's encrypted datasets after a boot: it loads
// the keys that live in keyfiles and mounts what is still unmounted.
// Debian masks zfs-load-key.service and its zfs-mount.service mounts only
// datasets whose keys are loaded, so without this an unattended archive
// host would come up with its repo locked away.
func LoadZFSKeys(ctx context.Context, e *Env) error {
	return e.archiveJob(ctx, layout.JobZFSLoadKey, func(ctx context.Context) []alert.Section {
		var secs []alert.Section
		// Parents sort before their children, so they mount first.
		ds := slices.SortedFunc(slices.Values(e.Host.Datasets), func(a, b config.Dataset) int { return strings.Compare(a.Name, b.Name) })
		for _, d := range ds {
			got, ok, sec := e.zfsState(ctx, d.Name, "keystatus")
			if !ok {
				secs = append(secs, sec...)
				continue
			}
			if got["keystatus"] != "unavailable" {
				continue
			}
			if !strings.HasPrefix(d.Properties["keylocation"], "file://") {
				// Not an encryption root with a keyfile: its root loads it,
				// or a person types the passphrase.
				e.logf("%s: key not loaded and not in a keyfile of this config; left locked", d.Name)
				continue
			}
			res, err := e.run(ctx, host.Command(tools.Zfs, "load-key", d.Name))
			secs = append(secs, section("Load the key of "+d.Name, res, err, ""))
		}
		for _, d := range ds {
			got, ok, sec := e.zfsState(ctx, d.Name, "canmount", "keystatus", "mounted")
			if !ok {
				secs = append(secs, sec...)
				continue
			}
			if got["mounted"] != "no" || got["canmount"] != "on" || got["keystatus"] == "unavailable" {
				continue
			}
			res, err := e.run(ctx, host.Command(tools.Zfs, "mount", d.Name))
			secs = append(secs, section("Mount "+d.Name, res, err, ""))
		}
		return secs
	})
}

// zfsState reads properties of dataset; ok is false with nothing to report
// when the dataset does not exist (a pull target before its first
// receive), and false with a failed section when zfs fails otherwise.
func (e *Env) zfsState(ctx context.Context, dataset string, props ...string) (map[string]string, bool, []alert.Section) {
	res, err := e.run(ctx, host.Command(tools.Zfs, "get", "-H", "-o", "property,value", strings.Join(props, ","), dataset))
	if err != nil {
		if strings.Contains(string(res.Stderr), "does not exist") {
			return nil, false, nil
		}
		return nil, false, []alert.Section{section("zfs get "+dataset, res, err, "")}
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		if k, v, ok := strings.Cut(l, "\t"); ok {
			got[k] = v
		}
	}
	return got, true, nil
}
