package legacy

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
)

// Where schedules live on a Debian host.
const (
	CronDir      = "/etc/cron.d"
	SystemCron   = "/etc/crontab"
	RootCrontab  = "/var/spool/cron/crontabs/root"
	UnitDir      = "/etc/systemd/system"
	maxDepth     = 4       // scripts running scripts sourcing libraries
	maxFileBytes = 1 << 20 // a script larger than this is not a script
)

// binDirs are searched for a command given by name: a hand-built setup
// keeps its scripts in /usr/local (the first seed's /usr/local/bin, the
// second's /usr/local/sbin/borg); system programs are never parsed.
var binDirs = []string{"/usr/local/sbin", "/usr/local/bin"}

// Wants are what Scan reads at fixed paths, for a survey (host.Survey) to
// answer in one exchange: the schedule directories with their files, the
// crontabs, and the listings of the bin directories a command name is
// looked up in. Scripts reached from there are read from the host.
func Wants() []host.Want {
	w := []host.Want{
		{Path: CronDir, List: true, Content: true}, {Path: UnitDir, List: true, Content: true},
		{Path: SystemCron, Content: true}, {Path: RootCrontab, Content: true},
	}
	for _, d := range binDirs {
		w = append(w, host.Want{Path: d, List: true})
	}
	return w
}

// Job is a schedule entry with the files it runs.
type Job struct {
	Entry
	// Scripts are the command line itself (as a script named after the
	// schedule file) and every script it runs or sources, in the order
	// found.
	Scripts []*Script
}

// Files are the job's files: its schedule's (the timer and service of a
// unit) and its scripts'.
func (j *Job) Files() []string {
	var out []string
	if len(j.Units) > 0 {
		out = append(out, j.Units...)
	} else {
		out = append(out, j.File)
	}
	for _, s := range j.Scripts[1:] {
		if !slices.Contains(out, s.Path) {
			out = append(out, s.Path)
		}
	}
	return out
}

// Cmds are every command of every script of the job.
func (j *Job) Cmds() []Cmd {
	var out []Cmd
	for _, s := range j.Scripts {
		out = append(out, s.Cmds...)
	}
	return out
}

// Touches lists the paths of the given ones that a word of the job's
// commands or a variable of its scripts names, or a path below them.
func (j *Job) Touches(paths []string) []string {
	var hit []string
	check := func(w string) {
		for _, p := range PathsIn(w) {
			for _, q := range paths {
				if q != "" && q != "/" && layout.Under(p, q) && !slices.Contains(hit, q) {
					hit = append(hit, q)
				}
			}
		}
	}
	for _, s := range j.Scripts {
		for _, c := range s.Cmds {
			for _, w := range c.Words {
				check(w)
			}
		}
		for _, v := range s.Vars {
			check(v)
		}
	}
	sort.Strings(hit)
	return hit
}

// RunsBorg reports whether any command of the job is borg.
func (j *Job) RunsBorg() bool {
	for _, c := range j.Cmds() {
		if base(c.Name()) == "borg" {
			return true
		}
	}
	return false
}

// PathsIn are the absolute local paths a word names: the word itself, an
// option's value (--exclude=/x), a borg location before "::" (repo::name).
// A remote rsync target (host:path) names no local path.
func PathsIn(w string) []string {
	var out []string
	if _, v, ok := strings.Cut(w, "="); ok && strings.HasPrefix(v, "/") {
		w = v
	}
	if i := strings.Index(w, "::"); i >= 0 {
		w = w[:i]
	}
	if strings.HasPrefix(w, "/") && !strings.ContainsAny(w, "$`*?[") {
		out = append(out, path.Clean(w))
	}
	return out
}

