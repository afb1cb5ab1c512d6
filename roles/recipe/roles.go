// Package roles turns the site config into the ordered steps that make a host
// what its role says: the server (john-ai), the offsite Pi, the ZFS archive.
package recipe

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/release"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/templates"
)

// Options carry what the role cannot derive from the config.
type Options struct {
	// ConfigData is installed as the host's /etc/borgkit/borgkit.yaml.
	ConfigData []byte
	// Records, when set, gives the host's own records of a repo on a
	// borg server (steps.RemoteBorgRepo.Records): the jobs' state, which
	// the recipes do not import (cmd/borgkit passes
	// state.NewRepoVoucher).
	Records func(name, path, encryption string) steps.Voucher
	// BinaryData is the borgkit executable to install; nil leaves the
	// binary step out (tests that do not care about it).
	BinaryData []byte
	// Binary, when set, is the step that installs borgkit instead: the
	// host architecture's build, run once on the host (builds.Install).
	Binary plan.Step
	// Release is the host's row of the release table (where rrsync
	// lives); nil is Debian 12's.
	Release *release.Release
	// Format names the devices the user allows borgkit to format
	// (--format); a device not named here is never formatted.
	Format []string
	// LUKSFormatArgs are extra luksFormat arguments (cheaper KDF settings
	// in test labs).
	LUKSFormatArgs []string
	// Local is the machine borgkit runs on — the server, when it
	// provisions its offsite host — whose keys the offsite role installs.
	// nil when borgkit runs elsewhere.
	Local host.Host
	// Retire are files of a hand-built setup to move aside (--retire),
	// besides the host's retire: list.
	Retire []string
}

