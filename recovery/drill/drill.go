package drill

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/progress"
	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/roles/jobs/snapshot"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// Defaults.
const (
	DefaultSamples     = 20
	DefaultMaxFileSize = 256 << 20
	DefaultMapper      = "borgkit-drill"
)

// Runner runs the privileged programs of the disk path (cryptsetup,
// mount, umount); host.NewLocal in real runs, a recorder in tests.
type Runner interface {
	Run(ctx context.Context, c host.Cmd) (host.Result, error)
}

// Options say what to drill and how.
type Options struct {
	// Bundle is the recovery bundle directory (required).
	Bundle string
	// Disk is the offsite disk's device, or an image file of it: unlocked
	// read-only with the bundle's keyfile and mounted read-only. Needs root
	// and device-mapper.
	Disk string
	// DiskName picks the bundle's disk (HOST/DISK or DISK) when it holds
	// more than one.
	DiskName string
	// Mirror is an unencrypted copy instead: a directory holding the repos
	// by name, such as the NAS mirror. Exactly one of Disk and Mirror.
	Mirror string
	// Snapshot restores from one of the offsite host's snapshots of its
	// mirror instead of the mirror itself: a snapshot's name, or "latest".
	// The snapshots are found beside the mirror on the disk (Disk), or
	// beside Mirror when it is the offsite mirror directory, or under it
	// when it is the disk's mountpoint or the snapshot directory itself.
	Snapshot string
	// Repos limits the drill to these repo names (default: all found).
	Repos []string
	// Samples is how many random files to extract per repo (default 20;
	// negative: canaries only).
	Samples int
	// Seed makes the sample reproducible; 0 picks one, which the result
	// records so the same drill can be run again.
	Seed uint64
	// MaxFileSize keeps huge files (VM images) out of the random sample
	// (default 256 MiB); a repo with nothing smaller gets its smallest file.
	MaxFileSize int64
	// CompareLive also compares each extracted file with the live file
	// under LiveRoot (default "/"): for a drill run on the server itself.
	CompareLive bool
	LiveRoot    string
	// ReportDir receives the report when the bundle's drill-log directory
	// is not writable (as written it is 0500); default the current
	// directory.
	ReportDir string
	// WorkDir holds extracted files and borg's private state (default the
	// system's temporary directory); removed at the end.
	WorkDir string
	// Store records the drill as job "drill"; nil records nothing.
	Store *state.Store
	// Progress gets a progress line; IsTTY redraws it in place.
	Progress io.Writer
	IsTTY    bool
	// Log gets the commands run and their stderr.
	Log io.Writer
	// Exec runs cryptsetup and mount for Disk; default host.NewLocal.
	Exec Runner
	// Mapper is the device-mapper name used for Disk (default borgkit-drill).
	Mapper string
	// Now defaults to time.Now.
	Now func() time.Time
}

// Result is what the drill found. Its totals are the record the dashboard
// reads (state.DrillStats); the whole result goes to the report files.
type Result struct {
	Bundle string `json:"bundle"`
	Site   string `json:"site,omitempty"`
	Server string `json:"server,omitempty"`
	Source string `json:"source"` // "disk" or "mirror"
	// Snapshot is the offsite snapshot restored from ("" for the mirror).
	Snapshot string    `json:"snapshot,omitempty"`
	Started  time.Time `json:"started"`
	// Duration is the whole drill, bundle verification included.
	Duration time.Duration `json:"duration_ns"`
	Seed     uint64        `json:"seed"`
	Samples  int           `json:"samples"`
	Problems []string      `json:"problems,omitempty"`

	Verify *bundle.Report `json:"verify,omitempty"`
	Disk   *DiskResult    `json:"disk,omitempty"`
	Repos  []RepoResult   `json:"repos"`

	// The totals over all repos: the oldest newest-archive (RPO), the
	// first file restored and the last one verified, counted from the
	// drill's start (RTO), and the extraction throughput (all bytes over
	// the sum of the repos' extraction windows, which never overlap).
	state.DrillStats
}

// DiskResult is how the disk was opened.
type DiskResult struct {
	ID       string `json:"id"` // HOST/DISK in the bundle
	Device   string `json:"device"`
	LUKSUUID string `json:"luks_uuid,omitempty"`
	// HeaderBackup is true when the disk's own header was unreadable or
	// damaged and the bundle's header backup was used.
	HeaderBackup bool     `json:"header_backup"`
	Note         string   `json:"note,omitempty"`
	Mapper       string   `json:"mapper"`
	Mountpoint   string   `json:"mountpoint"`
	Commands     []string `json:"commands"`
	// UnlockDuration covers cryptsetup open and mount.
	UnlockDuration time.Duration `json:"unlock_ns"`
}

