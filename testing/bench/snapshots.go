package bench

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	offsite "github.com/borgkit/borgkit/roles/jobs/snapshot"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// SnapshotNights is item 9's simulated month.
const SnapshotNights = 30

// snapshotMonth is item 9: what the offsite snapshots cost on the Pi's
// disk. A month of nights on a simulated calendar, each backing up the
// night's change with the example config's retention and compaction
// policy (the very borg argv of the nightly job, archive times set to the
// simulated night with --timestamp, which borgkit's nightly has no clock
// for), mirroring the repo with the sync job's rsync arguments into a Pi
// mirror, and taking and pruning the Pi's snapshot with borgkit's own
// snapshot code and the example's 7 daily, 4 weekly.
type snapshotMonth struct {
	s      *Site
	ds     Dataset
	nights int
	data   string
	repo   string
	pass   string
	store  *offsite.Store
	// What the month's syncs deleted from the mirror, on disk: segments
	// (compaction) and the rest (each night's replaced index and hints).
	removedSeg, removedOther int64
	usage                    state.SnapshotUsage
	repoBytes                int64
	compactions              int
}

// start is the simulated month's first night: a Monday.
var snapshotStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func snapshotRows(ctx context.Context, s *Site, ds Dataset, logf func(string, ...any)) ([]Row, error) {
	m := &snapshotMonth{s: s, ds: ds, nights: SnapshotNights, data: s.path("snap-data"), repo: s.path("snap-repo"),
		pass: s.path("keys", "snap.pass"), store: offsite.For(layout.MirrorRoot(s.path("snap-pi")), s.path("snap-pi"))}
	if err := m.run(ctx, logf); err != nil {
		return nil, err
	}
	return m.rows(), nil
}

func (m *snapshotMonth) run(ctx context.Context, logf func(string, ...any)) error {
	cfg, err := config.Parse("example", config.Example())
	if err != nil {
		return err
	}
	server, _ := cfg.Host("john-ai")
	pi, _ := cfg.Host("pi")
	keep := cfg.RepoRetention(server, &server.Repos[0])
	compact := cfg.HostCompaction(server)
	ret := pi.SnapshotRetention()
	policy := offsite.Policy{Daily: ret.Daily, Weekly: ret.Weekly, Loc: time.UTC}
	logf("9: a simulated month of %d nights: prune %d daily, %d weekly, %d monthly; compact on %s at threshold %d; snapshots %s",
		m.nights, keep.Daily, keep.Weekly, keep.Monthly, strings.Join(compact.Weekdays, ","), compact.Threshold, policy)
	if err := m.ds.Generate(m.data); err != nil {
		return err
	}
	if err := m.s.initRepo(ctx, m.repo, m.pass); err != nil {
		return err
	}
	if err := os.MkdirAll(m.store.Mirror, 0o700); err != nil {
		return err
	}
	for k := 0; k <= m.nights; k++ {
		night := snapshotStart.AddDate(0, 0, k)
		if k > 0 {
			if _, err := m.ds.Night(m.data, k); err != nil {
				return err
			}
		}
		name := layout.ArchivePrefix + night.Format("2006-01-02T15:04")
		if _, err := m.s.borg(m.pass, "create", "--compression", "zstd", "--timestamp", night.Format("2006-01-02T15:04:05"),
			m.repo+"::"+name, m.data).Run(ctx); err != nil {
			return fmt.Errorf("night %d: %w", k, err)
		}
		if _, err := m.s.borg(m.pass, "prune", "--glob-archives", layout.ArchivePrefix+"*", "--keep-daily", fmt.Sprint(keep.Daily),
			"--keep-weekly", fmt.Sprint(keep.Weekly), "--keep-monthly", fmt.Sprint(keep.Monthly), m.repo).Run(ctx); err != nil {
			return fmt.Errorf("night %d: %w", k, err)
		}
		if compact.Due(night) {
			m.compactions++
			if _, err := m.s.borg(m.pass, "compact", "--threshold", fmt.Sprint(compact.Threshold), m.repo).Run(ctx); err != nil {
				return fmt.Errorf("night %d: %w", k, err)
			}
		}
		if err := m.sync(ctx); err != nil {
			return fmt.Errorf("night %d: %w", k, err)
		}
		if _, err := m.store.Take(ctx, night.Add(2*time.Hour+30*time.Minute)); err != nil {
			return fmt.Errorf("night %d: %w", k, err)
		}
		if _, err := m.store.Prune(policy); err != nil {
			return fmt.Errorf("night %d: %w", k, err)
		}
		u, err := m.store.Usage()
		if err != nil {
			return err
		}
		m.usage = u
		logf("9: night %d (%s): %d snapshots hold %s beyond the mirror (%s in segments); the syncs deleted %s of segments, %s else",
			k, night.Format("Mon 2006-01-02"), u.Snapshots, Bytes(float64(u.Total())), Bytes(float64(u.HeldSegmentBytes)),
			Bytes(float64(m.removedSeg)), Bytes(float64(m.removedOther)))
	}
	size, err := treeBytes(m.repo)
	m.repoBytes = size
	return err
}

