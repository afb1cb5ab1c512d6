package config

import (
	"fmt"
	"regexp"

	"github.com/borgkit/borgkit/provision/layout"
)

// A host: its address, role, SSH and what each role may carry.

var (
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]*\$?$`)
	hostKeyRE = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)
)

// knownHosts lists the host names for a message, made once: every bad
// reference names them.
func (v *validator) knownHosts() string {
	if v.hostList == "" {
		names := make([]string, len(v.c.Hosts))
		for i, h := range v.c.Hosts {
			names[i] = fmt.Sprintf("%q", h.Name)
		}
		v.hostList = some(names)
	}
	return v.hostList
}

// refHost resolves a reference to another host of the config.
func (v *validator) refHost(path, what, name string) *Host {
	if name == "" {
		v.add(path, ErrRequired, "%s is required", what)
		return nil
	}
	h, ok := v.hosts[name]
	if !ok {
		v.add(path, ErrUnknownHost, "%s %q is not one of the hosts (%s)", what, name, v.knownHosts())
		return nil
	}
	return h
}

func validRole(r Role) bool {
	return r == RoleServer || r == RoleOffsite || r == RoleArchive || r == RoleBorgServer
}

func (v *validator) host(p string, h *Host) {
	v.address(p+".address", "address", h.Address)
	switch {
	case h.Role == "":
		v.add(p+".role", ErrRequired, "role is required: server, offsite, archive or borg-server")
	case !validRole(h.Role):
		v.add(p+".role", ErrBadValue, "role %q: must be server, offsite, archive or borg-server", h.Role)
	}
	v.ssh(p+".ssh", h.SSH)
	switch h.Scheduler {
	case "", SchedulerCron, SchedulerSystemd:
	default:
		v.add(p+".scheduler", ErrBadValue, "scheduler %q: must be cron or systemd", h.Scheduler)
	}

	mounts := map[string]string{}
	v.disks(p, h, mounts)
	v.shares(p, h, mounts)
	v.datasets(p, h)
	v.repos(p, h)
	v.guests(p, h)
	v.mirrors(p, h)
	v.schedules(p, h)
	v.jitter(p, h)

	if h.Alerts != nil {
		v.alertsBlock(p+".alerts", h.Alerts)
	}
	v.effectiveAlerts(p, h)
	if h.Retention != nil {
		v.retentionBlock(p+".retention", *h.Retention)
	}
	v.compaction(p+".compaction", h.Compaction)
	v.thresholds(p+".thresholds", h.Thresholds)
	v.policy(p, h)
	v.unlock(p, h)
	v.snapshots(p, h)
	v.pull(p, h)
	v.adopted(p, h)
	v.borgServer(p, h)
	v.roleFit(p, h)
}

func (v *validator) ssh(p string, s SSH) {
	if s.User != "" && (len(s.User) > 32 || !userRE.MatchString(s.User)) {
		v.add(p+".user", ErrBadValue, "user %q is not a login name", s.User)
	}
	v.port(p+".port", s.Port)
	if s.HostKey != "" && !hostKeyRE.MatchString(s.HostKey) {
		v.add(p+".host_key", ErrBadValue, "host_key %q: want the fingerprint ssh-keygen -lf prints, SHA256: and 43 base64 characters", s.HostKey)
	}
	if s.HostPublicKey != "" {
		if why := hostPublicKey(s.HostPublicKey); why != "" {
			v.add(p+".host_public_key", ErrBadValue, "host_public_key: %s", why)
		}
	}
}

// roleFit keeps each role to what its jobs and provisioning know about,
// so nothing in the file is silently ignored.
func (v *validator) roleFit(p string, h *Host) {
	if !validRole(h.Role) {
		return
	}
	if h.Role == RoleBorgServer && (len(h.Repos) > 0 || len(h.Mirrors) > 0 || len(h.Disks) > 0 || len(h.Shares) > 0) {
		v.add(p, ErrRoleMismatch, "a borg-server host serves its clients' repos (borg_server:); its own repos, mirrors, disks and shares belong on a server host")
	}
	if len(h.Repos) > 0 && h.Role == RoleOffsite {
		v.add(p+".repos", ErrRoleMismatch, "an offsite host keeps mirrors, not borg repos: repos belong on a server or archive host")
	}
	if len(h.Mirrors) > 0 && h.Role == RoleOffsite {
		v.add(p+".mirrors", ErrRoleMismatch, "an offsite host has no repos to mirror: mirrors belong on the server")
	}
	if h.Compaction != nil && h.Role == RoleOffsite {
		v.add(p+".compaction", ErrRoleMismatch, "an offsite host keeps mirrors, not borg repos: compaction belongs on a server or archive host")
	}
	if len(h.Datasets) > 0 && h.Role != RoleArchive {
		v.add(p+".datasets", ErrRoleMismatch, "datasets are only managed on an archive host (this one is %s)", h.Role)
	}
	if h.Unlock != nil && h.Role != RoleOffsite {
		v.add(p+".unlock", ErrRoleMismatch, "unlock is only for an offsite host (this one is %s)", h.Role)
	}
	if h.Snapshots != nil && h.Role != RoleOffsite {
		v.add(p+".snapshots", ErrRoleMismatch, "snapshots are kept by an offsite host of its mirror (this one is %s)", h.Role)
	}
	if h.Thresholds.SnapshotMaxLag != "" && h.Role != RoleOffsite {
		v.add(p+".thresholds.snapshot_max_lag", ErrRoleMismatch, "snapshot_max_lag is watched by an offsite host's watchdog (this one is %s)", h.Role)
	}
	if h.Thresholds.WatchdogMaxAge != "" && h.Role != RoleServer {
		v.add(p+".thresholds.watchdog_max_age", ErrRoleMismatch, "watchdog_max_age is watched by the server's stale check (this one is %s)", h.Role)
	}
	if h.Pull != nil && h.Role != RoleArchive {
		v.add(p+".pull", ErrRoleMismatch, "pull is only for an archive host (this one is %s)", h.Role)
	}
	if x := h.Proxmox; x != nil {
		pp := p + ".proxmox"
		if h.Role == RoleOffsite {
			v.add(pp, ErrRoleMismatch, "proxmox is for a host that runs the stale check (server or archive), not %s", h.Role)
		} else if _, on := h.Schedule(layout.JobStale); !on {
			v.add(pp, ErrBadValue, "proxmox is watched by the stale check, whose schedule is off on this host")
		}
		v.path(pp+".dump_dir", "dump_dir", x.DumpDir, true)
		v.duration(pp+".max_age", "max_age", x.MaxAge)
		seen := map[int]bool{}
		for i, id := range x.Guests {
			gp := fmt.Sprintf("%s.guests[%d]", pp, i)
			switch {
			case id < 100 || id > 999999999:
				v.add(gp, ErrBadValue, "guest %d is not a Proxmox VMID (100 to 999999999)", id)
			case seen[id]:
				v.add(gp, ErrBadValue, "guest %d is listed twice", id)
			}
			seen[id] = true
		}
	}
}
