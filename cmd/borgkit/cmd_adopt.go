package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/borgkit/borgkit/provision/adopt"
	"github.com/borgkit/borgkit/provision/host"
)

// adoptOptions are the flags of adopt.
type adoptOptions struct {
	Output        string
	Force         bool
	SSH           string
	Root          string
	NoOffsite     bool
	Identity      []string
	KnownHosts    []string
	AcceptHostKey string
	Timeout       time.Duration
}

func (o *adoptOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Output, "output", "o", "-", "write the config to `FILE` (- is stdout)")
	fs.BoolVar(&o.Force, "force", false, "replace an existing --output file")
	fs.StringVar(&o.SSH, "ssh", "", "read the server at `USER@HOST[:PORT]` over SSH instead of this machine")
	fs.StringVar(&o.Root, "root", "", "read the server's files under `DIR` (a copy of its tree)")
	fs.BoolVar(&o.NoOffsite, "no-offsite", false, "do not connect to the offsite host; its part of the config is then guessed")
	fs.StringSliceVar(&o.Identity, "identity", nil, "SSH private key `FILE` (default ~/.ssh/id_ed25519 and the borgkit key)")
	fs.StringSliceVar(&o.KnownHosts, "known-hosts", nil, "known_hosts `FILE` (default ~/.ssh/known_hosts)")
	fs.StringVar(&o.AcceptHostKey, "accept-host-key", "", "trust the host key with this `SHA256:...` fingerprint")
	fs.DurationVar(&o.Timeout, "connect-timeout", 15*time.Second, "SSH connect timeout")
}

func newAdoptCommand(g *globals) *cobra.Command {
	o := &adoptOptions{}
	cmd := &cobra.Command{
		Use:   "adopt",
		Short: "Write the config that describes a hand-built borg setup, changing nothing",
		Long: `Read a backup setup built by hand — borg repos, the scripts and cron file or
systemd timers that run them, fstab, msmtprc, the ssh alias of the offsite
host — and write the borgkit config that describes it as it is: disks by
UUID, repos with their encryption and archive prefix, retention and schedule
from the scripts, the mirrors where they already are (so the first borgkit
sync sends only what changed), the offsite host's disk, LUKS container and
keyfile (read over SSH as the server's ssh config names it).

Nothing is changed on either host: files are only read, borg reads the repos
with --bypass-lock and keeps its state in a scratch directory it removes,
and no passphrase or password is copied into the config (it names the files
that hold them; provisioning copies them into borgkit's own, 0600).

Values adopt had to guess are marked "adopt: guessed" in the file; the old
setup's files are listed, commented out, under retire:. Then check the file
with borgkit config validate FILE. The plan of
borgkit plan SERVER --config FILE shows the old schedule as a conflict
until its files are retired: take the host over with
borgkit provision SERVER --config FILE --retire FILE (repeatable), or
uncomment them under retire: first.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAdopt(cmd.Context(), o, g, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd.Flags())
	g.jsonFlag(cmd, "what adopt guessed, what it left to you and the old files to retire (needs --output FILE)")
	return withExits(cmd,
		exitCase{exitOK, "the config was written, and it validates"},
		exitCase{exitFailed, "the setup could not be read (a host unreachable, a file unreadable) or described by a valid config; nothing was written"},
		usageCase("--output exists without --force, --json without --output FILE, or a bad --ssh"))
}

func runAdopt(ctx context.Context, o *adoptOptions, g *globals, out, errOut io.Writer) error {
	if g.JSON && o.Output == "-" {
		// stdout holds one document: the report, or the config.
		return usagef("--json puts its report on stdout: write the config with --output FILE")
	}
	if o.Output != "-" && !o.Force {
		if _, err := os.Lstat(o.Output); err == nil {
			return usageError{fmt.Errorf("%s exists; pass --force to replace it", o.Output)}
		}
	}
	server, err := o.server(ctx)
	if err != nil {
		return err
	}
	defer server.Close()
	opts := adopt.Options{Server: server}
	if !o.NoOffsite {
		opts.DialOffsite = func(ctx context.Context, addr, user string, port int) (host.Host, error) {
			return o.dial(ctx, addr, user, port)
		}
	}
	start := time.Now()
	r, err := adopt.Adopt(ctx, opts)
	if err != nil {
		return err
	}
	if o.Output == "-" {
		if _, err := out.Write(r.YAML); err != nil {
			return err
		}
	} else if err := host.NewLocal("this machine").WriteFile(ctx, o.Output, r.YAML, 0o640, host.Owner{UID: os.Getuid(), GID: os.Getgid()}); err != nil {
		return fmt.Errorf("write %s: %w", o.Output, err)
	}
	if g.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"output": o.Output, "guesses": r.Guesses, "left_to_user": r.LeftToUser,
			"retire": r.Retire, "seconds": time.Since(start).Seconds()})
	}
	fmt.Fprintf(errOut, "adopt: read %s in %.1fs; the config validates.\n", server.Name(), time.Since(start).Seconds())
	for _, s := range r.Guesses {
		fmt.Fprintf(errOut, "  guessed: %s\n", s)
	}
	for _, s := range r.LeftToUser {
		fmt.Fprintf(errOut, "  left to you: %s\n", s)
	}
	for h, files := range r.Retire {
		if len(files) > 0 {
			fmt.Fprintf(errOut, "  the old setup's files on %s (retire: in the config, commented out): %d\n", h, len(files))
		}
	}
	return nil
}

// server is the host to read: this machine, a tree, or SSH.
func (o *adoptOptions) server(ctx context.Context) (host.Host, error) {
	switch {
	case o.Root != "":
		root, err := filepath.Abs(o.Root)
		if err != nil {
			return nil, usageError{err}
		}
		return host.NewRooted("the tree under "+root, root), nil
	case o.SSH == "":
		return host.NewLocal("this machine"), nil
	}
	user, rest := "root", o.SSH
	if i := lastIndex(rest, '@'); i >= 0 {
		user, rest = rest[:i], rest[i+1:]
	}
	hostPart, portS, err := net.SplitHostPort(rest)
	if err != nil {
		hostPart, portS = rest, "22"
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return nil, usageError{fmt.Errorf("--ssh %s: bad port", o.SSH)}
	}
	return o.dial(ctx, hostPart, user, port)
}

func lastIndex(s string, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func (o *adoptOptions) dial(ctx context.Context, addr, user string, port int) (host.Host, error) {
	ids, kh := sshFiles(o.Identity, o.KnownHosts)
	return host.DialSSH(ctx, host.SSHConfig{Addr: net.JoinHostPort(addr, strconv.Itoa(port)), User: user,
		IdentityFiles: ids, KnownHostsFiles: kh, AcceptHostKey: o.AcceptHostKey, Timeout: o.Timeout})
}
