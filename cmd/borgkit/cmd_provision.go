package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/borgkit/borgkit/provision/builds"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/target"
	"github.com/borgkit/borgkit/roles/recipe"
)

// provisionOptions are the flags of provision and plan.
type provisionOptions struct {
	DryRun           bool
	DetailedExitCode bool
	Local            bool
	Root             string
	AcceptHostKey    string
	Identity         []string
	KnownHosts       []string
	Timeout          time.Duration
	Format           []string
	ServerRoot       string
	Builds           string
}

func (o *provisionOptions) AddFlags(fs *pflag.FlagSet, isPlan bool) {
	if !isPlan {
		fs.BoolVar(&o.DryRun, "dry-run", false, "show the plan and stop (same as borgkit plan)")
	}
	fs.BoolVar(&o.DetailedExitCode, "detailed-exitcode", false, "exit 3 when the plan has changes")
	fs.BoolVar(&o.Local, "local", false, "provision this machine instead of connecting over SSH")
	fs.StringVar(&o.Root, "root", "", "write every file under `DIR` instead of / (implies --local; live-only steps are skipped)")
	fs.StringVar(&o.AcceptHostKey, "accept-host-key", "", "trust the host key with this `SHA256:...` fingerprint")
	fs.StringSliceVar(&o.Identity, "identity", nil, "SSH private key `FILE` (default ~/.ssh/id_ed25519 and the borgkit key)")
	fs.StringSliceVar(&o.KnownHosts, "known-hosts", nil, "known_hosts `FILE` (default ~/.ssh/known_hosts)")
	fs.DurationVar(&o.Timeout, "connect-timeout", 15*time.Second, "SSH connect timeout")
	fs.StringSliceVar(&o.Format, "format", nil, "allow putting LUKS2 on this blank `DEVICE` (exactly as in the config); repeatable")
	fs.StringVar(&o.ServerRoot, "server-root", "", "read the server's keys from the tree under `DIR` (a server provisioned with --root)")
	fs.StringVar(&o.Builds, "builds", "", "take other architectures' borgkit from `DIR`/ARCH/borgkit (default: builds/ beside this program, else "+builds.PackageDir+")")
}

func newProvisionCommand(g *globals, isPlan bool) *cobra.Command {
	o := &provisionOptions{}
	use, short := "provision HOST", "Bring a host to the state the config describes"
	if isPlan {
		use, short = "plan HOST", "Show what provision would change, and change nothing"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

Every step is checked first and the plan is printed:
  + create   ~ change (with a diff for files)   = unchanged
  ! conflict (nothing is applied while any step conflicts)   # skipped
Then pending steps are applied in order and every step is checked again.
A second run reports no changes.

The host is reached over SSH at its configured address, unless --local or
--root is given or the host's name is this machine's hostname. With --root
and no config file, the embedded example config is used.` + exitStatusHelp,
		Args: exactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return hostNames(g), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if isPlan {
				o.DryRun = true
			}
			return runProvision(cmd.Context(), o, g, args[0], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd.Flags(), isPlan)
	return cmd
}

func hostNames(g *globals) []string {
	cfg, _, err := g.load(true)
	if err != nil {
		return nil
	}
	var names []string
	for _, h := range cfg.Hosts {
		names = append(names, h.Name)
	}
	return names
}

func runProvision(ctx context.Context, o *provisionOptions, g *globals, name string, out io.Writer) error {
	cfg, raw, err := g.load(o.Root != "")
	if err != nil {
		return err
	}
	hc, ok := cfg.Host(name)
	if !ok {
		return usageError{fmt.Errorf("host %q is not in %s", name, cfg.File)}
	}
	set, err := builds.Locate(o.Builds)
	if err != nil {
		return err
	}
	h, how, err := connect(ctx, o, hc)
	if err != nil {
		return err
	}
	defer h.Close()
	if g.Verbose {
		h = host.Logged(h, os.Stderr)
	}
	// The first round trip: what the host is decides which build and
	// which release's paths the plan uses.
	facts, err := target.Probe(ctx, h)
	if err != nil {
		return err
	}
	if facts.Warning != "" {
		fmt.Fprintf(os.Stderr, "borgkit: warning: %s: %s\n", name, facts.Warning)
	}
	local := host.NewLocal("this machine")
	if o.ServerRoot != "" {
		local = host.NewRooted("the server tree", o.ServerRoot)
	}
	stepList, err := recipe.Steps(cfg, name, recipe.Options{ConfigData: raw, Binary: installStep(set, facts), Release: &facts.Release,
		Format: o.Format, Local: local})
	if err != nil {
		return err
	}

	var printer plan.Printer = &plan.TextPrinter{W: out, Header: fmt.Sprintf("Plan for %s (%s, role %s; %s):", name, how, hc.Role, facts)}
	if g.JSON {
		printer = plan.JSONPrinter{W: out}
	}
	r, err := plan.Run(ctx, h, stepList, plan.Options{DryRun: o.DryRun, Printer: printer})
	if err != nil {
		return reported{err}
	}
	if o.DetailedExitCode && r.Pending() > 0 {
		return errPending
	}
	return nil
}

// connect picks the transport: a directory tree, this machine, or SSH.
func connect(ctx context.Context, o *provisionOptions, hc *config.Host) (host.Host, string, error) {
	if o.Root != "" {
		root, err := filepath.Abs(o.Root)
		if err != nil {
			return nil, "", usageError{err}
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, "", fmt.Errorf("--root %s: %w", root, err)
		}
		return host.NewRooted(hc.Name, root), "files under " + root, nil
	}
	if hn, _ := os.Hostname(); o.Local || strings.SplitN(hn, ".", 2)[0] == hc.Name {
		return host.NewLocal(hc.Name), "this machine", nil
	}
	home, _ := os.UserHomeDir()
	ids := o.Identity
	if len(ids) == 0 {
		ids = []string{filepath.Join(home, ".ssh", "id_ed25519"), layout.SSHKey}
	}
	kh := o.KnownHosts
	if len(kh) == 0 {
		kh = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	addr := net.JoinHostPort(hc.Address, strconv.Itoa(hc.SSH.PortOrDefault()))
	h, err := host.DialSSH(ctx, host.SSHConfig{
		Name: hc.Name, Addr: addr, User: hc.SSH.UserOrDefault(),
		IdentityFiles: ids, KnownHostsFiles: kh, AcceptHostKey: firstNonEmpty(o.AcceptHostKey, hc.SSH.HostKey),
		Timeout: o.Timeout,
	})
	if err != nil {
		return nil, "", err
	}
	return h, "ssh " + addr, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// installStep installs the build of the host's architecture, found in set.
func installStep(set *builds.Set, f *target.Facts) plan.Step {
	b, err := set.Find(f.Arch)
	return &builds.Install{Path: layout.Binary, Arch: f.Arch, Build: b, Missing: err, Package: f.Package, Version: version}
}
