package steps

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// createOnly are ZFS properties fixed when a dataset is created; a
// different value on an existing dataset needs a new dataset and a copy,
// which borgkit leaves to a person.
var createOnly = map[string]bool{
	"encryption": true, "keyformat": true, "casesensitivity": true,
	"normalization": true, "utf8only": true, "volblocksize": true, "pbkdf2iters": true,
}

// ZFSDataset is a dataset with the properties borgkit keeps set. Only what
// differs is changed; nothing is ever destroyed.
type ZFSDataset struct {
	Name       string
	Properties map[string]string
	// Received datasets are made by the first zfs receive (the syncoid
	// pull), never by borgkit: syncoid refuses to replicate into a target
	// that exists without the source's snapshots. Until then the step is
	// skipped; afterwards its properties are kept like any other's.
	Received bool
	// Mountpoint is where the dataset is mounted, for the steps that need
	// it mounted (BorgRepo.Disk).
	Mountpoint string
	// created is what the last Check found: this run creates the dataset,
	// which zfs create mounts.
	created bool
}

// MountsThisRun says the last Check planned to create the dataset.
func (z *ZFSDataset) MountsThisRun() bool { return z.created }

// stateProps are read beside the configured properties, never set: a
// locked or unmounted dataset hides its files, and anything written to its
// mountpoint then lands on the parent's filesystem.
var stateProps = []string{"canmount", "keystatus", "mounted"}

// zfsProp is one line of zfs get: the value in force and where it comes
// from (local, default, inherited from POOL, received, -).
type zfsProp struct{ value, source string }

func (z *ZFSDataset) ID() string { return "zfs." + z.Name }

func (z *ZFSDataset) names() []string {
	return slices.Sorted(maps.Keys(z.Properties))
}

// current reads the properties with zfs get -H -p; exists is false when the
// dataset is not there.
func (z *ZFSDataset) current(ctx context.Context, h host.Host) (map[string]zfsProp, bool, error) {
	props := slices.Compact(slices.Sorted(slices.Values(append(z.names(), stateProps...))))
	res, err := h.Run(ctx, host.Command(tools.Zfs, "get", "-H", "-p", "-o", "property,value,source", strings.Join(props, ","), z.Name))
	if err != nil {
		if strings.Contains(string(res.Stderr), "does not exist") {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("zfs get %s: %w", z.Name, err)
	}
	got := map[string]zfsProp{}
	for _, l := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		if f := strings.SplitN(l, "\t", 3); len(f) == 3 {
			got[f[0]] = zfsProp{value: f[1], source: f[2]}
		}
	}
	return got, true, nil
}

// differs lists property=value settings that are not in force, with what
// is in force now for the plan; -p prints sizes in bytes, so "1M" is
// compared as 1048576. A value in force by inheritance is left alone.
func (z *ZFSDataset) differs(got map[string]zfsProp) (set, now, fixed []string) {
	for _, k := range z.names() {
		want, have := z.Properties[k], got[k]
		if have.value == want || have.value == sizeBytes(want) || k == "encryption" && want == "on" && encrypted(have.value) {
			continue
		}
		if createOnly[k] {
			fixed = append(fixed, fmt.Sprintf("%s is %q, config wants %q", k, have.value, want))
			continue
		}
		set = append(set, k+"="+want)
		now = append(now, fmt.Sprintf("%s=%s (%s)", k, have.value, have.source))
	}
	return set, now, fixed
}

// encrypted reports an encryption value in force that "on" asked for: zfs
// shows the cipher "on" chose (aes-256-gcm since OpenZFS 2.0), never "on".
func encrypted(v string) bool { return v != "off" && v != "-" && v != "" }

func sizeBytes(v string) string {
	if len(v) < 2 {
		return v
	}
	mult := map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}[v[len(v)-1]]
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if mult == 0 || err != nil {
		return v
	}
	return strconv.FormatInt(n*mult, 10)
}

func (z *ZFSDataset) createArgs() []string {
	args := []string{"create", "-p"}
	for _, k := range z.names() {
		args = append(args, "-o", k+"="+z.Properties[k])
	}
	return append(args, z.Name)
}

func (z *ZFSDataset) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	z.created = false
	if !h.Live() {
		return plan.Skipped("--root does not touch ZFS pools"), nil
	}
	got, exists, err := z.current(ctx, h)
	if err != nil {
		return plan.Check{}, err
	}
	if exists && !z.Received {
		if why := unavailable(z.Name, got); why != "" {
			return plan.Conflicts(why), nil
		}
	}
	if !exists {
		if z.Received {
			return plan.Skipped(z.Name + " is made by the first pull (zfs receive); syncoid would refuse a target borgkit created"), nil
		}
		if z.Properties["keylocation"] == "prompt" {
			return plan.Conflicts(fmt.Sprintf("%s asks for its passphrase at a prompt (keylocation=prompt), which borgkit cannot type: run `zfs %s` yourself, enter the passphrase, and provision again",
				z.Name, strings.Join(z.createArgs(), " "))), nil
		}
		z.created = true
		return plan.Creates("zfs " + strings.Join(z.createArgs(), " ")), nil
	}
	set, now, fixed := z.differs(got)
	if len(fixed) > 0 {
		return plan.Conflicts(fmt.Sprintf("%s: %s; these are fixed at creation, and borgkit never destroys a dataset to change them", z.Name, strings.Join(fixed, "; "))), nil
	}
	if len(set) > 0 {
		return plan.Modifies("zfs set " + strings.Join(set, " ") + "; now " + strings.Join(now, ", ")), nil
	}
	return plan.Satisfied(), nil
}

// unavailable says why a dataset's files are not where they belong: its
// key is not loaded, or it is not mounted. Provisioning on top would make
// a second, empty repo on the parent's filesystem.
func unavailable(name string, got map[string]zfsProp) string {
	switch {
	case got["keystatus"].value == "unavailable":
		return fmt.Sprintf("%s is locked (keystatus unavailable): its files are not there. Load its key and mount it (`zfs load-key %s`, `zfs mount -a`; "+
			"borgkit-zfs-load-key.service does this at boot), then provision again", name, name)
	case got["mounted"].value == "no" && got["canmount"].value == "on":
		return fmt.Sprintf("%s is not mounted: its files are not there. Mount it (`zfs mount %s`), then provision again", name, name)
	}
	return ""
}

func (z *ZFSDataset) Apply(ctx context.Context, h host.Host) error {
	got, exists, err := z.current(ctx, h)
	if err != nil {
		return err
	}
	if !exists {
		if z.Received {
			return fmt.Errorf("zfs %s: made by the first pull, not by borgkit", z.Name)
		}
		if _, err := h.Run(ctx, host.Command(tools.Zfs, z.createArgs()...)); err != nil {
			return fmt.Errorf("zfs create %s: %w", z.Name, err)
		}
		return nil
	}
	set, _, fixed := z.differs(got)
	if len(fixed) > 0 {
		return fmt.Errorf("zfs %s: %s; fixed at creation", z.Name, strings.Join(fixed, "; "))
	}
	if len(set) == 0 {
		return nil
	}
	if _, err := h.Run(ctx, host.Command(tools.Zfs, append(append([]string{"set"}, set...), z.Name)...)); err != nil {
		return fmt.Errorf("zfs set %s: %w", z.Name, err)
	}
	return nil
}
