package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
)

// ScenarioOptions adjust RunScenario.
type ScenarioOptions struct {
	// Binary is the borgkit executable on this machine; it is installed on
	// john-ai as /usr/local/bin/borgkit, and provisioning copies it to pi.
	Binary string
	// Out receives one progress line per step ("[ 12.3s] john-ai: job
	// nightly ok"), and a failed step's output. nil discards.
	Out io.Writer
	// Verbose also prints every step's output.
	Verbose bool
	// Start is the zero of the progress clock (default: now).
	Start time.Time
	// InstallPackages lets the scenario apt-get install, on the real
	// machine, Debian packages provisioning would otherwise try to install
	// inside a lab host (where dpkg's database is read-only). Without it a
	// missing package fails the scenario with its name.
	InstallPackages bool
	// StrictOptional makes a failure of a command that exists but is still
	// being written (recovery-bundle, drill, status) fail the scenario; by
	// default it is reported and the scenario goes on. Absent commands are
	// skipped either way.
	StrictOptional bool
}

// Action is one command of the scenario.
type Action struct {
	Host     string
	Name     string // "provision john-ai", "job nightly"
	Argv     []string
	Stdout   []byte
	Stderr   []byte
	Err      error
	Duration time.Duration
	// Skipped says why an optional step did not run.
	Skipped string
	// Optional steps (commands other engineers are still writing) do not
	// fail the scenario.
	Optional bool
}

// OK tells whether the step ran and succeeded.
func (s *Action) OK() bool { return s.Skipped == "" && s.Err == nil }

// PlanCounts are the totals of a provision run's "Plan:" line.
type PlanCounts struct {
	Create, Change, Unchanged, Conflict, Skip int
	// NoChanges is the run's "HOST: no changes." line.
	NoChanges bool
}

// Changes is what the run had to do.
func (p PlanCounts) Changes() int { return p.Create + p.Change }

// MirrorCheck compares a repo on john-ai's disk with its copy on a mirror.
type MirrorCheck struct {
	Mirror, Repo string
	Files        int      // regular files compared
	Diffs        []string // paths that differ or are missing, "" when identical
	Err          error
}

// Report is what RunScenario saw.
type Report struct {
	Actions []*Action
	// FirstProvision and SecondProvision are each host's plan totals.
	FirstProvision, SecondProvision map[string]PlanCounts
	// Mirrors are the tree comparisons made right after the sync.
	Mirrors []MirrorCheck
	// Heartbeat is the content of the Pi's heartbeat file after the sync.
	Heartbeat string
	// Commands are borgkit's top-level commands, from `borgkit help`.
	Commands []string
	// Mails are the messages received during the healthy run: none.
	Mails []Mail
	// Pings are the URIs the lab's check received, oldest first.
	Pings []string
	// Textfile is john-ai's borgkit.prom after the jobs.
	Textfile string
	// Snapshot is the Pi's snapshot after the sync, compared with the
	// mirror then and again after the attack.
	Snapshot *SnapshotCheck
	// Attacks are the pushes the intruder on john-ai tried; Repaired the
	// mirrors compared again after the sync that followed.
	Attacks  []Attack
	Repaired []MirrorCheck
	// WatchdogReport is the Pi's report as john-ai kept it.
	WatchdogReport string
}

// pingedJobs are the scenario's jobs that report to the check, as the
// ping URL names them (HOST-JOB): each is scheduled on its host, so each
// must ping its start and then exit code 0.
var pingedJobs = []string{Server + "-nightly", Server + "-sync", Offsite + "-snapshot", Offsite + "-watchdog", Server + "-stale",
	Server + "-audit", Server + "-check", Server + "-restore-test"}

