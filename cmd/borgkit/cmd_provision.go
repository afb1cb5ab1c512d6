package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/borgkit/borgkit/provision/builds"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/progress"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/provision/target"
	"github.com/borgkit/borgkit/roles/jobs/state"
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
	Retire           []string
	Builds           string
	All              bool
	Parallel         int
}

func (o *provisionOptions) AddFlags(fs *pflag.FlagSet, isPlan bool) {
	if !isPlan {
		fs.BoolVar(&o.DryRun, "dry-run", false, "show the plan and stop (same as borgkit plan)")
	}
	fs.BoolVar(&o.DetailedExitCode, "detailed-exitcode", false, "exit 3 when the plan has changes, 0 when it has none")
	fs.BoolVar(&o.Local, "local", false, "provision this machine instead of connecting over SSH")
	fs.StringVar(&o.Root, "root", "", "write every file under `DIR` instead of / (implies --local; live-only steps are skipped)")
	fs.StringVar(&o.AcceptHostKey, "accept-host-key", "", "trust the host key with this `SHA256:...` fingerprint")
	fs.StringSliceVar(&o.Identity, "identity", nil, "SSH private key `FILE` (default ~/.ssh/id_ed25519 and the borgkit key)")
	fs.StringSliceVar(&o.KnownHosts, "known-hosts", nil, "known_hosts `FILE` (default ~/.ssh/known_hosts)")
	fs.DurationVar(&o.Timeout, "connect-timeout", 15*time.Second, "SSH connect timeout")
	fs.StringSliceVar(&o.Format, "format", nil, "allow putting LUKS2 on this blank `DEVICE` (exactly as in the config); repeatable")
	fs.StringSliceVar(&o.Retire, "retire", nil, "move this `FILE` of a hand-built setup aside (FILE.borgkit-old), as the host's retire: list does; repeatable")
	fs.StringVar(&o.ServerRoot, "server-root", "", "read the server's keys from the tree under `DIR` (a server provisioned with --root)")
	fs.BoolVar(&o.All, "all", false, "every host of the config, in parallel over SSH (see HOSTS below)")
	fs.IntVar(&o.Parallel, "parallel", defaultParallel, "with several hosts: at most `N` hosts at once (N SSH connections)")
	fs.StringVar(&o.Builds, "builds", "", "take other architectures' borgkit from `DIR`/ARCH/borgkit (default: builds/ beside this program, else "+builds.PackageDir+")")
}

