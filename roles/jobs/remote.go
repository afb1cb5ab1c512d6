package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
)

// A repo on a borg server: borg reaches it over SSH itself (BORG_RSH, see
// borg.RSH); the jobs check the server answers before a night's borg run
// and turn what the server or ssh refuse into a sentence a user can act on.

// reachTimeout bounds the reachability check of a borg server.
const reachTimeout = 20 * time.Second

// reachable checks repo r's borg server before the night's borg run, in
// place of a disk's mount check: a TCP connection and an SSH key exchange
// that must show the host key pinned in the config (borg.ProbeServer). It
// logs in to nothing, so it is cheap and takes no repo lock; a refused
// login is the borg run's to report (see failureText). borg's own message
// for a wrong host key ("Connection closed by remote host") does not say
// which it was, so the check is here.
func (e *Env) reachable(ctx context.Context, r *config.Repo) error {
	loc := r.Location()
	err := borg.ProbeServer(ctx, loc.Addr(), loc.User, r.HostKey, reachTimeout)
	switch {
	case errors.Is(err, borg.ErrHostKeyMismatch):
		return fmt.Errorf("HOST KEY MISMATCH: %v. ssh would refuse it (StrictHostKeyChecking=yes against %s), so nothing was backed up into repo %s tonight. "+
			"Check the server's key (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it); if it really changed, put the new one in host_key and run borgkit provision", err, layout.RepoKnownHosts, r.Name)
	case err != nil:
		return fmt.Errorf("the borg server of repo %s is unreachable (%v); nothing was backed up into it tonight", r.Name, err)
	}
	e.logf("%s: borg server %s answers with the pinned host key", r.Name, loc.Addr())
	return nil
}

// failureText is what a failed borg run's section says: the hint for a
// refusal borg's own words leave unclear, then the tail of its output.
func failureText(res host.Result, err error) string {
	out := strings.TrimSpace(tailText(append(res.Stderr, res.Stdout...), 12) + "\n" + errText(res, err))
	if h := borgHint(string(res.Stderr)); h != "" {
		return h + "\n\n" + out
	}
	return out
}

// borgHint names the cause of a remote repo's failure from borg's and
// ssh's stderr, "" when it is none of these.
func borgHint(stderr string) string {
	switch {
	case strings.Contains(stderr, "storage quota") && strings.Contains(stderr, "exceeded"):
		return "STORAGE QUOTA EXCEEDED: the borg server refused to store more in this repo (its borg serve --storage-quota). " +
			"Tonight's archive was not written; the archives already there are intact. Free space in the repo on the server's side " +
			"(an append-only client's prune and compact free nothing there) or raise the quota."
	case strings.Contains(stderr, "Host key verification failed") || strings.Contains(stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED"):
		return "HOST KEY MISMATCH: the borg server's SSH host key is not the one pinned in this repo's host_key, so ssh refused to connect " +
			"(StrictHostKeyChecking=yes against " + layout.RepoKnownHosts + "). Check the server's key (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it); " +
			"if it really changed, put the new one in host_key and run borgkit provision."
	case strings.Contains(stderr, "Permission denied (publickey"):
		return "LOGIN REFUSED: the borg server does not accept borgkit's key " + layout.RepoIdentity + ".pub for this repo's user: " +
			"add it to that user's authorized_keys on the server (a hosted service: its web page for SSH keys)."
	}
	return ""
}