// sync mirrors the repo as the sync job does to the Pi (its two rsyncs'
// arguments, a local target) and writes the heartbeat, a new inode each
// night; it adds up the disk space of what --delete removed.
func (m *snapshotMonth) sync(ctx context.Context) error {
	dst := filepath.Join(m.store.Mirror, "repo")
	before, err := diskFiles(dst)
	if err != nil {
		return err
	}
	// Two passes, as the sync makes them: by size with --delete, then the
	// files outside data/ by content.
	common := []string{"--hard-links", "--numeric-ids", m.repo + "/", dst + "/"}
	for _, args := range [][]string{{offsite.PushMode, "--delete", "--size-only", "--stats"}, {offsite.PushMode, "--checksum", "--stats", "--exclude=/data/"}} {
		if _, err := (Cmd{Argv: append(append([]string{"rsync"}, args...), common...)}).Run(ctx); err != nil {
			return err
		}
	}
	after, err := diskFiles(dst)
	if err != nil {
		return err
	}
	for rel, blocks := range before {
		if _, ok := after[rel]; ok {
			continue
		}
		if strings.HasPrefix(rel, "data/") {
			m.removedSeg += blocks
		} else {
			m.removedOther += blocks
		}
	}
	hb := filepath.Join(m.store.Mirror, layout.HeartbeatDir)
	if err := os.MkdirAll(hb, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(hb, ".new")
	if err := os.WriteFile(tmp, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(hb, layout.HeartbeatName("john-ai")))
}

// diskFiles maps each regular file below dir to its disk space (a missing
// dir is empty).
func diskFiles(dir string) (map[string]int64, error) {
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) && p == dir {
			return filepath.SkipDir
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = fi.Sys().(*syscall.Stat_t).Blocks * 512
		return nil
	})
	return out, err
}

func (m *snapshotMonth) rows() []Row {
	u := m.usage
	removed := float64(m.removedSeg + m.removedOther)
	what := fmt.Sprintf("offsite snapshots after a simulated month (%d nights, %d compactions at threshold %d, %d snapshots kept of 7 daily + 4 weekly)",
		m.nights, m.compactions, config.DefaultCompactThreshold, u.Snapshots)
	rows := []Row{
		{Item: "9", What: what + ": disk they hold beyond the mirror / what the month's syncs deleted from the mirror",
			Kit: Bytes(float64(u.Total())), Peer: Bytes(removed)},
		{Item: "9", What: "the same, segments only: segments they hold / segments compaction removed from the mirror",
			Kit: Bytes(float64(u.HeldSegmentBytes)), Peer: Bytes(float64(m.removedSeg))},
		{Item: "9", What: "snapshots' disk beyond the mirror / the repo at the month's end",
			Kit: Bytes(float64(u.Total())), Peer: Bytes(float64(m.repoBytes)), Percent: true},
	}
	if removed > 0 {
		rows[0].Ratio = Summarize([]float64{float64(u.Total()) / removed})
	} else {
		rows[0].Unmeasured = "the syncs deleted nothing"
	}
	if m.removedSeg > 0 {
		rows[1].Ratio = Summarize([]float64{float64(u.HeldSegmentBytes) / float64(m.removedSeg)})
	} else {
		rows[1].Unmeasured = "compaction removed no segment this month"
	}
	if m.repoBytes > 0 {
		rows[2].Ratio = Summarize([]float64{float64(u.Total()) / float64(m.repoBytes)})
	}
	return rows
}