// RepoResult is one repository's part of the drill.
type RepoResult struct {
	Name     string   `json:"name"`
	Host     string   `json:"host"`
	Copy     string   `json:"copy,omitempty"`
	Status   string   `json:"status"` // ok | failed | skipped
	Problems []string `json:"problems,omitempty"`

	CheckOK       bool          `json:"check_ok"`
	CheckDuration time.Duration `json:"check_ns"`

	Archives   int           `json:"archives"`
	Latest     string        `json:"latest,omitempty"`
	LatestTime time.Time     `json:"latest_time,omitzero"`
	RPO        time.Duration `json:"rpo_ns"`
	// ArchiveFiles and ArchiveBytes are the regular files of the latest
	// archive, to scale the sample's throughput to a full restore.
	ArchiveFiles int64 `json:"archive_files"`
	ArchiveBytes int64 `json:"archive_bytes"`

	Files []FileResult `json:"files"`
	// TimeToFirstFile: the first sampled file completely written, from
	// the drill's start. ExtractDuration is the restore's timed window:
	// from the start of borg extract until the last file has been checked
	// against the archive's hash (restore and verification; not the check,
	// the listings or --compare-live). Throughput is Bytes, the files that
	// checked out, over that window: the figure to hold against a plain
	// borg extract's bytes over its run time.
	TimeToFirstFile time.Duration `json:"time_to_first_file_ns"`
	ExtractDuration time.Duration `json:"extract_ns"`
	RTO             time.Duration `json:"rto_ns"`
	Bytes           int64         `json:"bytes"`
	Throughput      float64       `json:"throughput_bytes_per_second"`
	// EstimatedFullRestore is ArchiveBytes at the sample's throughput: a
	// rough lower bound (small files restore slower than big ones).
	EstimatedFullRestore time.Duration `json:"estimated_full_restore_ns,omitempty"`
}

// FileResult is one extracted file.
type FileResult struct {
	Path   string `json:"path"`
	Canary bool   `json:"canary,omitempty"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // as the archive records it
	// Status: ok (extracted, same size and hash as the archive), mismatch,
	// missing (not extracted), error.
	Status string `json:"status"`
	// Live: "" (not compared), match, changed (live file modified since the
	// archive: no proof either way), differs (same size and mtime but other
	// content: damage), missing.
	Live   string `json:"live,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Run performs the drill. The error is non-nil when the drill could not
// run or found a problem; the result is returned whenever there is one,
// with its report written and recorded.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	// Borg runs of one repository go concurrently; their log lines and
	// the progress must not tear each other (often both are stderr).
	p := progress.New(opts.Progress, opts.IsTTY)
	if opts.Log != nil {
		opts.Log = p.Writer(opts.Log)
	}
	d := &drill{opts: opts, p: p}
	d.start = opts.Now()
	d.res = &Result{Bundle: opts.Bundle, Started: d.start, Seed: opts.Seed, Samples: max(opts.Samples, 0)}
	if opts.Disk != "" {
		d.res.Source, d.res.Target = "disk", opts.Disk
	} else {
		d.res.Source, d.res.Target = "mirror", opts.Mirror
	}
	var run *state.Run
	if opts.Store != nil {
		r, err := opts.Store.Begin(layout.JobDrill)
		if err != nil {
			return nil, fmt.Errorf("drill: %w", err)
		}
		run = r
	}
	err := d.run(ctx)
	d.p.Done()
	return d.finish(run, err)
}

