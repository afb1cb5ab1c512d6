package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options configure a run.
type Options struct {
	Borgkit string // the binary under test (make build's bin/borgkit)
	Work    string // work directory; it must not exist yet
	Runs    int    // measured rounds after the warm-up, at least 5
	Nights  int    // nights of the simulated week (at least Runs+1)
	Dataset Dataset
	// Items limits the run to these item numbers ("1".."11"); empty is all.
	Items []string
	Log   io.Writer
}

// Tools are the programs the bench drives, besides borgkit.
var Tools = []string{"borg", "borgmatic", "ansible-playbook", "rsync", "cryptsetup", "/usr/bin/time"}

func (o *Options) want(items ...string) bool {
	if len(o.Items) == 0 {
		return true
	}
	for _, i := range items {
		if slices.Contains(o.Items, i) {
			return true
		}
	}
	return false
}

// Run measures everything and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Runs < 5 {
		return nil, fmt.Errorf("bench: %d runs: the table wants the median of at least 5", o.Runs)
	}
	o.Nights = max(o.Nights, o.Runs+Warmup)
	var missing []string
	for _, t := range Tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("bench: not installed: %s (make bench installs them)", strings.Join(missing, ", "))
	}
	bk, err := filepath.Abs(o.Borgkit)
	if err != nil {
		return nil, err
	}
	logf := func(f string, a ...any) { fmt.Fprintf(o.Log, "bench: "+f+"\n", a...) }
	rep := &Report{Started: time.Now(), Runs: o.Runs, Machine: ThisMachine()}
	if out, err := exec.Command(bk, "version").Output(); err == nil {
		rep.Version = strings.TrimSpace(strings.TrimPrefix(string(out), "borgkit "))
	}
	if err := os.Mkdir(o.Work, 0o700); err != nil {
		return nil, fmt.Errorf("bench: work directory: %w", err)
	}
	s := &Site{Dir: o.Work, Borgkit: bk}
	s.Data, s.Tree = s.path("data"), s.path("tree")
	s.Env = []string{"BORG_BASE_DIR=" + s.path("borg-base")}

	// Items 1 to 7 share the data set and the provisioned tree; items 8
	// and 9 bring their own labs.
	if o.want("1", "2", "3", "4", "5", "6", "7") {
		logf("generating the data set in %s", s.Data)
		if err := o.Dataset.Generate(s.Data); err != nil {
			return nil, err
		}
		rep.Data = fmt.Sprintf("%d files, %s (seed %d; a third of the bytes in a few large files, 40 %% of the files compressible text), %.0f %% of the files rewritten each night",
			o.Dataset.Files, Bytes(float64(o.Dataset.Bytes)), o.Dataset.Seed, ChangedFraction*100)

		logf("provisioning the server with --root, and the same with ansible-playbook")
		prov := newProvisioning(s)
		if err := prov.Setup(ctx); err != nil {
			return nil, err
		}
		if o.want("2") {
			logf("2: provisioning re-runs")
			if err := prov.Measure(ctx, o.Runs); err != nil {
				return nil, err
			}
			rep.Rows = append(rep.Rows, prov.Rows()...)
		}
		if o.want("1", "3", "4", "6") {
			n := newNightly(s, o.Dataset, o.Nights)
			if err := n.Run(ctx, logf); err != nil {
				return nil, err
			}
			if o.want("1", "4") {
				rep.Rows = append(rep.Rows, n.Rows()...)
			}
		}
		type stage struct {
			item string
			fn   func(context.Context, *Site, int) ([]Row, error)
		}
		for _, st := range []stage{{"3", statusRows}, {"5", luksRows}, {"6", drillRows}, {"7", startupRows}} {
			if !o.want(st.item) {
				continue
			}
			logf("%s: measuring", st.item)
			rows, err := st.fn(ctx, s, o.Runs)
			if err != nil {
				return nil, err
			}
			rep.Rows = append(rep.Rows, rows...)
		}
	}
	rep.Notes = slices.Clone(notes)
	if o.want("8") {
		logf("8: provisioning the Pi over the emulated offsite link (%s)", LinkShape)
		rows, note, err := linkRows(ctx, s, o.Runs)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, rows...)
		rep.Notes = append(rep.Notes, note)
	}
	if o.want("9") {
		rows, err := snapshotRows(ctx, s, o.Dataset, logf)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, rows...)
		rep.Notes = append(rep.Notes, snapshotNote)
	}
	if o.want("10") {
		rows, err := newWindowBench(s, o.Dataset).Rows(ctx, o.Runs, logf)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, rows...)
		rep.Notes = append(rep.Notes, windowNote)
	}
	if o.want("11") {
		logf("11: provisioning a fleet of %d clients (no-change re-runs)", fleetClients)
		rows, err := fleetRows(ctx, s, o.Runs)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, rows...)
		rep.Notes = append(rep.Notes, fleetNote)
	}
	// By item number: item 10 after 9.
	slices.SortStableFunc(rep.Rows, func(a, b Row) int { return compareItems(a.Item, b.Item) })
	rep.Machine.LoadEnd = Load()
	rep.Wall = time.Since(rep.Started)
	return rep, nil
}

// compareItems orders item numbers as numbers ("10" after "9"), and
// anything else as text after them.
func compareItems(a, b string) int {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	switch {
	case errA == nil && errB == nil:
		return x - y
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// notes say how each comparison is made fair, under the table.
var notes = []string{
	"1: every night changes the data, then borgkit, the raw borg commands (the very argv borgkit runs) and borgmatic back it up into three repos of their own, in an order rotating by night. Retention keeps one archive a day, so each night prunes the night before: the steady state of a sliding window, in minutes. All compact every night at borg's default threshold (10) here, so all do the same work.",
	"2: borgkit provisions the server role into one directory tree (`--root`), and a playbook written for the bench manages the very same directories, files, secrets, fstab block, borg repo and key export in another (derived from borgkit's own plan; the systemd units borgkit keeps absent are left out), on localhost, without gathering facts and with pipelining on. Both trees are converged first; the table times re-runs that change nothing.",
	"4: after each night `borgkit job sync` mirrors three borgkit repos to local directories; rsync's own byte count is compared with the bytes of the repo files that are new or changed since the last sync. One repo compacts every night (threshold 10, borgkit's behaviour before the compaction policy), one follows the policy (its weekday set to the week's last night), one never compacts in the run: what the first two send beyond the third is what compaction made rsync send again.",
	"5: the same LUKS2 header backup (argon2id, 256 MiB, time cost 4) and keyfile; peak RSS from GNU time.",
	"6: `borgkit drill --mirror` with only the recovery bundle extracts a seeded sample of the latest archive; `borg extract` then extracts the very same files from the same mirror, with a fresh cache as the drill has. The drill's throughput is its own report's: extraction time, without its bundle verification and repo check.",
}

// snapshotNote says how item 9 is measured.
const snapshotNote = "9: a month of nights on a simulated calendar: each changes the data, backs it up with the example config's retention (3 daily, 2 weekly, 6 monthly) and compaction policy (Sundays, threshold 25), archive times set to the simulated night; mirrors the repo with the sync job's rsync arguments into a Pi mirror on this machine; and takes and prunes the Pi's snapshot with borgkit's snapshot code (7 daily, 4 weekly). Disk space is allocated blocks; what the syncs deleted is what --delete removed from the mirror in the month (compacted segments, and each night's replaced index, hints and integrity files)."