// pingErrs checks the pings and the textfile of a healthy run: every
// pinged job started and ended with 0, and nothing ended otherwise.
func (r *Report) pingErrs() []error {
	var errs []error
	seen := map[string]int{}
	last := map[string]string{}
	for _, uri := range r.Pings {
		check, signal := path.Split(strings.TrimPrefix(uri, "/"+PingKey+"/"))
		check = strings.TrimSuffix(check, "/")
		if last[check] == signal {
			continue // a retry of a ping the check took but did not answer in time
		}
		last[check] = signal
		switch {
		case signal == "start" && seen[check] == 0:
			seen[check] = 1
		case signal == "0" && seen[check] == 1:
			seen[check] = 2
		default:
			errs = append(errs, fmt.Errorf("the check got %s out of turn in a healthy run", uri))
		}
	}
	for _, j := range pingedJobs {
		if seen[j] != 2 {
			errs = append(errs, fmt.Errorf("check %s did not get start, then 0 (pings: %s)", j, strings.Join(r.Pings, " ")))
		}
		if job, ok := strings.CutPrefix(j, Server+"-"); ok && !strings.Contains(r.Textfile, `borgkit_last_exit_code{job="`+job+`"} 0`+"\n") {
			errs = append(errs, fmt.Errorf("%s's textfile does not show %s ending with 0:\n%s", Server, job, r.Textfile))
		}
	}
	return errs
}

