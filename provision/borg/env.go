// Package borg runs BorgBackup: the environment borg opens a repository
// with, the command in its own process group, errors that carry argv and
// the tail of stderr, and a private workspace for reading repo copies.
// Provisioning, the jobs, the bundle and the drill all run borg through it.
package borg

import (
	"bytes"
	"context"
	"path"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/tools"
)

// Env is what borg runs with for one repository.
type Env struct {
	// PassFile holds the repo's passphrase, which borg reads itself through
	// BORG_PASSCOMMAND: it never appears in an argv or an environment
	// block. "" is an unencrypted repo: borg then fails rather than prompts.
	PassFile string
	// BaseDir is BORG_BASE_DIR, under which borg keeps its cache, security
	// and keys directories; "" keeps root's home.
	BaseDir string
	// KeysDir is BORG_KEYS_DIR; "" keeps BaseDir's.
	KeysDir string
	// PassStdin has borg read the passphrase from its own stdin (the
	// command's Stdin) through BORG_PASSCOMMAND=cat: a passphrase that is
	// not in a file yet (one read from a hand-built setup, checked before
	// it is written) still never reaches an argv or an environment.
	PassStdin bool
	// Copy marks a copy of a repository (a mirror, a disk image): borg
	// opens it at its new place, and unencrypted, without asking.
	Copy bool
	// RSH is BORG_RSH, the ssh borg reaches a remote repo with ("" keeps
	// borg's plain ssh); see RSH.
	RSH string
}

// Inherited are the variables of borgkit's own environment that would
// change which repo borg opens or with which secret: a BORG_PASSPHRASE
// exported in root's shell would win over the passphrase command. Every
// borg run drops them.
var Inherited = []string{
	"BORG_PASSPHRASE", "BORG_PASSCOMMAND", "BORG_PASSPHRASE_FD", "BORG_NEW_PASSPHRASE",
	"BORG_REPO", "BORG_KEY_FILE", "BORG_KEYS_DIR", "BORG_BASE_DIR", "BORG_CACHE_DIR",
	"BORG_CONFIG_DIR", "BORG_SECURITY_DIR", "BORG_RSH", "BORG_REMOTE_PATH", "BORG_FILES_CACHE_SUFFIX",
}

// Vars is the environment as KEY=VALUE pairs, added to an environment
// without Inherited.
func (e Env) Vars() []string {
	vars := []string{
		"BORG_DISPLAY_PASSPHRASE=no",
		// Legacy exit codes (0 ok, 1 warning, 2 error): the jobs tell a
		// warning from a failure by them, and borg 1.4's modern codes would
		// move warnings.
		"BORG_EXIT_CODES=legacy",
	}
	if e.PassStdin {
		vars = append(vars, "BORG_PASSCOMMAND=cat")
	} else if e.PassFile != "" {
		// borg splits the command with shlex, so quote the path for it.
		vars = append(vars, "BORG_PASSCOMMAND=cat "+host.QuoteArgv([]string{e.PassFile}))
	} else {
		vars = append(vars, "BORG_PASSPHRASE=")
	}
	if e.BaseDir != "" {
		vars = append(vars, "BORG_BASE_DIR="+e.BaseDir)
	}
	if e.KeysDir != "" {
		vars = append(vars, "BORG_KEYS_DIR="+e.KeysDir)
	}
	if e.RSH != "" {
		vars = append(vars, "BORG_RSH="+e.RSH)
	}
	if e.Copy {
		vars = append(vars, "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes")
	}
	return vars
}

// Place is where borg runs: a host, live or a --root tree.
type Place interface {
	Path(p string) string
	Live() bool
}

// OnHost is the environment of a repo whose passphrase is in passFile on
// h: under --root, the passphrase and borg's own directories are inside
// the tree.
func OnHost(h Place, passFile string) Env {
	e := Env{}
	if passFile != "" {
		e.PassFile = h.Path(passFile)
	}
	if !h.Live() {
		e.BaseDir = h.Path(layout.BorgHome)
	}
	e.RSH = RSH(h.Path(layout.RepoIdentity), h.Path(layout.RepoKnownHosts))
	return e
}

// RSH is the ssh borg runs to reach a repo on a borg server: borgkit's
// own identity and nothing else (no agent, no root's keys), the server's
// host key checked against borgkit's known_hosts alone, never asked
// about. borg splits it with shlex, so the two paths are quoted for it;
// no value of the config is in it (the user, host and port reach ssh from
// the repo's URL, as borg's own argv).
func RSH(identity, knownHosts string) string {
	return "ssh " + host.QuoteArgv([]string{
		"-i", identity, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=30", "-o", "ServerAliveCountMax=4",
	})
}

// Cmd is borg with args in env, to run on a host.
func Cmd(env Env, args ...string) host.Cmd {
	c := host.Command(tools.Borg, args...)
	c.Env, c.Unset = env.Vars(), Inherited
	return c
}

// IsRepoConfig reports whether data, a repository's config file, is
// borg's: a directory is a repo when its config has a [repository]
// section. Reading it instead of running borg keeps a check free of a
// Python start per repo.
func IsRepoConfig(data []byte) bool { return bytes.Contains(data, []byte("[repository]")) }

// IsRepo reports whether dir on h holds a borg repository.
func IsRepo(ctx context.Context, h host.Host, dir string) (bool, error) {
	b, err := h.ReadFile(ctx, path.Join(dir, "config"))
	if host.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return IsRepoConfig(b), nil
}
