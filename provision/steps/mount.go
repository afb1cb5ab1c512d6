package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// Mount mounts a local disk's fstab entry during provisioning, so that the
// repos on it are initialised in the same run instead of waiting for a
// reboot. A disk that is not attached is skipped, never failed: nofail in
// fstab mounts it at the next boot, and the next provision finishes the
// repos.
type Mount struct {
	Target string
	UUID   string
	Fstab  string // default /etc/fstab
	// pending is what the last Check found: the disk is attached and this
	// run mounts it. Checks run in plan order, so steps after this one
	// (BorgRepo.Disk) read it during the same check pass.
	pending bool
}

func (m *Mount) ID() string { return "mount." + m.Target }

// MountsThisRun says the last Check found the disk attached and unmounted.
func (m *Mount) MountsThisRun() bool { return m.pending }

func (m *Mount) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	m.pending = false
	if !h.Live() {
		return plan.Skipped("a tree under --root has no mounts"), nil
	}
	uuid, mounted, err := mountedUUID(ctx, h, m.Target)
	if err != nil {
		return plan.Check{}, err
	}
	if mounted {
		if !strings.EqualFold(uuid, m.UUID) {
			return plan.Conflicts(fmt.Sprintf("%s has filesystem UUID=%s mounted, not the configured UUID=%s", m.Target, uuid, m.UUID)), nil
		}
		return plan.Satisfied(), nil
	}
	// blkid probes the devices itself: /dev/disk/by-uuid needs udev, which
	// a container or a minimal system may not run.
	if res, err := h.Run(ctx, host.Command(tools.Blkid, "-U", m.UUID)); err != nil {
		if res.ExitCode == 2 { // no such filesystem
			return plan.Skipped(fmt.Sprintf("UUID=%s is not attached; nofail mounts it at boot once it is", m.UUID)), nil
		}
		return plan.Check{}, fmt.Errorf("blkid -U %s: %w", m.UUID, err)
	}
	m.pending = true
	return plan.Creates(fmt.Sprintf("mount UUID=%s on %s (from fstab)", m.UUID, m.Target)), nil
}

// Apply mounts through fstab, which an earlier step of the plan wrote, so
// the options are the ones the boot will use.
func (m *Mount) Apply(ctx context.Context, h host.Host) error {
	fstab := m.Fstab
	if fstab == "" {
		fstab = "/etc/fstab"
	}
	if _, err := h.Run(ctx, host.Command(tools.Mount, "--fstab", h.Path(fstab), m.Target)); err != nil {
		return fmt.Errorf("mount %s: %w", m.Target, err)
	}
	return nil
}

// Reads is findmnt's answer, which a survey can give (host.Want.Run).
func (m *Mount) Reads() []host.Want { return []host.Want{{Run: findmntArgv(m.Target)}} }

func findmntArgv(target string) []string {
	return tools.Argv(tools.Findmnt, "-n", "-o", "UUID", "--mountpoint", target)
}

// mountedUUID says whether target is a mountpoint and the UUID of the
// filesystem there, from the kernel's mount table via findmnt.
func mountedUUID(ctx context.Context, h host.Host, target string) (string, bool, error) {
	res, err := h.Run(ctx, host.Cmd{Argv: findmntArgv(target)})
	if err != nil {
		if res.ExitCode == 1 { // nothing mounted there
			return "", false, nil
		}
		return "", false, fmt.Errorf("findmnt %s: %w", target, err)
	}
	return strings.TrimSpace(string(res.Stdout)), true, nil
}