// Action returns the first step with that name, or nil.
func (r *Report) Action(name string) *Action {
	for _, s := range r.Actions {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Err lists every required step that failed, every mirror that differs,
// mail that arrived, and a second provision that still changed something.
func (r *Report) Err() error {
	var errs []error
	for _, s := range r.Actions {
		if s.Err != nil && !s.Optional {
			errs = append(errs, fmt.Errorf("%s: %s: %w", s.Host, s.Name, s.Err))
		}
	}
	for _, m := range append(slices.Clone(r.Mirrors), r.Repaired...) {
		switch {
		case m.Err != nil:
			errs = append(errs, fmt.Errorf("mirror %s of %s: %w", m.Mirror, m.Repo, m.Err))
		case len(m.Diffs) > 0:
			errs = append(errs, fmt.Errorf("mirror %s of %s differs: %s", m.Mirror, m.Repo, strings.Join(m.Diffs, ", ")))
		}
	}
	for _, m := range r.Mails {
		errs = append(errs, fmt.Errorf("a healthy run sent mail: %q", m.Subject))
	}
	switch sc := r.Snapshot; {
	case sc == nil:
		errs = append(errs, errors.New("no snapshot was checked"))
	case sc.Err != nil:
		errs = append(errs, fmt.Errorf("snapshot %s: %w", sc.Name, sc.Err))
	case len(sc.Diffs) > 0:
		errs = append(errs, fmt.Errorf("snapshot %s differs: %s", sc.Name, strings.Join(sc.Diffs, ", ")))
	}
	if r.WatchdogReport == "" {
		errs = append(errs, fmt.Errorf("%s kept no watchdog report of %s", Server, Offsite))
	}
	errs = append(errs, r.pingErrs()...)
	for h, c := range r.SecondProvision {
		if c.Changes() > 0 || !c.NoChanges {
			errs = append(errs, fmt.Errorf("second provision of %s: %d to create, %d to change (want no changes)", h, c.Create, c.Change))
		}
	}
	return errors.Join(errs...)
}

// Packages the two roles ask for in this lab's config (roles.serverPackages
// and offsitePackages with cron and msmtp, no CIFS share, no VMs).
var scenarioPackages = []string{"borgbackup", "rsync", "logrotate", "openssh-client", "openssh-server",
	"cron", "msmtp", "cryptsetup-bin", "e2fsprogs"}

type scenario struct {
	l *Lab
	o ScenarioOptions
	r *Report
}

// RunScenario is the lab's end-to-end run, shared by the demo and
// TestLabEndToEnd: install borgkit and the lab config on john-ai, provision
// john-ai locally and pi over SSH, seed data, run the nightly, sync, check
// and restore-test jobs, compare the mirrors, try the recovery commands
// where this borgkit has them, and provision both hosts again, which must
// change nothing. It stops early only when provisioning fails (nothing
// after it would mean anything); the Report has every step, and
// Report.Err says what went wrong.
func RunScenario(ctx context.Context, l *Lab, o ScenarioOptions) (*Report, error) {
	if o.Start.IsZero() {
		o.Start = time.Now()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	s := &scenario{l: l, o: o, r: &Report{FirstProvision: map[string]PlanCounts{}, SecondProvision: map[string]PlanCounts{}}}
	err := s.run(ctx)
	if err == nil {
		err = s.r.Err()
	}
	return s.r, err
}

// Install is the scenario's start, for drivers that go their own way
// after it (the bench): the Debian packages provisioning checks for, then
// borgkit, the config and the lab admin key on john-ai, that key
// authorized on pi.
func Install(ctx context.Context, l *Lab, o ScenarioOptions) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Start.IsZero() {
		o.Start = time.Now()
	}
	s := &scenario{l: l, o: o, r: &Report{}}
	if err := s.packages(ctx); err != nil {
		return err
	}
	return s.install()
}

func (s *scenario) run(ctx context.Context) error {
	if err := s.packages(ctx); err != nil {
		return err
	}
	if err := s.install(); err != nil {
		return err
	}
	for _, h := range []string{Server, Offsite} {
		st := s.provision(ctx, h, false)
		if st.Err != nil {
			return fmt.Errorf("provision %s failed; the rest would mean nothing: %w", h, st.Err)
		}
	}
	if err := s.seed(); err != nil {
		return err
	}
	s.l.ResetMails()
	s.job(ctx, "nightly")
	if s.job(ctx, "sync").Err == nil {
		s.checkMirrors()
	}
	// The Pi keeps a snapshot of what arrived, out of the push key's reach.
	if s.exec(ctx, Offsite, "job snapshot", false, "borgkit", "job", "snapshot").Err == nil {
		s.checkSnapshot()
	}
	// The Pi's watchdog reads the heartbeat the sync just wrote and
	// reports to john-ai, whose stale check then finds everything fresh:
	// both silent.
	s.exec(ctx, Offsite, "job watchdog", false, "borgkit", "job", "watchdog")
	s.checkReport()
	s.job(ctx, "stale")
	// The audit hashes its share of both copies where they lie: the NAS
	// through its mount, the Pi through the hash key's forced command.
	s.job(ctx, "audit")
	s.job(ctx, "check")
	s.job(ctx, "restore-test")
	s.optional(ctx)
	// msmtp has returned by the time a job exits, so what was sent is in;
	// so have the pings.
	s.r.Mails = s.l.Mails()
	for _, p := range s.l.Pings() {
		s.r.Pings = append(s.r.Pings, p.URI)
	}
	s.progress("lab", "pings received:", strings.Join(s.r.Pings, " "))
	prom, err := s.l.ReadFile(Server, path.Join(TextfileDir, layout.TextfileName))
	if err != nil {
		s.progress(Server, "prometheus textfile:", err.Error())
	}
	s.r.Textfile = string(prom)
	if len(s.r.Mails) == 0 {
		s.progress("lab", "mail received:", "none (a healthy run is silent)")
	}
	for _, m := range s.r.Mails {
		s.progress("lab", "mail received:", fmt.Sprintf("%q from %s", m.Subject, m.From))
	}
	for _, h := range []string{Server, Offsite} {
		s.provision(ctx, h, true)
	}
	// Last, john-ai broken into: the push key turned on the offsite copy.
	s.attack(ctx)
	return nil
}

// checkReport reads the Pi's watchdog report as john-ai kept it.
func (s *scenario) checkReport() {
	b, err := s.l.ReadFile(Server, path.Join(layout.StateDir, layout.WatchdogReports, Offsite+".json"))
	if err != nil {
		s.progress(Server, "watchdog report of "+Offsite, "MISSING: "+err.Error())
		return
	}
	s.r.WatchdogReport = string(b)
	s.progress(Server, "watchdog report of "+Offsite, "kept")
}

func (s *scenario) progress(host, what, status string) {
	fmt.Fprintf(s.o.Out, "[%5.1fs] %s: %s %s\n", time.Since(s.o.Start).Seconds(), host, what, status)
}

// exec runs one step on a host and prints its progress line.
func (s *scenario) exec(ctx context.Context, host, name string, optional bool, argv ...string) *Action {
	st := &Action{Host: host, Name: name, Argv: argv, Optional: optional}
	t0 := time.Now()
	st.Stdout, st.Stderr, st.Err = s.l.RunContext(ctx, host, argv...)
	st.Duration = time.Since(t0)
	s.r.Actions = append(s.r.Actions, st)
	status := fmt.Sprintf("ok (%.1fs)", st.Duration.Seconds())
	if st.Err != nil {
		status = fmt.Sprintf("FAILED (exit %d, %.1fs)", ExitCode(st.Err), st.Duration.Seconds())
	}
	s.progress(host, name, status)
	switch {
	case s.o.Verbose:
		s.show(0, st.Stdout, st.Stderr)
	case st.Err != nil:
		s.show(40, st.Stdout, st.Stderr)
	}
	return st
}

// show prints a step's output indented: the last limit lines of each
// stream (0: all of them).
func (s *scenario) show(limit int, out ...[]byte) {
	for _, b := range out {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if limit > 0 && len(lines) > limit {
			fmt.Fprintf(s.o.Out, "      ... (%d lines)\n", len(lines)-limit)
			lines = lines[len(lines)-limit:]
		}
		for _, line := range lines {
			if line != "" {
				fmt.Fprintf(s.o.Out, "      %s\n", line)
			}
		}
	}
}

// packages makes sure the Debian packages provisioning checks for are
// installed on the real machine (/usr and dpkg's database are shared).
func (s *scenario) packages(ctx context.Context) error {
	args := append([]string{"-W", "-f=${Package} ${db:Status-Abbrev}\n"}, scenarioPackages...)
	out, _, _ := run(ctx, "", s.l.opts.Log, os.Environ(), nil, nil, append([]string{"dpkg-query"}, args...)...)
	have := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "ii" {
			have[f[0]] = true
		}
	}
	var miss []string
	for _, p := range scenarioPackages {
		if !have[p] {
			miss = append(miss, p)
		}
	}
	if len(miss) == 0 {
		return nil
	}
	if !s.o.InstallPackages {
		return fmt.Errorf("packages missing on this machine (the lab hosts share its /usr): %s; apt-get install them", strings.Join(miss, " "))
	}
	s.progress("lab", "apt-get install", strings.Join(miss, " "))
	argv := append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, miss...)
	if _, _, err := run(ctx, "", s.l.opts.Log, append(os.Environ(), "DEBIAN_FRONTEND=noninteractive"), nil, nil, argv...); err != nil {
		return fmt.Errorf("install packages: %w", err)
	}
	return nil
}

