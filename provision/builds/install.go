package builds

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/provision/tools"
)

// PackageBinary is where the borgkit package installs the program.
const PackageBinary = "/usr/bin/borgkit"

// marker is in every borgkit executable (its module path): a file at the
// install path without it is someone else's.
const marker = "github.com/borgkit/borgkit"

// Install puts the host's build at Path, the program its jobs run, and
// proves it runs there: whenever the file is as wanted, Check runs
// `Path version --json` on the host, so the re-check after applying fails
// the run on a binary that cannot execute (exec format error) or is not
// the architecture's build.
//
// On a host with the borgkit package installed (Package set), Path is
// instead a symlink to the package's PackageBinary: one program on the
// host, which apt upgrades for the jobs too, and no provisioned copy in
// /usr/local/bin shadowing the package's on the PATH. Its version must
// then be the provisioning borgkit's own.
type Install struct {
	Path string
	// Arch is the host's Debian architecture.
	Arch string
	// Build is what to install; Missing says why there is none (a
	// conflict naming the file and how to get it).
	Build   *Build
	Missing error
	// Package is the version of the borgkit package on the host, "" when
	// it has none.
	Package string
	// Version is the provisioning borgkit's own version.
	Version string
}

func (s *Install) ID() string { return "file." + s.Path }

func (s *Install) file() *steps.File {
	return &steps.File{Path: s.Path, Content: s.Build.Data, Sum: s.Build.Digest(), Mode: 0o755, Owner: host.Root, Foreign: steps.ForeignUnlessBuiltFrom(marker)}
}

// Reads are the installed file's (its digest: the build is large), and
// the program's version, which the survey runs only where the file is
// this build (Guard): a no-change plan then needs no exchange of its own
// for it.
func (s *Install) Reads() []host.Want {
	w := []host.Want{{Path: s.Path, Content: true}}
	if s.Build != nil && s.Package == "" {
		w = append(w, host.Want{Run: s.versionArgv(), Guard: s.Build.Digest()})
	}
	return w
}

func (s *Install) versionArgv() []string { return []string{s.Path, "version", "--json"} }

func (s *Install) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	if s.Package != "" && h.Live() {
		return s.checkLink(ctx, h)
	}
	if s.Missing != nil {
		return plan.Conflicts(s.Missing.Error()), nil
	}
	fi, err := h.Lstat(ctx, s.Path)
	if err == nil && fi.Mode&fs.ModeSymlink != 0 {
		// A link to a package that is gone: the build replaces it.
		return plan.Modifies(fmt.Sprintf("replace the symlink with the %s build (%d bytes)", s.Arch, len(s.Build.Data))), nil
	}
	c, err := s.file().Check(ctx, h)
	if err != nil || c.Action != plan.OK {
		if c.Action.Pending() {
			c.Summary += ", the " + s.Arch + " build"
		}
		return c, err
	}
	return s.runs(ctx, h, "")
}

// runs runs the installed program's version on the host: OK when it runs
// and is arch's build (and, with want, that version).
func (s *Install) runs(ctx context.Context, h host.Host, want string) (plan.Check, error) {
	argv := s.versionArgv()
	argv[0] = h.Path(argv[0])
	res, err := h.Run(ctx, host.Cmd{Argv: argv})
	if err != nil {
		return plan.Conflicts(fmt.Sprintf("%s does not run on %s: %v", s.Path, h.Name(), err)), nil
	}
	var v struct {
		Version  string `json:"version"`
		Platform string `json:"platform"`
	}
	if err := json.Unmarshal(res.Stdout, &v); err != nil {
		return plan.Conflicts(fmt.Sprintf("%s version --json on %s: %v: %q", s.Path, h.Name(), err, res.Stdout)), nil
	}
	if v.Platform != Platform(s.Arch) {
		return plan.Conflicts(fmt.Sprintf("%s on %s is a %s build; the host is %s (%s)", s.Path, h.Name(), v.Platform, s.Arch, Platform(s.Arch))), nil
	}
	if want != "" && v.Version != want {
		return plan.Conflicts(fmt.Sprintf("%s on %s is the borgkit package %s (borgkit %s), this borgkit is %s: install the same version there "+
			"(apt-get install ./borgkit_*_%s.deb) or remove the package", PackageBinary, h.Name(), s.Package, v.Version, want, s.Arch)), nil
	}
	return plan.Satisfied(), nil
}

func (s *Install) checkLink(ctx context.Context, h host.Host) (plan.Check, error) {
	fi, err := h.Lstat(ctx, s.Path)
	switch {
	case host.IsNotExist(err):
		return plan.Creates("symlink to the borgkit package's " + PackageBinary), nil
	case err != nil:
		return plan.Check{}, err
	case fi.Mode&fs.ModeSymlink != 0:
		res, err := h.Run(ctx, host.Command(tools.Readlink, s.Path))
		if err != nil {
			return plan.Check{}, fmt.Errorf("readlink %s: %w", s.Path, err)
		}
		if got := strings.TrimSpace(string(res.Stdout)); got != PackageBinary {
			return plan.Modifies(fmt.Sprintf("symlink to %s -> %s", got, PackageBinary)), nil
		}
		return s.runs(ctx, h, s.Version)
	case fi.Mode.IsRegular():
		// The copy an earlier run installed gives way to the package's
		// program; a file that is not borgkit's stays, as a conflict.
		b, err := h.ReadFile(ctx, s.Path)
		if err != nil {
			return plan.Check{}, err
		}
		if !strings.Contains(string(b), marker) {
			return plan.Conflicts(fmt.Sprintf("%s exists and is not borgkit; move it aside", s.Path)), nil
		}
		return plan.Modifies("replace the provisioned copy with a symlink to the borgkit package's " + PackageBinary), nil
	default:
		return plan.Conflicts(fmt.Sprintf("%s is not a file or symlink", s.Path)), nil
	}
}

func (s *Install) Apply(ctx context.Context, h host.Host) error {
	if s.Package != "" && h.Live() {
		// ln -sfn replaces a file or a link in one program run.
		if _, err := h.Run(ctx, host.Command(tools.Ln, "-sfn", PackageBinary, s.Path)); err != nil {
			return fmt.Errorf("link %s to %s: %w", s.Path, PackageBinary, err)
		}
		return nil
	}
	if s.Missing != nil {
		return s.Missing
	}
	if fi, err := h.Lstat(ctx, s.Path); err == nil && fi.Mode&fs.ModeSymlink != 0 {
		if err := h.Remove(ctx, s.Path); err != nil {
			return err
		}
	}
	return s.file().Apply(ctx, h)
}