// Scan reads the host's schedules (cron.d, /etc/crontab, root's crontab,
// systemd units) and the scripts they run, without changing anything.
// Files of borgkit's own are left out.
func Scan(ctx context.Context, h host.Host) ([]*Job, error) {
	var jobs []*Job
	add := func(es []Entry) error {
		for _, e := range es {
			j, err := follow(ctx, h, e)
			if err != nil {
				return err
			}
			jobs = append(jobs, j)
		}
		return nil
	}
	names, err := ListDir(ctx, h, CronDir)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		p := path.Join(CronDir, n)
		// cron skips names with dots (and so borgkit's retired copies);
		// borgkit's own file is not legacy.
		if strings.ContainsAny(n, ".~") || p == layout.CronFile {
			continue
		}
		b, err := readSmall(ctx, h, p)
		if err != nil {
			return nil, err
		}
		if layout.MarkedBy(b, layout.Marker) {
			continue
		}
		if err := add(CronFile(p, b, true)); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		p      string
		system bool
	}{{SystemCron, true}, {RootCrontab, false}} {
		b, err := readSmall(ctx, h, f.p)
		if host.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := add(CronFile(f.p, b, f.system)); err != nil {
			return nil, err
		}
	}
	units, err := unitEntries(ctx, h)
	if err != nil {
		return nil, err
	}
	if err := add(units); err != nil {
		return nil, err
	}
	return jobs, nil
}