// install puts borgkit, the config and a "lab admin" SSH key on john-ai,
// and authorizes that key on pi outside borgkit's block: provisioning pi
// from john-ai logs in with it, as an operator's own key would.
func (s *scenario) install() error {
	bin, err := os.ReadFile(s.o.Binary)
	if err != nil {
		return fmt.Errorf("borgkit binary: %w", err)
	}
	cfg, _, err := s.l.Config()
	if err != nil {
		return err
	}
	priv, pub, err := newKey("lab-admin@" + Server)
	if err != nil {
		return err
	}
	files := []struct {
		host, path string
		data       []byte
		mode       os.FileMode
	}{
		{Server, "/usr/local/bin/borgkit", bin, 0o755},
		{Server, ConfigPath, cfg, 0o640},
		{Server, "/root/.ssh/id_ed25519", priv, 0o600},
		{Server, "/root/.ssh/id_ed25519.pub", pub, 0o644},
		{Offsite, "/root/.ssh/authorized_keys", append([]byte(adminKeyNote), pub...), 0o600},
	}
	for _, f := range files {
		if err := s.l.WriteFile(f.host, f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	s.progress(Server, "install", fmt.Sprintf("borgkit (%d MB) and %s", len(bin)>>20, ConfigPath))
	return nil
}

var planRE = regexp.MustCompile(`Plan: (\d+) to create, (\d+) to change, (\d+) unchanged, (\d+) conflicting, (\d+) skipped`)

func parsePlan(host string, out []byte) PlanCounts {
	var c PlanCounts
	if m := planRE.FindSubmatch(out); m != nil {
		n := func(i int) int { v, _ := strconv.Atoi(string(m[i])); return v }
		c = PlanCounts{Create: n(1), Change: n(2), Unchanged: n(3), Conflict: n(4), Skip: n(5)}
	}
	c.NoChanges = strings.Contains(string(out), host+": no changes.")
	return c
}

// provision runs borgkit provision for host on john-ai: locally for
// john-ai, over SSH (lab admin key, known_hosts from john-ai's own
// provisioning) for pi. again adds --detailed-exitcode: exit 3 if the
// second run still had changes.
func (s *scenario) provision(ctx context.Context, host string, again bool) *Action {
	argv := []string{"borgkit", "provision", host}
	if host == Server {
		argv = append(argv, "--local")
	}
	name := "provision " + host
	if again {
		argv = append(argv, "--detailed-exitcode")
		name += " (again)"
	}
	st := s.exec(ctx, Server, name, false, argv...)
	c := parsePlan(host, st.Stdout)
	if again {
		s.r.SecondProvision[host] = c
		if c.NoChanges && st.Err == nil {
			s.progress(Server, name, "reports no changes")
		}
	} else {
		s.r.FirstProvision[host] = c
		s.progress(Server, name, fmt.Sprintf("plan: %d to create, %d to change, %d unchanged, %d skipped",
			c.Create, c.Change, c.Unchanged, c.Skip))
	}
	return st
}

// seed writes the data the repos back up: documents and the canary in the
// /home tmpfs, a service's files in DockerDir.
func (s *scenario) seed() error {
	var n int
	for i := range 20 {
		body := strings.Repeat(fmt.Sprintf("document %d of the lab\n", i), 200+i*50)
		if err := s.l.WriteFile(Server, fmt.Sprintf("/home/user/doc%02d.txt", i), []byte(body), 0o644); err != nil {
			return err
		}
		n++
	}
	// Incompressible data too, so borg's chunks and segments are real size.
	noise := make([]byte, 2<<20)
	if _, err := rand.Read(noise); err != nil {
		return err
	}
	if err := s.l.WriteFile(Server, "/home/user/photo.raw", noise, 0o644); err != nil {
		return err
	}
	if err := s.l.WriteFile(Server, Canary, []byte("the canary sings in the lab\n"), 0o644); err != nil {
		return err
	}
	for i := range 5 {
		if err := s.l.WriteFile(Server, fmt.Sprintf("%s/volumes/db/data%d.bin", DockerDir, i), noise[i*1000:i*1000+64<<10], 0o600); err != nil {
			return err
		}
	}
	s.progress(Server, "seed", fmt.Sprintf("%d files in /home, canary %s, 5 files in %s", n+1, Canary, DockerDir))
	return nil
}

func (s *scenario) job(ctx context.Context, name string) *Action {
	return s.exec(ctx, Server, "job "+name, false, "borgkit", "job", name)
}

// checkMirrors compares every repo on john-ai's disk with its copy on the
// Pi and on the NAS, file by file, right after the sync: later jobs open
// the repos and may touch their files.
func (s *scenario) checkMirrors() {
	for _, m := range []struct{ name, host, dir string }{
		{"offsite", Offsite, OffsitePath},
		{"nas", Server, NASPath},
	} {
		for _, repo := range []string{RepoSystem, RepoDocker} {
			mc := MirrorCheck{Mirror: m.name, Repo: repo}
			src, err := s.l.HashTree(Server, "/mnt/backup/"+repo)
			if err == nil {
				var dst map[string]string
				dst, err = s.l.HashTree(m.host, m.dir+"/"+repo)
				mc.Diffs = DiffTrees(src, dst)
				for _, v := range src {
					if v != dirEntry && !strings.HasPrefix(v, "->") {
						mc.Files++
					}
				}
			}
			mc.Err = err
			status := fmt.Sprintf("byte-identical (%d files)", mc.Files)
			switch {
			case err != nil:
				status = "FAILED: " + err.Error()
			case len(mc.Diffs) > 0:
				status = fmt.Sprintf("DIFFERS in %d paths: %s", len(mc.Diffs), strings.Join(first(mc.Diffs, 5), ", "))
			}
			s.progress(m.host, "mirror "+m.name+" of "+repo, status)
			s.r.Mirrors = append(s.r.Mirrors, mc)
		}
	}
	hb, err := s.l.ReadFile(Offsite, OffsitePath+"/.heartbeat/"+Server+"-last-success")
	if err != nil {
		s.progress(Offsite, "heartbeat", "MISSING: "+err.Error())
		return
	}
	s.r.Heartbeat = strings.TrimSpace(string(hb))
	s.progress(Offsite, "heartbeat", s.r.Heartbeat)
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
