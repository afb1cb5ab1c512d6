package adopt

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/legacy"
)

// Options say what to read.
type Options struct {
	// Server is the machine the hand-built setup backs up (john-ai),
	// reached locally or over SSH. It is only read.
	Server host.Host
	// DialOffsite reaches the host the setup mirrors to over SSH, as the
	// server's ssh config names it (its alias's HostName, User, Port).
	// nil leaves the offsite host out: its part of the config is then
	// left to the user.
	DialOffsite func(ctx context.Context, addr, user string, port int) (host.Host, error)
	// Now stamps the header (default time.Now).
	Now func() time.Time
}

// Result is the config adopt wrote and what it could not settle.
type Result struct {
	// YAML is the config, comments included; it validates.
	YAML   []byte
	Config *config.Config
	// Guesses and LeftToUser are the notes of the file, collected: values
	// adopt had to guess, and what it leaves to the user.
	Guesses    []string
	LeftToUser []string
	// Retire are the old setup's files found on each host, for
	// `provision --retire` (written commented out in the config).
	Retire map[string][]string
}

// Adopt reads a hand-built backup setup and writes the borgkit config
// that describes it. Nothing on the hosts is changed: they are read
// through a guard that refuses every write and every program but a short
// list of readers, and borg reads the repos with --bypass-lock, keeping
// its own cache and security state in a scratch directory it removes.
func Adopt(ctx context.Context, o Options) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &survey{ctx: ctx, h: &readOnly{Host: o.Server}, notes: Notes{}, retire: map[string][]string{}}
	defer s.h.removeScratch(ctx)
	if err := s.server(); err != nil {
		return nil, err
	}
	if err := s.offsite(o.DialOffsite); err != nil {
		return nil, err
	}
	s.finish()
	return s.result(o.Now())
}

// survey is one run of Adopt.
type survey struct {
	ctx   context.Context
	h     *readOnly
	notes Notes
	left  []string
	cfg   config.Config
	srv   *config.Host // cfg.Hosts[0]
	jobs  []*legacy.Job
	fstab []legacy.FstabLine
	// borg and rsync calls of every job, in order.
	borgs  []borgCall
	rsyncs []rsyncCall
	// repoIDs maps a repo path to its id (from its config file).
	repoIDs map[string]string
	// remoteAlias is the ssh alias the setup mirrors to, remoteRel the
	// paths below the rrsync root by repo.
	remoteAlias string
	remoteRel   map[string]string
	// heartbeat is the path the setup leaves its heartbeat at, relative
	// to the rrsync root.
	heartbeat string
	retire    map[string][]string
	offHost   *config.Host
}

const srvPath = "hosts[0]"

func (s *survey) leave(format string, args ...any) {
	s.left = append(s.left, fmt.Sprintf(format, args...))
}

// server reads the server: its name, schedules and scripts, fstab,
// repos, mirrors, mail.
func (s *survey) server() error {
	name, err := s.hostname(s.h)
	if err != nil {
		return err
	}
	s.cfg = config.Config{Version: config.Version, Site: name}
	s.cfg.Hosts = []config.Host{{Name: name, Role: config.RoleServer}}
	s.srv = &s.cfg.Hosts[0]
	if b, err := s.h.ReadFile(s.ctx, layout.ServerHostKeyPub); err == nil {
		s.srv.SSH.HostPublicKey = strings.TrimSpace(string(b))
	}
	if s.jobs, err = legacy.Scan(s.ctx, s.h); err != nil {
		return fmt.Errorf("read the schedules of %s: %w", name, err)
	}
	for _, j := range s.jobs {
		for _, c := range j.Cmds() {
			if b, ok := parseBorg(c); ok {
				s.borgs = append(s.borgs, b)
			}
			if r, ok := parseRsync(c); ok {
				s.rsyncs = append(s.rsyncs, r)
			}
		}
	}
	if b, err := s.h.ReadFile(s.ctx, layout.Fstab); err == nil {
		s.fstab = legacy.Fstab(b)
	}
	if err := s.repos(); err != nil {
		return err
	}
	s.backupDisk()
	s.mirrors()
	s.schedules()
	s.mail()
	s.retireServer()
	return nil
}

