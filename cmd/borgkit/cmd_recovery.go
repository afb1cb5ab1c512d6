package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/borgkit/borgkit/provision/builds"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/progress"
	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/kit"
	"github.com/borgkit/borgkit/recovery/luks2"
	"github.com/borgkit/borgkit/recovery/stick"
)

// keyNotOpened is exit status 1 for check-key: the header was read, the key
// opens no keyslot.
type keyNotOpened struct{ error }

type bundleOptions struct {
	To string
	// Encrypt is the stick to LUKS2-format and write onto; Wipe names it
	// again to erase what it carries.
	Encrypt, Wipe string
	Paper         bool
	Root          string
	Host          string
	Owner         int
	RepoRoot      []string
	WorkDir       string
	// KitDir is verify's mounted kit partition.
	KitDir string
	// HostRoot reads another host's secrets from a tree (NAME=DIR);
	// Identity and KnownHosts are for reaching the others over SSH.
	HostRoot   []string
	Identity   []string
	KnownHosts []string
	// Kit puts the offline install kit into the bundle: Debian's packages
	// (fetched into KitCache from KitMirror) and the builds in Builds.
	Kit         bool
	KitCache    string
	KitMirror   string
	KitSecurity string
	Builds      string
}

func newRecoveryCommand(g *globals) *cobra.Command {
	o := &bundleOptions{}
	cmd := &cobra.Command{
		Use:   "recovery-bundle (--to DIR | --encrypt DEVICE)",
		Short: "Write, verify and use the offline recovery bundle",
		Long: `Write the offline recovery bundle to DIR (a mounted USB stick): every LUKS
keyfile and header backup, every borg key export and passphrase, known_hosts,
the config, and a runbook with this site's real values, checksummed in
MANIFEST.sha256. It refuses a DIR on the backup disk or inside a backed-up
source: the bundle must never sit inside the backup it unlocks. Run it on the
server, as root, after provisioning; keep the stick offline and offsite.

The secrets other hosts keep themselves (an archive host's repo passphrase,
key export and ZFS dataset keys) are fetched from them over SSH, as
provisioning reaches them, or from a tree given with --host-root.

--encrypt DEVICE puts the bundle on an encrypted stick instead: it gives the
whole DEVICE (and nothing else) a GPT with two partitions: ` + stick.KitLabel + `, an
unencrypted ext4 partition holding nothing secret (with --kit the packages
and borgkit's builds, so a machine without cryptsetup can install it from
there; a README with the first steps; KIT.sha256), and a LUKS2 partition with
a passphrase you type and an ext4 filesystem inside, holding the bundle with
every secret in its ` + stick.BundleDir + ` directory. It verifies both (the kit's files
against their pins in bundle.json) and closes the stick. As with the offsite disk, a DEVICE that
carries anything (a filesystem, a partition table, an old LUKS header) is
refused unless --wipe names the same DEVICE. The passphrase is asked twice at
a prompt on the terminal, never echoed; when stdin is not a terminal its
first line is the passphrase (a pipe from a password manager). It is never
taken from the command line or the environment. The runbook's first step
opens the stick with cryptsetup on any Linux machine.

--kit adds the offline install kit, so the rescue machine needs no network:
Debian 12's borgbackup and cryptsetup-bin with every package a minimal Debian
12 system (debootstrap's minbase) lacks for them, for amd64 and arm64, resolved
and downloaded by apt from the Debian mirror (kept in --kit-cache, so the next
bundle fetches only what changed), pinned by name, version, architecture and
SHA-256 in bundle.json; and borgkit built for amd64, arm64 and armhf (from
--builds DIR, builds/ beside this program, or ` + builds.PackageDir + `). Fetching needs
a network: without one the packages of the last fetch in the cache are used
and the bundle says from when; with none cached the bundle is written without
them and says so in a warning, in bundle.json and in the runbook.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBundleWrite(cmd.Context(), o, g, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.To, "to", "", "write the bundle into `DIR` (must be empty or absent)")
	f.StringVar(&o.Encrypt, "encrypt", "", "LUKS2-format the stick `DEVICE` (the whole device) with a typed passphrase and write the bundle onto it")
	f.StringVar(&o.Wipe, "wipe", "", "with --encrypt: erase what `DEVICE` carries first (must name the --encrypt device)")
	f.BoolVar(&o.Paper, "paper", false, "also render each borg key as borg key export --paper prints it, for a printout")
	f.StringVar(&o.Root, "root", "", "read the server's files from the tree under `DIR` (a server provisioned with --root)")
	hostFlag(cmd, &o.Host)
	f.IntVar(&o.Owner, "owner-uid", -1, "give the bundle's files to this `UID`, so that user can verify it without root")
	f.StringArrayVar(&o.HostRoot, "host-root", nil, "read host NAME's secrets from the tree under DIR (`NAME=DIR`, a host provisioned with --root) instead of over SSH")
	f.StringSliceVar(&o.Identity, "identity", nil, "SSH private key `FILE` for reaching the other hosts (default ~/.ssh/id_ed25519 and the borgkit key)")
	f.StringSliceVar(&o.KnownHosts, "known-hosts", nil, "known_hosts `FILE` for the other hosts (default ~/.ssh/known_hosts)")
	f.BoolVar(&o.Kit, "kit", false, "add the offline install kit: Debian 12 packages to restore with (amd64, arm64) and borgkit's builds")
	f.StringVar(&o.KitCache, "kit-cache", layout.KitCache, "with --kit: keep the fetched packages and apt's state in `DIR`")
	f.StringVar(&o.KitMirror, "kit-mirror", kit.DefaultMirror, "with --kit: the Debian mirror `URL` to fetch from")
	f.StringVar(&o.KitSecurity, "kit-security", kit.DefaultSecurity, "with --kit: the Debian security mirror `URL` to fetch from")
	f.StringVar(&o.Builds, "builds", "", "with --kit: take borgkit's builds from `DIR`/ARCH/borgkit (default: builds/ beside this program, else "+builds.PackageDir+")")
	g.configFlag(cmd)
	g.jsonFlag(cmd, "the bundle's directory, digest, contents and warnings")
	cmd.AddCommand(newBundleVerifyCommand(g, o), newCheckKeyCommand(g))
	return withExits(cmd,
		exitCase{exitOK, "the bundle was written and proven (every keyfile opens its header, every borg key its repo)"},
		exitCase{exitFailed, "it could not be written or proven; nothing is left in DIR"},
		usageCase("a bad config, or no way to tell which host this server is"))
}

// bundleWritten is recovery-bundle --json.
type bundleWritten struct {
	Dir      string   `json:"dir"`
	Digest   string   `json:"manifest_sha256"`
	Warnings []string `json:"warnings"`
	*bundle.Manifest
}

func runBundleWrite(ctx context.Context, o *bundleOptions, g *globals, in io.Reader, out, errw io.Writer) error {
	return runBundleWriteFrom(ctx, o, g, in, out, errw, nil)
}

// runBundleWriteFrom writes the bundle reading the server's files from
// src; nil is this machine, or the tree of --root.
func runBundleWriteFrom(ctx context.Context, o *bundleOptions, g *globals, in io.Reader, out, errw io.Writer, src bundle.Source) error {
	if err := checkBundleTarget(o); err != nil {
		return err
	}
	cfg, raw, err := g.load(o.Root != "")
	if err != nil {
		return err
	}
	server, err := pickHost(cfg, hostPick{Flag: o.Host, HostFile: layout.HostFile, Hostname: os.Hostname})
	if err != nil {
		return err
	}
	switch {
	case src != nil:
	case o.Root != "":
		src = host.NewRooted(server.Name, o.Root)
	default:
		src = host.NewLocal(server.Name)
	}
	roots, err := hostRoots(cfg, o.HostRoot)
	if err != nil {
		return err
	}
	opts := bundle.Options{Paper: o.Paper, ConfigData: raw, Version: version, Progress: progress.New(errw, isTTY(errw))}
	if o.Owner >= 0 {
		opts.Owner = &host.Owner{UID: o.Owner, GID: -1}
	}
	if o.Kit {
		if opts.Kit, err = fetchKit(ctx, o, opts.Progress); err != nil {
			return err
		}
	}
	var opened []host.Host
	defer func() {
		for _, h := range opened {
			h.Close()
		}
	}()
	opts.Reach = func(ctx context.Context, h *config.Host) (bundle.Source, error) {
		if root, ok := roots[h.Name]; ok {
			return host.NewRooted(h.Name, root), nil
		}
		if o.Root != "" {
			return nil, usageError{fmt.Errorf("--root reads %s from a tree: give --host-root %s=DIR for %s's", server.Name, h.Name, h.Name)}
		}
		c, _, err := connect(ctx, &provisionOptions{Identity: o.Identity, KnownHosts: o.KnownHosts}, h)
		if err != nil {
			return nil, err
		}
		opened = append(opened, c)
		return c, nil
	}
	var m *bundle.Manifest
	if o.Encrypt != "" {
		pass, err := stickPassphrase(in, errw)
		if err != nil {
			return err
		}
		_, err = stick.Write(ctx, host.NewLocal(server.Name), stick.Options{Device: o.Encrypt, Wipe: o.Wipe != "", Passphrase: pass,
			KitBytes: opts.Kit.Bytes(), Status: opts.Progress.Status},
			func(ctx context.Context, dir, kitDir string, st bundle.Stick) error {
				opts.Stick, opts.KitDir = &st, kitDir
				if m, err = bundle.Write(ctx, cfg, server, src, dir, opts); err != nil {
					return err
				}
				opts.Progress.Status("verifying the bundle on the stick, and the kit partition against its pins")
				_, err := bundle.Verify(ctx, dir, bundle.VerifyOptions{KitDir: kitDir})
				return err
			})
		if err != nil {
			return err
		}
	} else if m, err = bundle.Write(ctx, cfg, server, src, o.To, opts); err != nil {
		return err
	}
	if g.JSON {
		w := bundleWritten{Dir: m.Dir, Digest: m.Digest, Warnings: m.Warnings, Manifest: m}
		if w.Warnings == nil {
			w.Warnings = []string{}
		}
		return writeJSON(out, w)
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(errw, "warning: %s\n", w)
	}
	if m.Stick != nil {
		_, err = fmt.Fprintf(out, "wrote the recovery bundle of %s onto the encrypted stick %s (LUKS UUID %s), verified it and closed the stick\nMANIFEST.sha256 digest: %s (write it down: it proves the bundle later)\n", server.Name, o.Encrypt, m.Stick.LUKSUUID, m.Digest)
		return err
	}
	_, err = fmt.Fprintf(out, "wrote the recovery bundle of %s to %s\nMANIFEST.sha256 digest: %s (write it down: it proves the bundle later)\n", server.Name, m.Dir, m.Digest)
	return err
}

// fetchKit gathers the offline kit: each architecture's Debian packages
// (a fetch that fails is recorded as missing, not fatal: the secrets matter
// more than the packages) and every architecture's borgkit build (missing
// builds are a setup error, and fail).
func fetchKit(ctx context.Context, o *bundleOptions, p *progress.Line) (*bundle.KitInput, error) {
	in := &bundle.KitInput{}
	if o.KitCache == "" {
		o.KitCache = layout.KitCache
	}
	for _, arch := range kit.Arches {
		r, err := kit.Fetch(ctx, kit.Options{Cache: o.KitCache, Mirror: o.KitMirror, Security: o.KitSecurity, Arch: arch, Status: p.Status})
		if err != nil {
			in.Missing = append(in.Missing, fmt.Sprintf("%s: %v", arch, err))
			continue
		}
		in.Debian = append(in.Debian, r)
	}
	set, err := builds.Locate(o.Builds)
	if err != nil {
		return nil, err
	}
	for _, arch := range builds.Arches() {
		b, err := set.Find(arch)
		if err != nil {
			return nil, fmt.Errorf("offline kit: %w", err)
		}
		in.Borgkit = append(in.Borgkit, bundle.KitBuild{Arch: arch, Data: b.Data, Source: b.Path})
	}
	return in, nil
}

// checkBundleTarget is the usage check of --to, --encrypt and --wipe.
func checkBundleTarget(o *bundleOptions) error {
	switch {
	case o.To == "" && o.Encrypt == "":
		return usageError{errors.New("say where the bundle goes: --to DIR (a mounted stick) or --encrypt DEVICE (a stick to encrypt)")}
	case o.To != "" && o.Encrypt != "":
		return usageError{errors.New("--to and --encrypt: give one (--encrypt mounts the stick it formats by itself)")}
	case o.Wipe != "" && o.Encrypt == "":
		return usageError{errors.New("--wipe goes with --encrypt DEVICE and names the same device")}
	case !o.Kit && ((o.KitCache != "" && o.KitCache != layout.KitCache) || (o.KitMirror != "" && o.KitMirror != kit.DefaultMirror) ||
		(o.KitSecurity != "" && o.KitSecurity != kit.DefaultSecurity) || o.Builds != ""):
		return usageError{errors.New("--kit-cache, --kit-mirror, --kit-security and --builds go with --kit")}
	case o.Wipe != "" && o.Wipe != o.Encrypt:
		return usageError{fmt.Errorf("--wipe %s does not name the --encrypt device %s: name the same device in both to erase it", o.Wipe, o.Encrypt)}
	}
	return nil
}

// stickPassphrase reads the stick's passphrase: at a prompt with echo off,
// twice, when stdin is a terminal; otherwise the first line of stdin. Never
// from argv or the environment, where other users and logs see it.
func stickPassphrase(in io.Reader, errw io.Writer) ([]byte, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(errw, "Passphrase for the stick (it guards every key of the site): ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(errw)
		if err != nil {
			return nil, fmt.Errorf("read the stick's passphrase: %w", err)
		}
		fmt.Fprint(errw, "The same passphrase again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(errw)
		if err != nil {
			return nil, fmt.Errorf("read the stick's passphrase: %w", err)
		}
		if !bytes.Equal(p1, p2) {
			return nil, usageError{errors.New("the two passphrases differ; nothing was written")}
		}
		return p1, nil
	}
	line, err := bufio.NewReader(in).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read the stick's passphrase from stdin: %w", err)
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(line) == 0 {
		return nil, usageError{errors.New("no passphrase for the stick: type it at the prompt, or give it as the first line of stdin")}
	}
	return line, nil
}

// hostRoots parses --host-root NAME=DIR, each NAME a host of the config.
func hostRoots(cfg *config.Config, args []string) (map[string]string, error) {
	roots := map[string]string{}
	for _, a := range args {
		name, dir, ok := strings.Cut(a, "=")
		if !ok || name == "" || dir == "" {
			return nil, usageError{fmt.Errorf("--host-root %q: want NAME=DIR", a)}
		}
		if _, ok := cfg.Host(name); !ok {
			return nil, usageError{fmt.Errorf("--host-root %q: host %q is not in %s", a, name, cfg.File)}
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, usageError{fmt.Errorf("--host-root %q: %w", a, err)}
		}
		roots[name] = abs
	}
	return roots, nil
}

func newBundleVerifyCommand(g *globals, o *bundleOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify DIR",
		Short: "Prove a bundle without the server: checksums, keyfiles against header backups, borg keys",
		Long: `Prove a recovery bundle without root and without the server: every checksum,
every keyfile against its LUKS header backup (in Go), every borg key export
against its passphrase, and, with --repo-root, that they open the repo copies
found there (a NAS mirror, a mounted offsite disk); repo copies are never
written to.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var log io.Writer
			if g.Verbose {
				log = cmd.ErrOrStderr()
			}
			rep, err := bundle.Verify(cmd.Context(), args[0], bundle.VerifyOptions{RepoRoots: o.RepoRoot, WorkDir: o.WorkDir, KitDir: o.KitDir, Log: log})
			if rep != nil {
				if g.JSON {
					if jerr := writeJSON(cmd.OutOrStdout(), rep); jerr != nil {
						return jerr
					}
				} else {
					rep.WriteText(cmd.OutOrStdout())
				}
			}
			if err != nil {
				return reported{err}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&o.RepoRoot, "repo-root", nil, "a `DIR` holding repo copies by name, to open with the bundle's keys (repeatable)")
	cmd.Flags().StringVar(&o.WorkDir, "work-dir", "", "where borg's private state goes (default: a temporary directory)")
	cmd.Flags().StringVar(&o.KitDir, "kit-dir", "", "the stick's kit partition, mounted at `DIR`: check its files against the bundle's pins")
	g.jsonFlag(cmd, "the report")
	g.verboseFlag(cmd, "log every borg run to stderr")
	return withExits(cmd,
		exitCase{exitOK, "every check passed"},
		exitCase{exitFailed, "a check failed (a checksum, a keyfile, a borg key, a repo copy); the report says which"},
		usageCase(""))
}

type checkKeyOptions struct {
	Header  string
	KeyFile string
}

func newCheckKeyCommand(g *globals) *cobra.Command {
	o := &checkKeyOptions{}
	cmd := &cobra.Command{
		Use:   "check-key --header FILE --key-file FILE",
		Short: "Check that a keyfile opens a LUKS2 header (backup), without root or device-mapper",
		Long: `Check that a keyfile opens a keyslot of a LUKS2 header or header backup. It
reads the header in Go, derives the keyslot key (argon2id, argon2i, pbkdf2),
decrypts the keyslot and checks the digest, as cryptsetup would; it needs no
root, no device-mapper and no cryptsetup.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheckKey(cmd.Context(), o, g, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Header, "header", "", "LUKS2 header or header backup `FILE` (a disk image works too)")
	cmd.Flags().StringVar(&o.KeyFile, "key-file", "", "keyfile, used byte for byte as cryptsetup --key-file does")
	g.jsonFlag(cmd, "the keyslot, UUID, KDF and time")
	required(cmd, "header", "key-file")
	return withExits(cmd,
		exitCase{exitOK, "the key opens a keyslot"},
		exitCase{exitFailed, "the key opens no keyslot"},
		usageCase("the header cannot be read (not LUKS, LUKS1, damaged, unsupported), or the check was interrupted (no verdict on the key)"))
}

func runCheckKey(ctx context.Context, o *checkKeyOptions, g *globals, out io.Writer) error {
	// ctx is cancelled by SIGINT/SIGTERM (see main), which stops the KDF.
	res, err := luks2.CheckKeyContext(ctx, o.Header, o.KeyFile)
	if errors.Is(err, luks2.ErrNoKeyslot) {
		return keyNotOpened{err}
	}
	if err != nil {
		return usageError{fmt.Errorf("check-key: %w", err)}
	}
	if g.JSON {
		return writeJSON(out, res)
	}
	_, err = fmt.Fprintf(out, "%s: the key opens keyslot %d of LUKS2 UUID %s (%s, %s copy, %s)\n",
		o.Header, res.Slot, res.UUID, res.KDF, res.HeaderCopy, res.Duration.Round(1e6))
	return err
}