// unitEntries are the timers under /etc/systemd/system with their
// services, and the services enabled to start at boot that no timer
// starts; borgkit's own units are left out.
func unitEntries(ctx context.Context, h host.Host) ([]Entry, error) {
	names, err := ListDir(ctx, h, UnitDir)
	if err != nil {
		return nil, err
	}
	parsed := map[string]Unit{}
	read := func(n string) (Unit, error) {
		if u, ok := parsed[n]; ok {
			return u, nil
		}
		b, err := readSmall(ctx, h, path.Join(UnitDir, n))
		if err != nil {
			return nil, err
		}
		if layout.MarkedBy(b, layout.Marker) {
			return nil, nil
		}
		u := ParseUnit(b)
		parsed[n] = u
		return u, nil
	}
	var out []Entry
	timed := map[string]bool{}
	for _, n := range names {
		if !strings.HasSuffix(n, ".timer") || strings.HasPrefix(n, "borgkit-") {
			continue
		}
		t, err := read(n)
		if err != nil || t == nil {
			if host.IsNotExist(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		svc := t.Get("Timer", "Unit")
		if svc == "" {
			svc = strings.TrimSuffix(n, ".timer") + ".service"
		}
		timed[svc] = true
		e := Entry{File: path.Join(UnitDir, n), Units: []string{path.Join(UnitDir, n)}}
		if cal := t.Get("Timer", "OnCalendar"); cal != "" {
			e.Cron, _ = CalendarCron(cal)
		}
		if t.Get("Timer", "OnBootSec") != "" || t.Get("Timer", "OnStartupSec") != "" {
			e.Boot = true
		}
		s, err := read(svc)
		if err == nil && s != nil {
			e.Units = append(e.Units, path.Join(UnitDir, svc))
			e.Command = strings.Join(s.ExecCommands(), "\n")
		} else if err != nil && !host.IsNotExist(err) {
			return nil, err
		}
		out = append(out, e)
	}
	for _, n := range names {
		if !strings.HasSuffix(n, ".service") || strings.HasPrefix(n, "borgkit-") || timed[n] {
			continue
		}
		s, err := read(n)
		if err != nil {
			return nil, err
		}
		if s == nil || s.Get("Install", "WantedBy") == "" && s.Get("Install", "RequiredBy") == "" {
			continue // not started at boot, nor by a timer
		}
		out = append(out, Entry{File: path.Join(UnitDir, n), Units: []string{path.Join(UnitDir, n)}, Boot: true,
			Command: strings.Join(s.ExecCommands(), "\n")})
	}
	return out, nil
}

// follow parses the entry's command line and every script it reaches.
func follow(ctx context.Context, h host.Host, e Entry) (*Job, error) {
	j := &Job{Entry: e}
	seen := map[string]bool{}
	read := func(sourced bool) Reader {
		return func(p string) ([]byte, bool) {
			p = resolve(ctx, h, p)
			if p == "" {
				return nil, false
			}
			b, err := readSmall(ctx, h, p)
			if err != nil || !isScript(b, sourced) {
				return nil, false // gone, a directory, a binary: nothing to read
			}
			return b, true
		}
	}
	top := ParseShellWith(e.File, []byte(e.Command), copyMap(e.Env), read(true))
	var walk func(s *Script, depth int)
	walk = func(s *Script, depth int) {
		for _, sc := range s.All() {
			if sc != s && seen[sc.Path] {
				continue
			}
			seen[sc.Path] = true
			j.Scripts = append(j.Scripts, sc)
		}
		if depth >= maxDepth {
			return
		}
		for _, sc := range s.All() {
			for _, c := range sc.Cmds {
				for _, p := range scriptsRun(c) {
					p = resolve(ctx, h, p)
					if p == "" || seen[p] {
						continue
					}
					b, ok := read(false)(p)
					if !ok {
						continue
					}
					seen[p] = true
					walk(ParseShellWith(p, b, copyMap(sc.Vars), read(true)), depth+1)
				}
			}
		}
	}
	walk(top, 0)
	return j, nil
}

// scriptsRun are the files a command runs as a script: its program, or
// the file given to sh/bash.
func scriptsRun(c Cmd) []string {
	a := c.Args()
	if len(a) == 0 {
		return nil
	}
	switch base(a[0]) {
	case "sh", "bash", "dash":
		for _, w := range a[1:] {
			if !strings.HasPrefix(w, "-") {
				return []string{w}
			}
		}
		return nil
	case ".", "source":
		return nil // followed as a source
	}
	return []string{a[0]}
}

// resolve turns a program as written into a file to read: an absolute
// path as it is, a bare name looked up in /usr/local's bin directories.
func resolve(ctx context.Context, h host.Host, p string) string {
	if strings.ContainsAny(p, "$`") {
		return ""
	}
	if strings.HasPrefix(p, "/") {
		p = path.Clean(p)
		for _, d := range systemDirs {
			if layout.Under(p, d) {
				return ""
			}
		}
		return p
	}
	if strings.Contains(p, "/") {
		return ""
	}
	for _, d := range binDirs {
		q := path.Join(d, p)
		if fi, err := h.Lstat(ctx, q); err == nil && !fi.IsDir() {
			return q
		}
	}
	return ""
}

// isScript tells a shell script from a binary or another language's
// script; a sourced library needs no #! line.
func isScript(b []byte, sourced bool) bool {
	if bytes.Contains(b[:min(len(b), 4096)], []byte{0}) {
		return false
	}
	if sourced {
		return true
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	return bytes.HasPrefix(first, []byte("#!")) && shellRE.Match(first)
}

var shellRE = regexp.MustCompile(`[/ ](ba|da|k|z)?sh(\s|$)`)

// systemDirs hold the distribution's programs, never a hand-built setup's
// scripts: borg itself is a Python script in /usr/bin.
var systemDirs = []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/lib", "/lib", "/usr/libexec"}

func readSmall(ctx context.Context, h host.Host, p string) ([]byte, error) {
	fi, err := h.Lstat(ctx, p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() || fi.Mode.IsRegular() && fi.Size > maxFileBytes {
		return nil, fmt.Errorf("%s is not a script-sized file", p)
	}
	b, err := h.ReadFile(ctx, p) // a symlink is read through: scripts are often linked into bin
	if err == nil && len(b) > maxFileBytes {
		return nil, fmt.Errorf("%s is %d bytes, too large for a script", p, len(b))
	}
	return b, err
}

// ListDir names the entries of dir that are regular files or symlinks;
// nil when dir does not exist.
func ListDir(ctx context.Context, h host.Host, dir string) ([]string, error) {
	ents, err := h.ReadDir(ctx, dir)
	if host.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.Mode.IsRegular() || e.Mode&fs.ModeSymlink != 0 {
			out = append(out, e.Name)
		}
	}
	return out, nil
}
