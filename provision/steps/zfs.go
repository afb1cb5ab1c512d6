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
}

func (z *ZFSDataset) ID() string { return "zfs." + z.Name }

func (z *ZFSDataset) names() []string {
	return slices.Sorted(maps.Keys(z.Properties))
}

// current reads the properties with zfs get -H -p; exists is false when the
// dataset is not there.
func (z *ZFSDataset) current(ctx context.Context, h host.Host) (map[string]string, bool, error) {
	props := z.names()
	if len(props) == 0 {
		props = []string{"type"}
	}
	res, err := h.Run(ctx, tools.Cmd(tools.Zfs, "get", "-H", "-p", "-o", "property,value", strings.Join(props, ","), z.Name))
	if err != nil {
		if strings.Contains(string(res.Stderr), "does not exist") {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("zfs get %s: %w", z.Name, err)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		if k, v, ok := strings.Cut(l, "\t"); ok {
			got[k] = v
		}
	}
	return got, true, nil
}

// differs lists property=value settings that are not in force; -p prints
// sizes in bytes, so "1M" is compared as 1048576.
func (z *ZFSDataset) differs(got map[string]string) (set []string, fixed []string) {
	for _, k := range z.names() {
		want := z.Properties[k]
		if got[k] == want || got[k] == sizeBytes(want) {
			continue
		}
		if createOnly[k] {
			fixed = append(fixed, fmt.Sprintf("%s is %q, config wants %q", k, got[k], want))
			continue
		}
		set = append(set, k+"="+want)
	}
	return set, fixed
}

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
	if !h.Live() {
		return plan.Skipped("--root does not touch ZFS pools"), nil
	}
	got, exists, err := z.current(ctx, h)
	if err != nil {
		return plan.Check{}, err
	}
	if !exists {
		return plan.Creates("zfs " + strings.Join(z.createArgs(), " ")), nil
	}
	set, fixed := z.differs(got)
	if len(fixed) > 0 {
		return plan.Conflicts(fmt.Sprintf("%s: %s; these are fixed at creation", z.Name, strings.Join(fixed, "; "))), nil
	}
	if len(set) > 0 {
		return plan.Modifies("zfs set " + strings.Join(set, " ")), nil
	}
	return plan.Satisfied(), nil
}

func (z *ZFSDataset) Apply(ctx context.Context, h host.Host) error {
	got, exists, err := z.current(ctx, h)
	if err != nil {
		return err
	}
	if !exists {
		if _, err := h.Run(ctx, tools.Cmd(tools.Zfs, z.createArgs()...)); err != nil {
			return fmt.Errorf("zfs create %s: %w", z.Name, err)
		}
		return nil
	}
	set, _ := z.differs(got)
	if _, err := h.Run(ctx, tools.Cmd(tools.Zfs, append(append([]string{"set"}, set...), z.Name)...)); err != nil {
		return fmt.Errorf("zfs set %s: %w", z.Name, err)
	}
	return nil
}
