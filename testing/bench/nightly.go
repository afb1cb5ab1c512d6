package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/borgkit/borgkit/provision/config"
)

// borgDefaultThreshold is borg compact's own --threshold: what the nightly
// job compacted with, every night, before the compaction policy.
const borgDefaultThreshold = 10

// The twins of the nightly bench: borgkit's nightly as it was (compact
// every night at borg's default threshold) on the provisioned repo, the
// compaction policy, and a repo that is never compacted in the run, whose
// mirror traffic is the new data alone.
const (
	hostKit    = "kit"
	hostPolicy = "kit-policy"
	hostNever  = "kit-never"
)

// nightly runs items 1 and 4: one simulated week of nights on the same
// data, each night changing it and backing it up with every tool.
type nightly struct {
	s      *Site
	ds     Dataset
	nights int
	twins  map[string]*Twin
	order  []string // twins in the order they sync
	raw    struct{ repo, pass string }
	bm     struct{ repo, pass, conf string }
	mu     sync.Mutex // guards what the parallel syncs record
	snaps  map[string]map[string]fileState

	// Per night (index 0 is night 1).
	kitSec, rawSec, bmSec []float64
	sent, fresh, size     map[string][]float64
}

func newNightly(s *Site, ds Dataset, nights int) *nightly {
	n := &nightly{s: s, ds: ds, nights: nights, twins: map[string]*Twin{}, snaps: map[string]map[string]fileState{},
		sent: map[string][]float64{}, fresh: map[string][]float64{}, size: map[string][]float64{}}
	n.twins[hostKit] = &Twin{Host: hostKit, Repo: s.KitRepo(), Pass: s.KitPass(), Threshold: borgDefaultThreshold}
	for _, h := range []string{hostPolicy, hostNever} {
		n.twins[h] = &Twin{Host: h, Repo: s.path("repos", h), Pass: s.path("keys", h+".pass"), Threshold: config.DefaultCompactThreshold}
	}
	n.order = []string{hostKit, hostPolicy, hostNever}
	for _, h := range n.order {
		n.twins[h].Mirror = s.path("mirror", h)
	}
	n.raw.repo, n.raw.pass = s.path("repos", "raw"), s.path("keys", "raw.pass")
	n.bm.repo, n.bm.pass, n.bm.conf = s.path("repos", "borgmatic"), s.path("keys", "borgmatic.pass"), s.path("borgmatic.yaml")
	return n
}

// setPolicies writes the jobs config for night k: the policy twin compacts
// on the week's last night only (its weekday set to today's), as the
// default policy does on Sundays; the never twin on no night of the run.
func (n *nightly) setPolicies(k int) error {
	n.twins[hostKit].Weekdays = everyDay()
	n.twins[hostNever].Weekdays = []string{notToday()}
	n.twins[hostPolicy].Weekdays = []string{notToday()}
	if k == n.nights {
		n.twins[hostPolicy].Weekdays = []string{today()}
	}
	var ts []Twin
	for _, h := range n.order {
		ts = append(ts, *n.twins[h])
	}
	return n.s.WriteJobsConfig(ts)
}

// setup makes the peers' repos and the first, full backup with every
// tool, then the first mirror copy: night 0, not measured.
func (n *nightly) setup(ctx context.Context) error {
	for _, r := range []struct{ repo, pass string }{
		{n.raw.repo, n.raw.pass}, {n.bm.repo, n.bm.pass},
		{n.twins[hostPolicy].Repo, n.twins[hostPolicy].Pass}, {n.twins[hostNever].Repo, n.twins[hostNever].Pass},
	} {
		if err := n.s.initRepo(ctx, r.repo, r.pass); err != nil {
			return err
		}
	}
	if err := n.writeBorgmaticConfig(); err != nil {
		return err
	}
	return n.night(ctx, 0)
}

var borgmaticTmpl = `# borgmatic 1.7 doing what borgkit's nightly does.
location:
    source_directories: [%q]
    repositories: [%q]
    exclude_caches: true
storage:
    encryption_passcommand: cat %s
    compression: zstd
    archive_name_format: 'nightly-{now:%%Y-%%m-%%dT%%H:%%M:%%S}'
retention:
    keep_daily: 1
    prefix: 'nightly-'
`

func (n *nightly) writeBorgmaticConfig() error {
	c := fmt.Sprintf(borgmaticTmpl, n.s.Data, n.bm.repo, n.bm.pass)
	return os.WriteFile(n.bm.conf, []byte(c), 0o600)
}