// hostname is the host's short name, which borgkit's config names it by.
func (s *survey) hostname(h host.Host) (string, error) {
	b, err := h.ReadFile(s.ctx, "/etc/hostname")
	if err != nil {
		return "", fmt.Errorf("read /etc/hostname: %w", err)
	}
	n := strings.ToLower(strings.TrimSpace(string(b)))
	n, _, _ = strings.Cut(n, ".")
	if n == "" {
		return "", fmt.Errorf("/etc/hostname is empty")
	}
	return n, nil
}

// origin says where a command was read: "/usr/local/bin/backup-nightly.sh:27".
func origin(c legacy.Cmd) string { return fmt.Sprintf("%s:%d", c.File, c.Line) }

// fstabFor is the fstab line of the filesystem holding p, by the longest
// mountpoint.
func (s *survey) fstabFor(p string) *legacy.FstabLine {
	var best *legacy.FstabLine
	for i := range s.fstab {
		l := &s.fstab[i]
		if l.Target == "/" || l.Typ == "swap" || !layout.Under(p, l.Target) {
			continue
		}
		if best == nil || len(l.Target) > len(best.Target) {
			best = l
		}
	}
	return best
}

// backupDisk describes the disk the repos are on, from its fstab line.
func (s *survey) backupDisk() {
	if len(s.srv.Repos) == 0 {
		return
	}
	l := s.fstabFor(s.srv.Repos[0].Path)
	if l == nil {
		s.notes.add(srvPath+".disks", "adopt: no fstab line mounts %s: the repos are on the root filesystem, and borgkit's nightly refuses to run without a backup disk; add the disk here (blkid shows its UUID)", s.srv.Repos[0].Path)
		s.leave("describe the backup disk: no fstab line mounts the repos' directory")
		return
	}
	d := s.disk(l, "backup")
	d.Backup = true
	s.srv.Disks = append(s.srv.Disks, d)
	s.notes.add(fmt.Sprintf("%s.disks[%d]", srvPath, len(s.srv.Disks)-1), "from /etc/fstab line %d: %s", l.Line, strings.TrimSpace(l.Text))
}

// disk is the config entry for a block device's fstab line.
func (s *survey) disk(l *legacy.FstabLine, name string) config.Disk {
	d := config.Disk{Name: name, Mountpoint: l.Target, FSType: l.Typ}
	if d.FSType == config.DefaultFSType {
		d.FSType = ""
	}
	for _, o := range l.Options {
		if o != "defaults" {
			d.Options = append(d.Options, o)
		}
	}
	p := fmt.Sprintf("%s.disks[%d]", srvPath, len(s.srv.Disks))
	if u, ok := strings.CutPrefix(l.Source, "UUID="); ok {
		d.UUID = strings.ToLower(u)
		return d
	}
	u := s.uuidOf(s.h, l.Source, l.Target)
	if u == "" {
		s.notes.add(p+".uuid", "adopt: fstab names the disk %s and blkid gives no UUID for it: fill in the filesystem's UUID", l.Source)
		s.leave("the UUID of the disk mounted at %s", l.Target)
		d.UUID = "00000000-0000-0000-0000-000000000000"
		s.notes.guess(p+".uuid", "a placeholder")
		return d
	}
	d.UUID = u
	s.notes.add(p+".uuid", "fstab names it %s; blkid gives this filesystem UUID, which borgkit mounts it by", l.Source)
	return d
}

// uuidOf asks blkid (by device) or findmnt (by mountpoint) for a UUID.
func (s *survey) uuidOf(h host.Host, source, target string) string {
	if strings.HasPrefix(source, "/dev/") {
		if res, err := h.Run(s.ctx, host.Command("blkid", "-s", "UUID", "-o", "value", source)); err == nil {
			if u := strings.TrimSpace(string(res.Stdout)); u != "" {
				return strings.ToLower(u)
			}
		}
	}
	if res, err := h.Run(s.ctx, host.Command("findmnt", "-n", "-o", "UUID", "--mountpoint", target)); err == nil {
		return strings.ToLower(strings.TrimSpace(string(res.Stdout)))
	}
	return ""
}

