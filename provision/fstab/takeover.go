package fstab

import (
	"context"
	"fmt"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/tools"
)

// TakenMarker starts the comment borgkit leaves above an fstab line it took
// over into its block.
const TakenMarker = "# borgkit took over the next line"

// Mount is a filesystem borgkit's block mounts: Source as the block writes
// it (UUID=… for a disk, the share for CIFS).
type Mount struct {
	Source, Target string
	Share          bool
}

// TakeOver takes a hand-built setup's fstab lines into borgkit's block, for
// a steps.Block: a line outside the block mounting the very filesystem the
// block mounts at the same mountpoint (the same UUID, a device or label
// blkid says carries it, the same share) is commented out under a marker
// saying how to undo it. Two lines for one mountpoint refuse the change:
// boot order would decide which one mounts. A line mounting anything else
// there is left for Vet to refuse.
func TakeOver(mounts []Mount) func(ctx context.Context, h host.Host, others []byte) (map[int]string, string, error) {
	want := map[string]Mount{}
	for _, m := range mounts {
		want[Mountpoint(m.Target)] = m
	}
	return func(ctx context.Context, h host.Host, others []byte) (map[int]string, string, error) {
		repl := map[int]string{}
		seen := map[string]int{}
		for _, e := range Parse(others) {
			if e.Broken != "" {
				continue // mount(8) skips it; Vet warns
			}
			target := Mountpoint(e.Target)
			m, ok := want[target]
			if !ok {
				continue
			}
			if first, ok := seen[target]; ok {
				return nil, fmt.Sprintf("/etc/fstab has two lines for %s (lines %d and %d) outside the borgkit block: boot order would decide which one mounts; remove one by hand, then provision again", target, first, e.Line), nil
			}
			seen[target] = e.Line
			same, err := sameFilesystem(ctx, h, e.Source, m)
			if err != nil {
				return nil, "", err
			}
			if same {
				repl[e.Line] = fmt.Sprintf("%s (the borgkit block below mounts %s now); to undo, delete that block line and uncomment it\n#%s", TakenMarker, target, e.Text)
			}
		}
		return repl, "", nil
	}
}

// sameFilesystem reports whether an fstab source names m's filesystem.
func sameFilesystem(ctx context.Context, h host.Host, source string, m Mount) (bool, error) {
	if m.Share {
		return source == m.Source, nil
	}
	want := strings.ToLower(strings.TrimPrefix(m.Source, "UUID="))
	if u, ok := strings.CutPrefix(source, "UUID="); ok {
		return strings.ToLower(u) == want, nil
	}
	if !h.Live() {
		return false, nil // no devices under --root to ask
	}
	args := []string{"-s", "UUID", "-o", "value", source}
	if strings.Contains(source, "=") { // LABEL=, PARTUUID=: a token blkid looks up
		args = []string{"-t", source, "-s", "UUID", "-o", "value"}
	}
	res, err := h.Run(ctx, host.Command(tools.Blkid, args...))
	if err != nil {
		if res.ExitCode == 2 { // nothing found: an unplugged disk is not ours to judge
			return false, nil
		}
		return false, fmt.Errorf("blkid %s: %w", source, err)
	}
	return strings.ToLower(strings.TrimSpace(string(res.Stdout))) == want, nil
}
