package steps

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// MirrorContents keeps a mirror directory (the NAS path, the offsite
// mirror root) a directory of borg repos: each entry named like a
// mirrored repo must be that very repo (same id), and nothing but borg
// repos may be there, so that a sync's rsync --delete can never overwrite
// other data or another repository. An adopted mirror passes as it is;
// it makes no change of its own.
type MirrorContents struct {
	Root string
	// Mountpoint is the filesystem Root lives on: while it is not mounted
	// (a share not up yet) the empty mountpoint says nothing.
	Mountpoint string
	// Repos are the repos mirrored into Root: name → repository id ("" when
	// the source repo does not exist yet).
	// h is the host the mirror is on; the repos may be read elsewhere.
	Repos func(ctx context.Context, h host.Host) (map[string]string, error)
	// Names are the names Repos gives, known without reading anything:
	// the survey reads their configs with the listing.
	Names []string
}

func (m *MirrorContents) ID() string { return "mirror-contents." + m.Root }

// mirrorHousekeeping are entries a mirror may hold besides repos: the
// heartbeat directory, the ext4 root's lost+found, and the offsite host's
// snapshots (beside the mirror, inside it when the mirror is the disk's root).
var mirrorHousekeeping = map[string]bool{layout.HeartbeatDir: true, layout.LostFound: true, layout.SnapshotDir: true}

// Reads asks the survey for the mirror's listing and its repos' configs:
// on a mirror as it should be the check then needs nothing else of the
// host but whether it is mounted.
func (m *MirrorContents) Reads() []host.Want {
	w := []host.Want{{Path: m.Root, List: true}}
	for _, name := range m.Names {
		w = append(w, host.Want{Path: path.Join(m.Root, name, "config"), Content: true})
	}
	return w
}

func (m *MirrorContents) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	// Whether the filesystem is mounted and what the directory holds are
	// asked at once (over SSH they share their round trips); the listing
	// counts only once the mount is known.
	unmounted := make(chan error, 1)
	if h.Live() && m.Mountpoint != "" {
		go func() {
			_, err := h.Run(ctx, host.Command(tools.Mountpoint, "-q", m.Mountpoint))
			unmounted <- err
		}()
	} else {
		unmounted <- nil
	}
	ents, err := h.ReadDir(ctx, m.Root)
	if err != nil {
		if <-unmounted != nil {
			return plan.Skipped(m.Mountpoint + " is not mounted; its mirror is checked once it is"), nil
		}
		if host.IsNotExist(err) {
			return plan.Satisfied(), nil
		}
		return plan.Check{}, fmt.Errorf("list %s: %w", m.Root, err)
	}
	var foreign, dirs []string
	for _, e := range ents {
		switch {
		case mirrorHousekeeping[e.Name]:
		case e.IsDir():
			dirs = append(dirs, e.Name)
		default:
			foreign = append(foreign, e.Name)
		}
	}
	// Each repo's config at once, while the mount test runs.
	configs := make([]*borg.RepoConfig, len(dirs))
	var wg sync.WaitGroup
	for i, name := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cb, err := h.ReadFile(ctx, path.Join(m.Root, name, "config"))
			if rc, perr := borg.ParseRepoConfig(cb); err == nil && perr == nil {
				configs[i] = &rc
			}
		}()
	}
	wg.Wait()
	if <-unmounted != nil {
		return plan.Skipped(m.Mountpoint + " is not mounted; its mirror is checked once it is"), nil
	}
	repos, err := m.Repos(ctx, h)
	if err != nil {
		return plan.Check{}, err
	}
	var wrong []string
	for i, name := range dirs {
		rc := configs[i]
		if rc == nil {
			foreign = append(foreign, name+"/")
			continue
		}
		if want, ok := repos[name]; ok && want != "" && want != rc.ID {
			wrong = append(wrong, fmt.Sprintf("%s holds repository %.12s…, not %s's own (%.12s…)", name, rc.ID, name, want))
		}
	}
	sort.Strings(foreign)
	switch {
	case len(wrong) > 0:
		return plan.Conflicts(fmt.Sprintf("mirror %s: %s; a sync would replace it with the source repo: move it away first", m.Root, strings.Join(wrong, "; "))), nil
	case len(foreign) > 0:
		return plan.Conflicts(fmt.Sprintf("mirror %s holds %s, which %s no borg repository; borgkit mirrors into a directory of repos only, so that rsync --delete can never reach anything else: move %s elsewhere, or mirror to another directory",
			m.Root, strings.Join(foreign, ", "), isAre(len(foreign)), itThem(len(foreign)))), nil
	}
	return plan.Satisfied(), nil
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func itThem(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

func (m *MirrorContents) Apply(context.Context, host.Host) error { return nil }

// LUKSHeaderBackup keeps a copy of a LUKS header on the server, for the
// recovery bundle: a disk formatted by borgkit gets one when it is
// formatted, an adopted one (formatted by hand) here. Without it a bad
// sector in the header makes the disk unreadable even with the key.
type LUKSHeaderBackup struct {
	Device string
	// Have says whether the server already keeps one.
	Have func(ctx context.Context) (bool, error)
	Save func(ctx context.Context, img []byte) error
	// Where names the copy for the plan ("john-ai:/etc/borgkit/keys/...").
	Where string
}

func (l *LUKSHeaderBackup) ID() string { return "luks-header." + l.Device }

func (l *LUKSHeaderBackup) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	if !h.Live() {
		return plan.Skipped("--root does not touch block devices"), nil
	}
	ok, err := l.Have(ctx)
	if err != nil {
		return plan.Check{}, err
	}
	if ok {
		return plan.Satisfied(), nil
	}
	return plan.Creates("take a LUKS header backup of " + l.Device + " into " + l.Where), nil
}

func (l *LUKSHeaderBackup) Apply(ctx context.Context, h host.Host) error {
	if ok, err := l.Have(ctx); err != nil || ok {
		return err // the format step of this run took it
	}
	img, err := headerBackup(ctx, h, l.Device)
	if err != nil {
		return err
	}
	return l.Save(ctx, img)
}