// schedules maps each scheduled job of the setup to borgkit's job.
func (s *survey) schedules() {
	byJob := map[string]*legacy.Job{}
	systemd := 0
	for _, j := range s.jobs {
		job, why := classifyServer(j)
		if job == "" {
			continue
		}
		if len(j.Units) > 0 {
			systemd++
		}
		if prev, ok := byJob[job]; ok {
			s.leave("two schedules run what borgkit's %s job does (%s and %s); the config keeps the first", layout.JobCLI(job), where(prev), where(j))
			continue
		}
		byJob[job] = j
		p := srvPath + ".schedules." + job
		if j.Cron == "" {
			s.notes.add(p, "adopt: %s runs it (%s) on a schedule that is no cron expression; borgkit's default stays", where(j), why)
			s.leave("the schedule of %s (%s): not a plain time", layout.JobCLI(job), where(j))
			continue
		}
		s.srv.Schedules.Set(job, j.Cron)
		s.notes.add(p, "from %s (%s)", where(j), why)
	}
	if systemd > 0 && systemd >= len(byJob)-systemd {
		s.srv.Scheduler = config.SchedulerSystemd
		s.notes.add(srvPath+".scheduler", "the setup runs its jobs from systemd timers")
	}
	for _, job := range config.RoleJobs(config.RoleServer) {
		if _, ok := byJob[job]; !ok {
			def, _ := s.srv.Schedule(job)
			s.notes.add(srvPath+".schedules."+job, "adopt: the old setup has no %s job; borgkit adds one (%s) — set it to \"off\" to leave it out", layout.JobCLI(job), def)
		}
	}
}

func where(j *legacy.Job) string {
	if j.Line > 0 {
		return fmt.Sprintf("%s line %d", j.File, j.Line)
	}
	return j.File
}

// classifyServer names the borgkit job a scheduled entry of the server
// does, from what its scripts run, else from their names.
func classifyServer(j *legacy.Job) (job, why string) {
	var create, check, verify, extract, mirror bool
	for _, c := range j.Cmds() {
		if b, ok := parseBorg(c); ok {
			switch b.Sub {
			case "create":
				create = true
			case "check":
				if b.Has("--verify-data") {
					verify = true
				} else {
					check = true
				}
			case "extract":
				extract = true
			}
		}
		if r, ok := parseRsync(c); ok && (r.Flags["--delete"] || r.Flags["--size-only"]) {
			mirror = true
		}
	}
	// Names are the words of its files and command line that are not
	// options: run-parts --report is no report.
	var names []string
	for _, w := range strings.Fields(strings.ToLower(strings.Join(j.Files(), " ") + " " + j.Command)) {
		if !strings.HasPrefix(w, "-") {
			names = append(names, w)
		}
	}
	named := func(word string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, word) })
	}
	switch {
	case create:
		return layout.JobNightly, "runs borg create"
	case mirror:
		return layout.JobSync, "mirrors with rsync --delete"
	case verify:
		return layout.JobVerify, "runs borg check --verify-data"
	case check:
		return layout.JobCheck, "runs borg check"
	case extract:
		return layout.JobRestoreTest, "runs borg extract"
	case named("stale"):
		return layout.JobStale, "by its name"
	case named("summary") || named("report") || strings.Contains(" "+strings.ToLower(j.Command)+" ", " --email "):
		return layout.JobSummary, "by its name"
	}
	return "", ""
}