// rawNightly is borgkit's nightly typed by hand: the same three borg
// commands with the same arguments.
func (n *nightly) rawNightly(ctx context.Context) (float64, error) {
	r, p := n.raw.repo, n.raw.pass
	var total float64
	for _, args := range [][]string{
		{"create", "--stats", "--json", "--compression", "zstd", "--exclude-caches", r + "::nightly-{now:%Y-%m-%dT%H:%M:%S}", n.s.Data},
		{"prune", "--list", "--glob-archives", "nightly-*", "--keep-daily", "1", "--keep-weekly", "0", "--keep-monthly", "0", r},
		{"compact", "--threshold", strconv.Itoa(borgDefaultThreshold), r},
	} {
		res, err := n.s.borg(p, args...).Run(ctx)
		if err != nil {
			return 0, err
		}
		total += res.Seconds
	}
	return total, nil
}

// borgmatic runs the same create, prune and compact; borgmatic 1.7 runs
// its actions in its own fixed order (prune, compact, create).
func (n *nightly) borgmatic(ctx context.Context) (float64, error) {
	res, err := Cmd{Argv: []string{"borgmatic", "--config", n.bm.conf, "create", "prune", "compact", "--threshold", strconv.Itoa(borgDefaultThreshold)},
		Env: n.s.Env}.Run(ctx)
	return res.Seconds, err
}

// night k: change the data (k > 0), back it up with every tool, the
// three compared ones in an order rotating by night, then mirror the
// borgkit twins and record what rsync sent against what was new.
func (n *nightly) night(ctx context.Context, k int) error {
	if k > 0 {
		if _, err := n.ds.Night(n.s.Data, k); err != nil {
			return err
		}
	}
	if err := n.setPolicies(k); err != nil {
		return err
	}
	var kit, raw, bm float64
	runs := []func() error{
		func() (err error) { r, err := n.s.job("nightly", hostKit).Run(ctx); kit = r.Seconds; return err },
		func() (err error) { raw, err = n.rawNightly(ctx); return err },
		func() (err error) { bm, err = n.borgmatic(ctx); return err },
	}
	twins := []func() error{}
	for _, h := range []string{hostPolicy, hostNever} {
		twins = append(twins, func() error { _, err := n.s.job("nightly", h).Run(ctx); return err })
	}
	if k == 0 {
		// The first, full backups are not measured: run them all at once.
		if err := parallel(append(runs, twins...)...); err != nil {
			return fmt.Errorf("first backup: %w", err)
		}
	} else {
		for i := range runs {
			if err := runs[(i+k)%len(runs)](); err != nil {
				return fmt.Errorf("night %d: %w", k, err)
			}
		}
		// The twins' figures are bytes, not times: they may overlap.
		if err := parallel(twins...); err != nil {
			return fmt.Errorf("night %d: %w", k, err)
		}
	}
	var syncs []func() error
	for _, h := range n.order {
		syncs = append(syncs, func() error { return n.sync(ctx, h, k) })
	}
	if err := parallel(syncs...); err != nil {
		return fmt.Errorf("night %d: %w", k, err)
	}
	if k > 0 {
		n.kitSec, n.rawSec, n.bmSec = append(n.kitSec, kit), append(n.rawSec, raw), append(n.bmSec, bm)
	}
	return nil
}

// sync mirrors host's repo and records, from night 1 on, what rsync sent,
// what was new since the last sync, and the repo's size.
func (n *nightly) sync(ctx context.Context, h string, k int) error {
	snap, err := snapshot(n.twins[h].Repo)
	if err != nil {
		return err
	}
	if _, err := n.s.job("sync", h).Run(ctx); err != nil {
		return err
	}
	sent, err := n.sentBytes(h)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if k > 0 {
		var size int64
		for _, f := range snap {
			size += f.size
		}
		n.sent[h] = append(n.sent[h], float64(sent))
		n.fresh[h] = append(n.fresh[h], float64(newBytes(n.snaps[h], snap)))
		n.size[h] = append(n.size[h], float64(size))
	}
	n.snaps[h] = snap
	return nil
}