func (o *Options) defaults() error {
	if o.Bundle == "" {
		return errors.New("--bundle is required")
	}
	if (o.Disk == "") == (o.Mirror == "") {
		return errors.New("give exactly one of --disk and --mirror")
	}
	// borg runs in other working directories (its patterns file is read
	// relative to the extraction directory): every path is made absolute
	// once, here.
	for _, p := range []*string{&o.Bundle, &o.Disk, &o.Mirror, &o.WorkDir, &o.ReportDir, &o.LiveRoot} {
		if *p == "" || filepath.IsAbs(*p) {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if o.Samples == 0 {
		o.Samples = DefaultSamples
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.LiveRoot == "" {
		o.LiveRoot = "/"
	}
	if o.Mapper == "" {
		o.Mapper = DefaultMapper
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.Seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	for _, p := range []*string{&o.Bundle, &o.Mirror, &o.Disk} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	return nil
}

type drill struct {
	opts  Options
	p     *progress.Line
	start time.Time
	res   *Result
	work  string
	// keepWork is set when the disk could not be unmounted.
	keepWork bool
}

// keyCheck is bundle.VerifyRepoCopies running in the background: it
// imports each key export into a shadow of its own and lists the repo.
type keyCheck struct {
	d      *drill
	done   chan struct{}
	report *bundle.Report
	once   sync.Once
	failed map[string]string // HOST/NAME: why the bundle does not open it
}

func (d *drill) checkKeys(ctx context.Context, m *bundle.Manifest, roots []string) *keyCheck {
	k := &keyCheck{d: d, done: make(chan struct{}), failed: map[string]string{}}
	go func() {
		defer close(k.done)
		k.report, _ = bundle.VerifyRepoCopies(ctx, m, bundle.VerifyOptions{RepoRoots: roots, Repos: d.opts.Repos, WorkDir: d.work, Log: d.opts.Log})
	}()
	return k
}

// wait waits for the key check and adds its items to the result (once;
// on the drill's goroutine only).
func (k *keyCheck) wait() {
	<-k.done
	k.once.Do(func() {
		if k.report == nil {
			return
		}
		for _, it := range k.report.Items {
			k.d.res.Verify.Items = append(k.d.res.Verify.Items, it)
			if it.Status == bundle.StatusFailed {
				k.failed[it.Name] = it.Detail
			}
		}
	})
}

// failure is why the bundle's keys do not open repo ("" when they do);
// with block false it answers only once the check has finished, and
// reports whether it has.
func (k *keyCheck) failure(repo *bundle.Repo, block bool) (string, bool) {
	if !block {
		select {
		case <-k.done:
		default:
			return "", false
		}
	}
	k.wait()
	return k.failed[repo.Host+"/"+repo.Name], true
}

func (d *drill) problem(format string, args ...any) {
	d.res.Problems = append(d.res.Problems, fmt.Sprintf(format, args...))
}

// since is the time from the drill's start: RTO figures count everything
// a real recovery would go through, bundle check and unlock included.
func (d *drill) since() time.Duration { return d.opts.Now().Sub(d.start) }

func (d *drill) run(ctx context.Context) error {
	o := d.opts
	m, err := bundle.Open(o.Bundle)
	if err != nil {
		return err
	}
	d.res.Site, d.res.Server = m.Site, m.Server
	// A snapshot of a mirror is found before the slow part: a wrong name
	// is a typo, not a failed restore.
	mirror := o.Mirror
	if o.Mirror != "" && o.Snapshot != "" {
		if mirror, err = d.snapshot(o.Mirror); err != nil {
			return err
		}
	}
	d.p.Status("verifying the bundle %s", o.Bundle)
	work, err := os.MkdirTemp(o.WorkDir, "borgkit-drill-")
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	d.work = work
	defer func() {
		if d.keepWork {
			d.problem("left %s in place: the disk is still mounted there", work)
			return
		}
		os.RemoveAll(work)
	}()

	rep, err := bundle.Verify(ctx, o.Bundle, bundle.VerifyOptions{WorkDir: work, Log: o.Log})
	d.res.Verify = rep
	if err != nil {
		// A bundle that does not verify would fail a real recovery too;
		// going on would only measure a recovery that cannot happen.
		return err
	}

	var roots []string
	var expect []string // repos that must be there
	if o.Disk != "" {
		ds, err := d.openDisk(ctx, m)
		if ds != nil {
			defer func() {
				if cerr := ds.close(context.WithoutCancel(ctx)); cerr != nil {
					d.problem("%v", cerr)
				}
			}()
		}
		if err != nil {
			return err
		}
		roots = []string{ds.reposDir}
		expect = ds.disk.Repos
		if o.Snapshot != "" {
			p, err := d.snapshot(ds.reposDir)
			if err != nil {
				return err
			}
			roots = []string{p}
		}
	} else {
		roots = []string{mirror}
		for _, r := range m.Repos {
			if r.Host == m.Server {
				expect = append(expect, r.Name)
			}
		}
	}

	// Whether the bundle's keys open each copy is checked alongside the
	// first repository's check and listings; nothing is restored before
	// the answer is in (see keyCheck).
	d.p.Status("checking that the bundle's keys open the repositories")
	keys := d.checkKeys(ctx, m, roots)
	defer keys.wait()

	b, err := borg.NewWorkspace(work)
	if err != nil {
		return err
	}
	defer b.Close()
	b.Log = o.Log
	for i := range m.Repos {
		repo := &m.Repos[i]
		if len(o.Repos) > 0 && !slices.Contains(o.Repos, repo.Name) {
			continue
		}
		rr := RepoResult{Name: repo.Name, Host: repo.Host, Status: "skipped"}
		copyDir, found := bundle.FindCopy(roots, repo.Name)
		switch {
		case !found && repo.Remote():
			// Its only copy is on the borg server, which a rescue machine
			// may not reach: the client's restore-test job extracts from it
			// over SSH every week instead.
			rr.Problems = append(rr.Problems, fmt.Sprintf("on a borg server (%s), not on this disk or mirror: the drill restores from local copies only; "+
				"the restore-test job of %s extracts from it over SSH (borgkit job restore-test)", repo.Path, repo.Host))
		case !found && (slices.Contains(expect, repo.Name) || slices.Contains(o.Repos, repo.Name)):
			rr.Status = "failed"
			rr.Problems = append(rr.Problems, fmt.Sprintf("no copy of the repository at %s", filepath.Join(roots[0], repo.Name)))
		case !found:
			continue
		default:
			rr.Copy = copyDir
			d.drillRepo(ctx, b, m, repo, &rr, keys)
		}
		d.res.Repos = append(d.res.Repos, rr)
	}
	if !slices.ContainsFunc(d.res.Repos, func(r RepoResult) bool { return r.Status != "skipped" }) {
		// Remote repos alone are no drill: nothing was restored.
		return fmt.Errorf("no repository of the bundle found under %s", strings.Join(roots, ", "))
	}
	return nil
}

// finish totals the figures, writes the report and records the run.
func (d *drill) finish(run *state.Run, runErr error) (*Result, error) {
	res := d.res
	if runErr != nil {
		d.problem("%v", runErr)
	}
	res.TimeToFirstFile = -1
	for _, r := range res.Repos {
		if r.Status == "failed" {
			for _, p := range r.Problems {
				d.problem("repo %s: %s", r.Name, p)
			}
		}
		res.RPO = max(res.RPO, r.RPO)
		res.RTO = max(res.RTO, r.RTO)
		if r.TimeToFirstFile > 0 && (res.TimeToFirstFile < 0 || r.TimeToFirstFile < res.TimeToFirstFile) {
			res.TimeToFirstFile = r.TimeToFirstFile
		}
		res.Files += len(r.Files)
		res.Bytes += r.Bytes
	}
	res.TimeToFirstFile = max(res.TimeToFirstFile, 0)
	var extract time.Duration
	for _, r := range res.Repos {
		extract += r.ExtractDuration
	}
	if extract > 0 {
		res.Throughput = float64(res.Bytes) / extract.Seconds()
	}
	res.RepoCount = len(res.Repos)
	res.OK = len(res.Problems) == 0
	res.Finished = d.opts.Now()
	res.Duration = res.Finished.Sub(res.Started)

	files, werr := writeReports(res, d.opts)
	res.ReportFiles = files
	if werr != nil {
		d.problem("writing the report: %v", werr)
		res.OK = false
	}
	var err error
	if !res.OK {
		err = fmt.Errorf("drill failed: %s", strings.Join(res.Problems, "; "))
	}
	if run != nil {
		status, code := state.OK, 0
		if !res.OK {
			status, code = state.Failed, 1
		}
		if ferr := run.Finish(status, code, summary(res), res.DrillStats, res.Problems); ferr != nil && err == nil {
			err = fmt.Errorf("drill: recording the result: %w", ferr)
		}
	}
	return res, err
}

// summary is the one line the dashboard shows for the last drill.
func summary(r *Result) string {
	verdict := "ok"
	if !r.OK {
		verdict = "FAILED"
	}
	return fmt.Sprintf("drill %s from %s %s: %d repos, %d files verified, RPO %s, first file after %s, RTO %s, %s/s",
		verdict, r.Source, r.Target, len(r.Repos), r.Files, roundDur(r.RPO), roundDur(r.TimeToFirstFile), roundDur(r.RTO), humanBytes(int64(r.Throughput)))
}

// snapshot resolves Options.Snapshot beside the mirror at dir and records
// which one the drill restores from.
func (d *drill) snapshot(dir string) (string, error) {
	sn, err := findSnapshot(dir, d.opts.Snapshot)
	if err != nil {
		return "", err
	}
	d.res.Snapshot = sn.Name
	d.res.Target += " snapshot " + sn.Name
	d.p.Status("restoring from snapshot %s (%s)", sn.Name, sn.Path)
	return sn.Path, nil
}

// findSnapshot is the snapshot named want ("latest": the newest) of the
// offsite mirror at dir, or beside it (see Options.Snapshot).
func findSnapshot(dir, want string) (*snapshot.Snapshot, error) {
	root := filepath.Join(dir, layout.SnapshotDir)
	switch filepath.Base(dir) {
	case layout.SnapshotDir:
		root = dir
	case layout.MirrorDir:
		root = filepath.Join(filepath.Dir(dir), layout.SnapshotDir)
	}
	all, err := (&snapshot.Store{Root: root}).List()
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no snapshot in %s", root)
	}
	if want == "latest" {
		return &all[len(all)-1], nil
	}
	var names []string
	for i := range all {
		if all[i].Name == want {
			return &all[i], nil
		}
		names = append(names, all[i].Name)
	}
	return nil, fmt.Errorf("no snapshot %q in %s (there are: %s)", want, root, strings.Join(names, ", "))
}
