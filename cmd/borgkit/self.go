package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// hostHelp says, in every --host flag, how a command finds this machine
// in the config without it.
const hostHelp = "the config `NAME` of this host (default: " + layout.HostFile + ", else the hostname)"

// hostPick says how to find which config host this machine is.
type hostPick struct {
	// Flag is --host; HostFile and Hostname are where else the name comes
	// from (layout.HostFile and os.Hostname in real runs).
	Flag     string
	HostFile string
	Hostname func() (string, error)
	// StateDir, when set, lets a machine that is named neither way be
	// recognised by its job records (status).
	StateDir string
	// Note gets a line when the host was picked by its records or as the
	// config's only host, so the user sees the guess.
	Note io.Writer
}

// pickHost finds which config host this machine is: --host, else the host
// file provisioning writes, else the hostname. Failing those, with
// p.StateDir: the one host the job records there name, else the one host
// of the role their jobs belong to; and last, a config of one host. Else a
// usage error naming the ways to say it.
func pickHost(cfg *config.Config, p hostPick) (*config.Host, error) {
	if p.Flag != "" {
		h, ok := cfg.Host(p.Flag)
		if !ok {
			return nil, usagef("--host %s: no such host in %s (hosts: %s)", p.Flag, cfg.File, strings.Join(hostNamesOf(cfg), ", "))
		}
		return h, nil
	}
	name, from := "", ""
	if b, err := os.ReadFile(p.HostFile); err == nil {
		name = strings.TrimSpace(string(b))
		if h, ok := cfg.Host(name); ok {
			return h, nil
		}
		return nil, usagef("%s names %q, which is not a host in %s; fix the file or pass --host (hosts: %s)", p.HostFile, name, cfg.File, strings.Join(hostNamesOf(cfg), ", "))
	}
	if p.Hostname != nil {
		if hn, err := p.Hostname(); err == nil {
			name, from = strings.SplitN(hn, ".", 2)[0], "the hostname"
			if h, ok := cfg.Host(name); ok {
				return h, nil
			}
		}
	}
	if p.StateDir != "" {
		if h, why := hostOfRecords(cfg, p.StateDir); h != nil {
			fmt.Fprintf(p.Note, "borgkit: this machine is %q (%s), not a host in %s; showing %s, %s\n", name, from, cfg.File, h.Name, why)
			return h, nil
		}
	}
	if len(cfg.Hosts) == 1 && p.StateDir != "" {
		h := &cfg.Hosts[0]
		fmt.Fprintf(p.Note, "borgkit: this machine is %q (%s), not a host in %s; showing %s, its only host\n", name, from, cfg.File, h.Name)
		return h, nil
	}
	how := ""
	if p.StateDir != "" {
		how = fmt.Sprintf(", and no job records in %s tell which host it is", p.StateDir)
	}
	return nil, usagef("this machine is %q (%s), which is not a host in %s%s; pass --host NAME or write the name to %s (hosts: %s)",
		name, from, cfg.File, how, p.HostFile, strings.Join(hostNamesOf(cfg), ", "))
}

// hostOfRecords is the config host the job records in dir point at: the
// one host they name, else the one host of the role their jobs belong to.
func hostOfRecords(cfg *config.Config, dir string) (*config.Host, string) {
	recs, _ := (&state.Store{Dir: dir}).LoadAll()
	named := map[string]bool{}
	roles := map[config.Role]bool{}
	for _, r := range recs {
		if _, ok := cfg.Host(r.Host); ok {
			named[r.Host] = true
		}
		for _, role := range []config.Role{config.RoleServer, config.RoleOffsite, config.RoleArchive} {
			if onlyRole(r.Job, role) {
				roles[role] = true
			}
		}
	}
	if len(named) == 1 {
		for n := range named {
			h, _ := cfg.Host(n)
			return h, "the host its job records in " + dir + " name"
		}
	}
	if len(named) == 0 && len(roles) == 1 {
		for role := range roles {
			if hs := cfg.HostsByRole(role); len(hs) == 1 {
				return hs[0], fmt.Sprintf("the only %s host (its job records in %s are a %s's)", role, dir, role)
			}
		}
	}
	return nil, ""
}

// onlyRole reports whether job is run by role and by no other, so a record
// of it tells the machine's role.
func onlyRole(job string, role config.Role) bool {
	if job == layout.JobUnlock {
		return role == config.RoleOffsite
	}
	in := func(r config.Role) bool {
		for _, j := range config.RoleJobs(r) {
			if j == job {
				return true
			}
		}
		return false
	}
	if !in(role) {
		return false
	}
	for _, r := range []config.Role{config.RoleServer, config.RoleOffsite, config.RoleArchive} {
		if r != role && in(r) {
			return false
		}
	}
	return true
}

func hostNamesOf(cfg *config.Config) []string {
	var names []string
	for _, h := range cfg.Hosts {
		names = append(names, h.Name)
	}
	sort.Strings(names)
	return names
}

// hostFlag registers --host on cmd.
func hostFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "host", "", hostHelp)
}