// parallel runs fns at once and returns their errors joined.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sentBytes is what the last sync of host says rsync sent, from its record.
func (n *nightly) sentBytes(host string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(n.s.path("state", host), "sync.json"))
	if err != nil {
		return 0, fmt.Errorf("sync record: %w", err)
	}
	var rec struct {
		Status string `json:"status"`
		Stats  struct {
			Mirrors []struct {
				SentBytes uint64 `json:"sent_bytes"`
			} `json:"mirrors"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return 0, fmt.Errorf("sync record of %s: %w", host, err)
	}
	if rec.Status != "ok" || len(rec.Stats.Mirrors) != 1 {
		return 0, fmt.Errorf("sync of %s: status %q, %d mirrors", host, rec.Status, len(rec.Stats.Mirrors))
	}
	return rec.Stats.Mirrors[0].SentBytes, nil
}

// Run runs the week.
func (n *nightly) Run(ctx context.Context, logf func(string, ...any)) error {
	logf("nightly: first full backup with every tool, and the first mirror copy")
	if err := n.setup(ctx); err != nil {
		return err
	}
	for k := 1; k <= n.nights; k++ {
		logf("nightly: night %d of %d", k, n.nights)
		if err := n.night(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// resent is, per night, what host's mirror received beyond what the
// never-compacted twin's did: the bytes compaction made rsync send again.
func (n *nightly) resent(host string) []float64 {
	out := make([]float64, len(n.sent[host]))
	for i, s := range n.sent[host] {
		out[i] = max(0, s-n.sent[hostNever][i])
	}
	return out
}

func sum(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t
}

// Rows are the table's lines for items 1 and 4. The first night is the
// warm-up of the per-night figures.
func (n *nightly) Rows() []Row {
	w := 1 // warm-up nights left out of per-night figures
	kit, raw, bm := n.kitSec[w:], n.rawSec[w:], n.bmSec[w:]
	rows := []Row{
		{Item: "1", What: "nightly: `borgkit job nightly` / the same raw `borg create`, `prune`, `compact`",
			Kit: Seconds(Summarize(kit).Median), Peer: Seconds(Summarize(raw).Median), Ratio: Summarize(Ratios(kit, raw)), Goal: Goal{"<=", 1.03}},
		{Item: "1", What: "nightly: borgmatic 1.7 (`create prune compact`) / the same raw borg",
			Kit: Seconds(Summarize(bm).Median), Peer: Seconds(Summarize(raw).Median), Ratio: Summarize(Ratios(bm, raw))},
	}
	never := n.sent[hostNever][w:]
	rows = append(rows, Row{Item: "4", What: "offsite sync of a night's change (no compaction): bytes rsync sent / bytes of new repo files",
		Kit: Bytes(Summarize(never).Median), Peer: Bytes(Summarize(n.fresh[hostNever][w:]).Median),
		Ratio: Summarize(Ratios(never, n.fresh[hostNever][w:])), Goal: Goal{"<=", 1.02}})

	daily := n.resent(hostKit)
	rows = append(rows, Row{Item: "4", What: fmt.Sprintf("re-sent by prune + compact every night (threshold %d, as before): bytes / repo size", borgDefaultThreshold),
		Kit: Bytes(Summarize(daily[w:]).Median), Peer: Bytes(Summarize(n.size[hostKit][w:]).Median),
		Ratio: Summarize(Ratios(daily[w:], n.size[hostKit][w:])), Percent: true})

	last := len(n.sent[hostPolicy]) - 1
	pol := n.resent(hostPolicy)
	weekPol, weekDaily := sum(pol), sum(daily)
	rows = append(rows, Row{Item: "4", What: fmt.Sprintf("re-sent in the simulated week (%d nights): policy (compact on the last night, threshold %d) / every night (threshold %d)",
		n.nights, config.DefaultCompactThreshold, borgDefaultThreshold),
		Kit:   fmt.Sprintf("%s (%.1f %% of the repo)", Bytes(weekPol), 100*weekPol/n.size[hostPolicy][last]),
		Peer:  fmt.Sprintf("%s (%.1f %% of the repo)", Bytes(weekDaily), 100*weekDaily/n.size[hostKit][last]),
		Ratio: Summarize(Ratios([]float64{weekPol}, []float64{weekDaily}))})
	if weekDaily == 0 {
		rows[len(rows)-1].Unmeasured = "compacting every night re-sent nothing this week"
	}
	// The bound: each segment compact rewrites was at least T% free, so it
	// re-sends at most (100-T)/T times what it frees. What it freed is
	// what the never-compacted twin still holds beyond the policy's repo.
	freed := n.size[hostNever][last] - n.size[hostPolicy][last]
	bound := float64(100-config.DefaultCompactThreshold) / float64(config.DefaultCompactThreshold)
	row := Row{Item: "4", What: "policy's compaction night: bytes re-sent / bytes freed",
		Kit: Bytes(pol[last]), Peer: Bytes(freed), Goal: Goal{"<=", bound},
		GoalText: fmt.Sprintf("≤ %g, (100 − %d) / %d", bound, config.DefaultCompactThreshold, config.DefaultCompactThreshold)}
	if freed > 0 {
		row.Ratio = Summarize([]float64{pol[last] / freed})
	} else {
		row.Unmeasured = "no segment reached the threshold: nothing freed, nothing re-sent"
	}
	return append(rows, row)
}
