package lab

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Where the optional recovery steps work on john-ai.
const (
	BundleDir   = "/var/tmp/borgkit-lab-bundle"    // the "USB stick" the bundle is written to
	DrillMirror = "/var/tmp/borgkit-lab-pi-mirror" // the Pi's mirror, copied back for the drill
)

// commandsOf reads the "Available Commands:" section of cobra's help.
func commandsOf(help []byte) []string {
	var out []string
	in := false
	for _, line := range strings.Split(string(help), "\n") {
		switch {
		case strings.HasPrefix(line, "Available Commands:"):
			in = true
		case in && strings.TrimSpace(line) == "":
			in = false
		case in:
			if f := strings.Fields(line); len(f) > 0 {
				out = append(out, f[0])
			}
		}
	}
	return out
}

var flagRE = regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)`)

// flagsOf lists the long flags a help text shows.
func flagsOf(help []byte) []string {
	var out []string
	for _, m := range flagRE.FindAllSubmatch(help, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// usageArgs is the placeholder arguments of the help's first usage line
// ("borgkit drill [flags] BUNDLE" -> [BUNDLE]).
func usageArgs(help []byte) []string {
	lines := strings.Split(string(help), "\n")
	for i, line := range lines {
		if strings.TrimSpace(line) != "Usage:" || i+1 >= len(lines) {
			continue
		}
		var out []string
		for _, f := range strings.Fields(lines[i+1]) {
			f = strings.Trim(f, "[]")
			if f != "" && f == strings.ToUpper(f) && f != "..." {
				out = append(out, f)
			}
		}
		return out
	}
	return nil
}

// optional runs the commands other engineers are writing, where this
// borgkit has them: the recovery bundle, a drill against the Pi's mirror,
// the status dashboard. Their failures are reported, not fatal.
func (s *scenario) optional(ctx context.Context) {
	help, _, err := s.l.RunContext(ctx, Server, "borgkit", "help")
	if err != nil {
		s.progress(Server, "borgkit help", "FAILED: "+err.Error())
		return
	}
	s.r.Commands = commandsOf(help)
	has := func(c string) bool { return slices.Contains(s.r.Commands, c) }
	optional := !s.o.StrictOptional
	skip := func(name, why string) {
		s.r.Actions = append(s.r.Actions, &Action{Host: Server, Name: name, Skipped: why, Optional: true})
		s.progress(Server, name, "skipped: "+why)
	}

	bundleOK := false
	if has("recovery-bundle") {
		if argv, why := s.bundleArgv(ctx); argv != nil {
			bundleOK = s.exec(ctx, Server, "recovery-bundle", optional, argv...).OK()
		} else {
			skip("recovery-bundle", why)
		}
	} else {
		skip("recovery-bundle", "this borgkit has no recovery-bundle command yet")
	}
	switch {
	case !has("drill"):
		skip("drill", "this borgkit has no drill command yet")
	case !bundleOK:
		skip("drill", "no recovery bundle to drill with")
	default:
		if argv, why := s.drillArgv(ctx); argv != nil {
			s.exec(ctx, Server, "drill", optional, argv...)
		} else {
			skip("drill", why)
		}
	}
	if has("status") {
		st := s.exec(ctx, Server, "status", optional, "borgkit", "status")
		if !s.o.Verbose && st.Err == nil {
			s.show(0, st.Stdout)
		}
	} else {
		skip("status", "this borgkit has no status command yet")
	}
}

// bundleArgv is the recovery-bundle command line that writes the bundle.
func (s *scenario) bundleArgv(ctx context.Context) ([]string, string) {
	if _, _, err := s.l.RunContext(ctx, Server, "rm", "-rf", BundleDir); err != nil {
		return nil, err.Error()
	}
	return []string{"borgkit", "recovery-bundle", "--to", BundleDir}, ""
}

// drillArgv copies the Pi's mirror back to john-ai (a drill restores from
// the offsite copy alone) and builds the drill command line from its help.
func (s *scenario) drillArgv(ctx context.Context) ([]string, string) {
	help, _, err := s.l.RunContext(ctx, Server, "borgkit", "drill", "--help")
	if err != nil {
		return nil, "drill --help failed: " + err.Error()
	}
	from, err := s.l.Path(Offsite, OffsitePath)
	if err != nil {
		return nil, err.Error()
	}
	to, err := s.l.Path(Server, DrillMirror)
	if err != nil {
		return nil, err.Error()
	}
	if err := os.RemoveAll(to); err != nil {
		return nil, err.Error()
	}
	if _, err := s.l.local(ctx, "cp", "-a", from+"/.", to); err != nil {
		return nil, fmt.Sprintf("copy the Pi's mirror back: %v", err)
	}
	s.progress(Offsite, "mirror", "copied to john-ai:"+DrillMirror+" for the drill")
	flags := flagsOf(help)
	argv := []string{"borgkit", "drill"}
	pos := usageArgs(help)
	placed := 0
	for _, f := range []string{"--bundle", "--bundle-dir"} {
		if slices.Contains(flags, f) {
			argv = append(argv, f, BundleDir)
			placed |= 1
			break
		}
	}
	for _, f := range []string{"--mirror", "--source", "--from", "--dir", "--repos", "--path"} {
		if slices.Contains(flags, f) {
			argv = append(argv, f, DrillMirror)
			placed |= 2
			break
		}
	}
	for _, p := range pos {
		switch {
		case strings.Contains(p, "BUNDLE") && placed&1 == 0:
			argv = append(argv, BundleDir)
			placed |= 1
		case placed&2 == 0 && (strings.Contains(p, "MIRROR") || strings.Contains(p, "DIR") || strings.Contains(p, "SOURCE") || strings.Contains(p, "PATH")):
			argv = append(argv, DrillMirror)
			placed |= 2
		}
	}
	if placed != 3 {
		return nil, "cannot tell from its help how to pass the bundle and the mirror"
	}
	return argv, ""
}