// retired is every file the host retires: its config's and --retire's.
func (o Options) retired(h *config.Host) []string {
	out := append([]string{}, h.Retire...)
	for _, f := range o.Retire {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// Steps returns the ordered plan for the named host.
func Steps(cfg *config.Config, name string, o Options) ([]plan.Step, error) {
	h, ok := cfg.Host(name)
	if !ok {
		return nil, fmt.Errorf("host %q is not in %s", name, cfg.File)
	}
	switch h.Role {
	case config.RoleServer:
		return server(cfg, h, o)
	case config.RoleOffsite:
		return offsite(cfg, h, o)
	case config.RoleArchive:
		return archive(cfg, h, o)
	case config.RoleBorgServer:
		return borgServer(cfg, h, o)
	default:
		return nil, fmt.Errorf("host %s: role %q cannot be provisioned by this version of borgkit yet", h.Name, h.Role)
	}
}

// release is the host's row of the release table.
func (o Options) release() release.Release {
	if o.Release != nil {
		return *o.Release
	}
	return release.Default()
}

// base is what every role has: borgkit's own directories, config, identity,
// binary, log rotation.
func base(h *config.Host, o Options) ([]plan.Step, error) {
	s := []plan.Step{
		&steps.Dir{Path: layout.EtcDir, Mode: 0o755, Owner: host.Root},
		&steps.Dir{Path: path.Dir(layout.StateDir), Mode: 0o755, Owner: host.Root},
		&steps.Dir{Path: layout.StateDir, Mode: 0o755, Owner: host.Root},
		&steps.Dir{Path: layout.LogDir, Mode: 0o750, Owner: host.Root},
		configFile(o.ConfigData),
		hostFile(h.Name),
	}
	if o.Binary != nil {
		s = append(s, o.Binary)
	} else if o.BinaryData != nil {
		s = append(s, &steps.File{Path: layout.Binary, Content: o.BinaryData, Mode: 0o755, Owner: host.Root,
			Foreign: steps.ForeignUnlessBuiltFrom("github.com/borgkit/borgkit")})
	}
	lr, err := templates.Render("logrotate", map[string]any{"Managed": layout.Managed(), "LogDir": layout.LogDir})
	if err != nil {
		return nil, err
	}
	s = append(s, managedFile(layout.LogrotateFile, lr, 0o644))
	return s, nil
}

// configFile installs the config with a marker line. A file in its place
// that is not marked is someone else's, unless it is this very config (the
// copy provisioned from may be the installed file itself).
func configFile(data []byte) *steps.File {
	content := config.Installed(data)
	return &steps.File{Path: layout.ConfigFile, Content: content, Mode: 0o640, Owner: host.Root,
		Foreign: func(old []byte) string {
			if layout.MarkedBy(old, layout.Marker) || bytes.Equal(config.Installed(old), content) {
				return ""
			}
			return "it is not the config borgkit installed (its first line does not start with \"# " + layout.Marker + "\")"
		}}
}

// hostFile names the host this machine is. Another name there means the
// machine was provisioned as that host: a wrong address in the config must
// not turn a Pi into a server.
func hostFile(name string) *steps.File {
	return &steps.File{Path: layout.HostFile, Content: []byte(name + "\n"), Mode: 0o644, Owner: host.Root,
		Foreign: func(old []byte) string {
			switch other := strings.TrimSpace(string(old)); {
			case other == name:
				return ""
			case other != "" && !strings.ContainsAny(other, " \t\n"):
				return fmt.Sprintf("names this machine borgkit host %q, not %q (remove it to provision the machine as %s)", other, name, name)
			}
			return "it is not a host name borgkit wrote"
		}}
}

// packages are the role's own Debian packages plus what every host needs
// for its logs, schedule and mail.
func packages(cfg *config.Config, h *config.Host, own ...string) *steps.Packages {
	p := append([]string{"logrotate"}, own...)
	if h.SchedulerKind() == config.SchedulerCron {
		p = append(p, "cron")
	}
	if a := cfg.HostAlerts(h); len(a.Sendmail) > 0 && path.Base(a.Sendmail[0]) == "msmtp" {
		p = append(p, "msmtp")
	}
	return &steps.Packages{Names: p}
}

// finish appends what every role ends with: the mail account, the old
// setup retired, and the jobs' schedule, last, so nothing runs before the
// rest is in place and never beside the old schedule.
func finish(cfg *config.Config, h *config.Host, s []plan.Step, o Options) ([]plan.Step, error) {
	retired := o.retired(h)
	var mail []plan.Step
	a := cfg.HostAlerts(h)
	if a.SMTP != nil {
		var err error
		if mail, err = msmtpSteps(cfg, h, a); err != nil {
			return nil, err
		}
	}
	// Secrets are taken over before the files holding them are retired.
	for _, st := range mail {
		if _, ok := st.(*steps.Secret); ok {
			s = append(s, st)
		}
	}
	s = append(s, &steps.LegacySchedules{Watch: legacyWatch(h), Retired: retired})
	byPath := map[string]*steps.Retire{}
	for _, f := range retired {
		r := &steps.Retire{Path: f}
		byPath[f] = r
		s = append(s, r)
	}
	for _, st := range mail {
		switch f := st.(type) {
		case *steps.Secret:
		case *steps.File:
			if r, ok := byPath[f.Path]; ok {
				s = append(s, &steps.Replacing{File: f, Retire: r})
			} else {
				s = append(s, f)
			}
		default:
			s = append(s, st)
		}
	}
	s = append(s, tokenSteps(cfg, h, a)...)
	sched, err := scheduleSteps(h)
	if err != nil {
		return nil, err
	}
	return append(s, sched...), nil
}

func fsMode(m uint64) fs.FileMode { return fs.FileMode(m) & fs.ModePerm }

func managedFile(p string, content []byte, mode fs.FileMode) *steps.File {
	return &steps.File{Path: p, Content: content, Mode: mode, Owner: host.Root, Marker: layout.Marker}
}

// Job is one scheduled borgkit job.
type Job struct {
	Name string // borgkit job NAME
	Cron string // normalised 5-field spec
}

// scheduledJobs resolves the host's enabled schedules in a fixed order.
func scheduledJobs(h *config.Host) ([]Job, error) {
	var out []Job
	for _, key := range h.Jobs() {
		spec, on := h.Schedule(key)
		if !on {
			continue
		}
		sch, err := config.ParseSchedule(spec)
		if err != nil {
			return nil, fmt.Errorf("host %s schedule %s: %w", h.Name, key, err)
		}
		out = append(out, Job{Name: layout.JobCLI(key), Cron: sch.CronSpec()})
	}
	return out, nil
}

// scheduleSteps installs the host's jobs as one cron file or as systemd
// service and timer pairs, and removes what the other scheduler left.
func scheduleSteps(h *config.Host) ([]plan.Step, error) {
	js, err := scheduledJobs(h)
	if err != nil {
		return nil, err
	}
	if h.SchedulerKind() != "systemd" {
		b, err := templates.Render("cron", map[string]any{"Managed": layout.Managed(), "Host": h.Name, "Jobs": js, "Binary": layout.Binary})
		if err != nil {
			return nil, err
		}
		s := []plan.Step{managedFile(layout.CronFile, b, 0o644)}
		for _, j := range allJobs(h) {
			s = append(s, &steps.Absent{Path: layout.UnitPath(j, "timer"), Marker: layout.Marker}, &steps.Absent{Path: layout.UnitPath(j, "service"), Marker: layout.Marker})
		}
		return s, nil
	}
	s := []plan.Step{&steps.Absent{Path: layout.CronFile, Marker: layout.Marker}}
	timers := &steps.Timers{}
	for _, j := range js {
		sch, err := config.ParseSchedule(j.Cron)
		if err != nil {
			return nil, err
		}
		cal, err := sch.OnCalendar()
		if err != nil {
			return nil, fmt.Errorf("host %s job %s: %w", h.Name, j.Name, err)
		}
		data := map[string]any{"Managed": layout.Managed(), "Host": h.Name, "Job": j.Name, "Binary": layout.Binary, "Cron": j.Cron, "OnCalendar": cal,
			"DelaySec": int64(h.RandomDelay(j.Name).Seconds())}
		for _, kind := range []string{"service", "timer"} {
			b, err := templates.Render(kind, data)
			if err != nil {
				return nil, err
			}
			s = append(s, managedFile(layout.UnitPath(j.Name, kind), b, 0o644))
		}
		timers.Units = append(timers.Units, "borgkit-"+j.Name+".timer")
	}
	if len(timers.Units) > 0 {
		s = append(s, timers)
	}
	return s, nil
}

// allJobs names every job the role may schedule, enabled or not, so a job
// switched off or moved to cron leaves no unit behind.
func allJobs(h *config.Host) []string {
	var out []string
	for _, j := range config.RoleJobs(h.Role) {
		out = append(out, layout.JobCLI(j))
	}
	return out
}