// retireServer lists the old setup's files: every schedule that works on
// the repos, the disks or the mirrors with the scripts it runs, the log
// rotation of their logs, and the msmtprc borgkit writes anew.
func (s *survey) retireServer() {
	watch := s.watched()
	var files []string
	var logs []string
	for _, j := range s.jobs {
		if len(j.Touches(watch)) == 0 && !j.RunsBorg() {
			continue
		}
		for _, f := range j.Files() {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
		for _, c := range j.Scripts[0].Cmds {
			for i, w := range c.Words {
				if (w == ">>" || w == ">") && i+1 < len(c.Words) {
					logs = append(logs, c.Words[i+1])
				} else if l, ok := strings.CutPrefix(w, ">>"); ok && l != "" {
					logs = append(logs, l)
				}
			}
		}
	}
	if names, err := legacy.ListDir(s.ctx, s.h, "/etc/logrotate.d"); err == nil {
		for _, n := range names {
			p := "/etc/logrotate.d/" + n
			b, err := s.h.ReadFile(s.ctx, p)
			if err != nil {
				continue
			}
			for _, l := range logs {
				if globCovers(string(b), l) && !slices.Contains(files, p) {
					files = append(files, p)
					break
				}
			}
		}
	}
	if a := s.cfg.Alerts.SMTP; a != nil {
		files = append(files, layout.Msmtprc)
	}
	s.retire[s.srv.Name] = files
}

// globCovers reports whether a logrotate file names the log, literally or
// by a glob in its directory.
func globCovers(conf, log string) bool {
	if strings.Contains(conf, log) {
		return true
	}
	for _, f := range strings.Fields(conf) {
		if strings.ContainsAny(f, "*?") && strings.HasPrefix(f, "/") {
			if ok, _ := path.Match(f, log); ok {
				return true
			}
		}
	}
	return false
}

// watched are the paths whose users are the old setup's jobs: repos,
// their disk, the local mirrors.
func (s *survey) watched() []string {
	var w []string
	for _, r := range s.srv.Repos {
		w = append(w, r.Path)
	}
	for _, d := range s.srv.Disks {
		w = append(w, d.Mountpoint)
	}
	for _, m := range s.srv.Mirrors {
		if m.Host == "" {
			w = append(w, m.Path)
		}
	}
	return w
}

// finish fills what every config needs and the setup did not say.
func (s *survey) finish() {
	if s.srv.Address == "" {
		s.srv.Address = s.srv.Name
		s.notes.guess(srvPath+".address", "the host name; the offsite host reaches this one by it (its Tailscale name or address)")
	}
	if s.cfg.Retention.IsZero() {
		s.cfg.Retention = config.Retention{Daily: 3, Weekly: 2, Monthly: 6}
		s.notes.guess("retention", "no plain borg prune --keep-* in the scripts: the first seed's 3 daily, 2 weekly, 6 monthly")
	}
	if s.cfg.Alerts.To == "" {
		s.cfg.Alerts.To = "root@" + s.srv.Name
		s.notes.guess("alerts.to", "no MAILTO or alert address in the setup")
		s.leave("the address alerts go to")
	}
	// The old scripts compacted every night; borgkit compacts weekly,
	// which is what keeps the offsite re-sends small.
	s.notes.add("compaction", "adopt: the old setup ran borg compact every night; borgkit compacts on Sundays, segments at least 25%% free (see README, Performance)")
}

func (s *survey) result(now time.Time) (*Result, error) {
	cfg := s.cfg
	for name, files := range s.retire {
		for i := range cfg.Hosts {
			if cfg.Hosts[i].Name != name || len(files) == 0 {
				continue
			}
			p := fmt.Sprintf("hosts[%d].retire", i)
			var b strings.Builder
			b.WriteString("The hand-built setup's own files on " + name + ". borgkit's provisioning refuses to run\n")
			b.WriteString("beside the schedules among them (two nightly jobs on one repo); once the config\n")
			b.WriteString("is checked, uncomment this list (or pass --retire FILE): each file is then moved\n")
			b.WriteString("aside, never deleted (FILE.borgkit-old; cron.d and logrotate.d files to\n")
			b.WriteString(layout.RetiredDir + "/...), so the change is undone by moving it back.\nretire:")
			for _, f := range files {
				b.WriteString("\n  - " + f)
			}
			s.notes[p] = append(s.notes[p], b.String())
		}
	}
	header := []string{
		fmt.Sprintf("borgkit config written by `borgkit adopt` on %s from the hand-built", now.Format("2006-01-02 15:04")),
		"backup setup it found. It describes that setup as it is: the repos, their",
		"encryption and archive names, the disks by UUID, the mirrors where they are,",
		"the old schedule. Comments say where each value was read; \"" + strings.TrimSuffix(Guessed, " — ") + "\" marks",
		"what had to be guessed. Check those, then run `borgkit plan HOST`.",
	}
	y := render(header, &cfg, s.notes)
	parsed, err := config.Parse(layout.ConfigFile, y)
	if err != nil {
		// %v, not %w: the file is adopt's, so its problem is a failure
		// (exit 1), never the user's bad config (exit 2).
		return nil, fmt.Errorf("the config adopt wrote does not validate (a bug in adopt; the file is below):\n%v\n%s", err, y)
	}
	r := &Result{YAML: y, Config: parsed, LeftToUser: s.left, Retire: s.retire}
	keys := make([]string, 0, len(s.notes))
	for k := range s.notes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, n := range s.notes[k] {
			if g, ok := strings.CutPrefix(n, Guessed); ok {
				r.Guesses = append(r.Guesses, k+": "+g)
			}
		}
	}
	return r, nil
}
