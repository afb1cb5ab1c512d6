package jobs

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
)

// A repo on a borg server: borg reaches it over SSH itself (BORG_RSH, see
// borg.RSH); the jobs check the server answers before a night's borg run
// and turn what the server or ssh refuse into a sentence a user can act on.

// reachTimeout bounds the reachability check of a borg server.
const reachTimeout = 20 * time.Second

// reachable checks that repo r's borg server answers as an SSH server:
// a TCP connection to HOST:PORT and the "SSH-" banner. It is the remote
// repo's preflight in place of a disk's mount check: cheap (no login, no
// borg started on either side, no repo lock taken), and it tells an
// unreachable server from a refused login or a wrong host key, which the
// borg run itself then reports (see failureText).
func (e *Env) reachable(ctx context.Context, r *config.Repo) error {
	loc := r.Location()
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", loc.Addr())
	if err != nil {
		return fmt.Errorf("the borg server of repo %s (%s) is unreachable: %v; nothing was backed up into it tonight", r.Name, loc.Addr(), err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	line, err := bufio.NewReaderSize(conn, 512).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SSH-") {
		return fmt.Errorf("the borg server of repo %s (%s) accepts connections but does not answer as an SSH server (%q, %v); nothing was backed up into it tonight",
			r.Name, loc.Addr(), strings.TrimSpace(line), err)
	}
	e.logf("%s: borg server %s answers (%s)", r.Name, loc.Addr(), strings.TrimSpace(line))
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