func newProvisionCommand(g *globals, isPlan bool) *cobra.Command {
	o := &provisionOptions{}
	cmd := &cobra.Command{
		Use:   "provision HOST...",
		Short: "Bring a host to the state the config describes",
		Long: `Bring HOST to the state the config describes.

Every step is checked first and the plan is printed:
  + create   ~ change (with a diff for files)   = unchanged
  ! conflict (nothing is applied while any step conflicts)   # skipped
Warnings (a placeholder password still in place) are printed under the
plan and do not stop it. Then pending steps are applied in order (small
files and directories beside each other, each after what is on its path)
and every step is checked again. A second run reports no changes. With
--dry-run it stops after the plan, as borgkit plan does.
` + transportHelp + fleetHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.All || len(args) > 0 {
				return nil // fleetHosts checks the names against the config
			}
			return exactArgs(1)(cmd, args)
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return hostNames(g), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if isPlan {
				o.DryRun = true
			}
			if !o.All && len(args) == 1 {
				return runProvision(cmd.Context(), o, g, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			return runProvisionFleet(cmd.Context(), o, g, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	failed := "a step could not be checked or applied, a conflict stopped the plan, or the host was unreachable"
	ok, pending := "the host is as the config describes: nothing to do, or every change applied and re-checked", "the plan had changes, and they were applied"
	if isPlan {
		failed = "a step could not be checked, a conflict would stop provision, or the host was unreachable"
		ok, pending = "the plan was shown (with --detailed-exitcode: and it has no changes)", "the plan has changes"
		cmd.Use, cmd.Short = "plan HOST...", "Show what provision would change, and change nothing"
		cmd.Long = `Show what borgkit provision HOST would change, and change nothing: every
step is checked and the plan is printed:
  + create   ~ change (with a diff for files)   = unchanged
  ! conflict (provision would apply nothing)   # skipped
Warnings (a placeholder password still in place) are printed under the
plan. Nothing is applied; the same as borgkit provision HOST --dry-run.
` + transportHelp + fleetHelp
	}
	g.configFlag(cmd)
	g.jsonFlag(cmd, "the plan and its outcome")
	g.verboseFlag(cmd, "log every program run on the host, with exit status and time")
	o.AddFlags(cmd.Flags(), isPlan)
	return withExits(cmd,
		exitCase{exitOK, ok},
		exitCase{exitFailed, failed},
		usageCase("a bad config, or a host not in it"),
		exitCase{exitSomeFailed, "with several hosts: some failed (as for 1), the others did not; the summary names them"},
		exitCase{exitPending, "with --detailed-exitcode: " + pending})
}

// transportHelp is how provision and plan reach the host.
const transportHelp = `
The host is reached over SSH at its configured address, unless --local or
--root is given or the host's name is this machine's hostname. With --root
and no config file, the embedded example config is used.`

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

// unknownHost is the usage error for a HOST argument the config lacks.
func unknownHost(cfg *config.Config, name string) error {
	names := hostNamesOf(cfg)
	if best := closest(name, names); best != "" {
		return usagef("host %q is not in %s; did you mean %s?", name, cfg.File, best)
	}
	return usagef("host %q is not in %s (hosts: %s)", name, cfg.File, strings.Join(names, ", "))
}

// fleetHelp is how provision and plan take several hosts.
const fleetHelp = `
HOSTS
Name several hosts, or --all for every host of the config: they are
planned and applied in parallel, at most --parallel at once, each over its
own SSH connection. Each host's output is printed whole as one section
when it is done, then a summary line per host. A failing host never stops
the others. A host with a repo on a borg-server host of the config starts
once that host is done. With --root DIR, each host's files go under DIR/HOST. With
--json, one document: every host's plan under its name, with its outcome.
--local and --accept-host-key name one machine and take one host.`

func runProvision(ctx context.Context, o *provisionOptions, g *globals, name string, out, errw io.Writer) error {
	cfg, raw, err := g.load(o.Root != "")
	if err != nil {
		return err
	}
	set, err := builds.Locate(o.Builds)
	if err != nil {
		return err
	}
	return runProvisionHost(ctx, o, g, cfg, raw, set, name, out, errw)
}

// runProvisionFleet provisions (or plans) several hosts at once: see
// fleetHelp.
func runProvisionFleet(ctx context.Context, o *provisionOptions, g *globals, args []string, out, errw io.Writer) error {
	if o.Local || o.AcceptHostKey != "" {
		return usagef("--local and --accept-host-key name one machine: give one HOST")
	}
	if o.Parallel < 1 {
		return usagef("--parallel %d: at least 1", o.Parallel)
	}
	cfg, raw, err := g.load(o.Root != "")
	if err != nil {
		return err
	}
	names, err := fleetHosts(cfg, o.All, args)
	if err != nil {
		return err
	}
	// One set for the fleet: each build is read and hashed once, not once
	// per host.
	set, err := builds.Locate(o.Builds)
	if err != nil {
		return err
	}
	return fleet(ctx, names, borgServersFirst(cfg), o.Parallel, g.JSON, out, func(ctx context.Context, name string, out, errw io.Writer) error {
		ho := *o
		if o.Root != "" {
			ho.Root = filepath.Join(o.Root, name)
		}
		return runProvisionHost(ctx, &ho, g, cfg, raw, set, name, out, errw)
	})
}

// borgServersFirst says which hosts wait for which in a fleet run: a
// host with a repo on a borg-server host of the config waits for that
// host, so that on a first run the server's user, client directories and
// keys are there when the client's repo step runs borg init on it.
func borgServersFirst(cfg *config.Config) map[string][]string {
	servers := map[string]string{} // its address and its name: a repo URL may name either
	for _, h := range cfg.Hosts {
		if h.Role == config.RoleBorgServer {
			servers[h.Address], servers[h.Name] = h.Name, h.Name
		}
	}
	after := map[string][]string{}
	for _, h := range cfg.Hosts {
		for i := range h.Repos {
			loc := h.Repos[i].Location()
			if s, ok := servers[loc.Host]; ok && loc.Remote() && s != h.Name && !slices.Contains(after[h.Name], s) {
				after[h.Name] = append(after[h.Name], s)
			}
		}
	}
	return after
}

func runProvisionHost(ctx context.Context, o *provisionOptions, g *globals, cfg *config.Config, raw []byte, set *builds.Set, name string, out, errw io.Writer) error {
	hc, ok := cfg.Host(name)
	if !ok {
		return unknownHost(cfg, name)
	}
	for _, f := range o.Retire {
		if why := config.RetireProblem(hc, f); why != "" {
			return usageError{fmt.Errorf("--retire %s", why)}
		}
	}
	local := host.NewLocal("this machine")
	if o.ServerRoot != "" {
		local = host.NewRooted("the server tree", o.ServerRoot)
	}
	stepsFor := func(facts *target.Facts) ([]plan.Step, error) {
		return recipe.Steps(cfg, name, recipe.Options{ConfigData: raw, Binary: installStep(set, facts), Release: &facts.Release,
			Format: o.Format, Local: local, Retire: o.Retire, Records: repoRecords})
	}
	// While the login waits on the link, the plan is guessed (guessWants).
	guessed := make(chan []host.Want, 1)
	if viaSSH(o, hc) {
		go func() { guessed <- guessWants(ctx, stepsFor) }()
	} else {
		guessed <- nil // nothing to prefetch: no link to save on
	}
	h, how, err := connect(ctx, o, hc)
	if err != nil {
		return err
	}
	defer h.Close()
	// Progress on stderr; the plan and -v's log, through the line's writer
	// so that nothing shares a terminal line with it.
	prog := progress.New(errw, isTTY(errw))
	if g.Verbose {
		h = host.Logged(h, prog.Writer(errw))
	}
	// The first round trip: what the host is decides which build and
	// which release's paths the plan uses. The survey of the guessed
	// plan's paths goes beside it; the plan's checks take from it what
	// the guess got right.
	checked := host.Prefetch(ctx, h, <-guessed)
	prog.Status("%s: probing the host (architecture, release)", name)
	facts, err := target.Probe(ctx, h)
	prog.Done()
	if err != nil {
		return err
	}
	if facts.Warning != "" {
		fmt.Fprintf(errw, "borgkit: warning: %s: %s\n", name, facts.Warning)
	}
	stepList, err := stepsFor(facts)
	if err != nil {
		return err
	}

	var printer plan.Printer = &plan.TextPrinter{W: prog.Writer(out), Header: fmt.Sprintf("Plan for %s (%s, role %s; %s):", name, how, hc.Role, facts)}
	if g.JSON {
		printer = plan.JSONPrinter{W: out}
	}
	r, err := plan.Run(ctx, checked, stepList, plan.Options{DryRun: o.DryRun, Printer: printer, Progress: prog})
	if err != nil {
		return reported{err}
	}
	if o.DetailedExitCode && r.Pending() > 0 {
		return errPending
	}
	return nil
}

// guessWants are what the plan's checks will read, guessed before the
// host is probed: the plan as it is for a host like this machine (the
// same architecture and release, no borgkit package). A wrong guess
// costs only speed: what the prefetch did not ask, the checks' own
// survey does. nil when this machine cannot be probed.
func guessWants(ctx context.Context, stepsFor func(*target.Facts) ([]plan.Step, error)) []host.Want {
	here, err := thisMachine()
	if err != nil {
		return nil
	}
	facts := *here
	facts.Package = ""
	s, err := stepsFor(&facts)
	if err != nil {
		return nil
	}
	return plan.Wants(s)
}

// viaSSH says whether connect reaches the host over SSH: not for --root,
// --local, or the host named as this machine is.
func viaSSH(o *provisionOptions, hc *config.Host) bool {
	hn, _ := os.Hostname()
	return o.Root == "" && !o.Local && strings.SplitN(hn, ".", 2)[0] != hc.Name
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
	if !viaSSH(o, hc) {
		return host.NewLocal(hc.Name), "this machine", nil
	}
	ids, kh := sshFiles(o.Identity, o.KnownHosts)
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

// sshFiles are the identities and known_hosts files to use: the ones
// given, else root's own key and borgkit's, and root's known_hosts.
func sshFiles(identity, knownHosts []string) (ids, kh []string) {
	home, _ := os.UserHomeDir()
	ids, kh = identity, knownHosts
	if len(ids) == 0 {
		ids = []string{filepath.Join(home, ".ssh", "id_ed25519"), layout.SSHKey}
	}
	if len(kh) == 0 {
		kh = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	return ids, kh
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// thisMachine is this machine's facts, probed once per run: a fleet run
// guesses every host's plan from them, and the probe is five programs.
// Not under a run's context: a cancelled first asker must not leave its
// error to the others (the probe takes milliseconds).
var thisMachine = sync.OnceValues(func() (*target.Facts, error) {
	return target.Probe(context.Background(), host.NewLocal("this machine"))
})

// installStep installs the build of the host's architecture, found in set.
func installStep(set *builds.Set, f *target.Facts) plan.Step {
	b, err := set.Find(f.Arch)
	return &builds.Install{Path: layout.Binary, Arch: f.Arch, Build: b, Missing: err, Package: f.Package, Version: version}
}

// repoRecords is recipe.Options.Records: the nightly's records of a repo
// on a borg server, where the jobs keep them.
func repoRecords(name, path, encryption string) steps.Voucher {
	v, err := state.NewRepoVoucher(name, path, encryption)
	if err != nil {
		return nil // a name the records cannot have: the server is asked
	}
	return v
}
