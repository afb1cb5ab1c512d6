package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
)

// RemoteBorgRepo is a borg repository on a borg server, reached over SSH
// with borgkit's repo identity (BORG_RSH): used as it is when it opens,
// created with borg init where the server has none. borgkit never
// changes, deletes or moves anything on the server otherwise (the server
// side of a hosted service is not borgkit's; a borg-server role host is
// provisioned on its own).
type RemoteBorgRepo struct {
	Name       string
	Location   string // ssh://USER@HOST:PORT/PATH
	Encryption string
	PassFile   string // "" for encryption none
	// Addr (HOST:PORT) and User reach the server; HostKey is the key
	// pinned for it ("TYPE BASE64") and KnownHostsLine its line in
	// layout.RepoKnownHosts.
	Addr, User, HostKey, KnownHostsLine string
	// Records, when set, are the host's own records of the repo: where
	// they vouch for it, a check trusts them instead of running borg
	// info over SSH (borg on both ends and a key derivation, a second
	// or more a client, most of a no-change fleet run).
	Records Voucher
}

// Voucher reads what a host's own records say of a repo on a borg
// server: Reads names the files (surveyed with the plan's other reads),
// Vouch says whether they show the repo in use as the config has it,
// with the repository id they recorded, or why not.
type Voucher interface {
	Reads() []host.Want
	Vouch(ctx context.Context, h host.Host) (repoID, since string, err error)
}

func (r *RemoteBorgRepo) ID() string { return "repo." + r.Name }

func (r *RemoteBorgRepo) Reads() []host.Want {
	w := []host.Want{{Path: layout.RepoIdentity}, {Path: layout.RepoKnownHosts}}
	if r.Records != nil {
		w = append(w, r.Records.Reads()...)
	}
	return w
}

// Check asks the server, on a live host whose identity exists; a tree
// under --root, or a first run before the key is made, plans the init
// without reaching out.
func (r *RemoteBorgRepo) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	if !h.Live() {
		return plan.Skipped("repo " + r.Name + " is on a borg server (" + r.Location + "): it is opened or created when this host is provisioned live"), nil
	}
	if why := r.server(ctx); why != "" {
		return plan.Conflicts(why), nil
	}
	later := fmt.Sprintf("borg init --encryption=%s %s, unless it exists there (once %s.pub is authorized on the server)", r.Encryption, r.Location, layout.RepoIdentity)
	if _, err := h.Lstat(ctx, layout.RepoIdentity); host.IsNotExist(err) {
		return plan.Creates(later), nil
	}
	if kh, err := h.ReadFile(ctx, layout.RepoKnownHosts); err != nil || !strings.Contains(string(kh), r.KnownHostsLine) {
		// borg would meet the known_hosts the plan is about to write.
		return plan.Creates(later), nil
	}
	if r.Records != nil {
		if _, since, err := r.Records.Vouch(ctx, h); err == nil {
			return plan.Check{Action: plan.OK, Summary: "in use: " + since}, nil
		}
	}
	exists, why, err := r.probe(ctx, h)
	switch {
	case err != nil:
		return plan.Check{}, err
	case why != "":
		return plan.Conflicts(why), nil
	case exists:
		return plan.Satisfied(), nil
	}
	return plan.Creates("borg init --encryption=" + r.Encryption + " " + r.Location), nil
}

// server checks the server answers with the pinned host key (see
// borg.ProbeServer): a wrong key is named as such, which borg's own
// "Connection closed by remote host" does not.
func (r *RemoteBorgRepo) server(ctx context.Context) string {
	err := probeServer(ctx, r.Addr, r.User, r.HostKey)
	switch {
	case errors.Is(err, borg.ErrHostKeyMismatch):
		return fmt.Sprintf("the borg server of %s does not show the host key pinned in host_key (%v): check the server's key and correct host_key", r.Location, err)
	case err != nil:
		return fmt.Sprintf("the borg server of %s cannot be reached: %v", r.Location, err)
	}
	return ""
}

// probe runs borg info on the repo: whether it exists, or why it cannot
// be used (the key not authorized, the host key not the pinned one, an
// encryption other than the config's).
func (r *RemoteBorgRepo) probe(ctx context.Context, h host.Host) (exists bool, why string, err error) {
	res, err := h.Run(ctx, borg.Cmd(borg.OnHost(h, r.PassFile), "info", "--json", "--bypass-lock", r.Location))
	stderr := string(res.Stderr)
	switch {
	case err == nil:
		var v struct {
			Encryption struct {
				Mode string `json:"mode"`
			} `json:"encryption"`
		}
		if jerr := json.Unmarshal(res.Stdout, &v); jerr != nil {
			return false, "", fmt.Errorf("borg info %s: %w", r.Location, jerr)
		}
		if v.Encryption.Mode != r.Encryption {
			return true, fmt.Sprintf("%s is an existing repository with encryption %s, but the config says encryption: %s; borgkit never changes a repository's encryption: write the repo's own",
				r.Location, v.Encryption.Mode, r.Encryption), nil
		}
		return true, "", nil
	case strings.Contains(stderr, "does not exist"), strings.Contains(stderr, "is not a valid repository"):
		// No repo there, or a directory without one (the server's admin
		// made it empty): borg init takes an empty directory and refuses
		// one that holds other files, so nothing there is overwritten.
		return false, "", nil
	case strings.Contains(stderr, "Host key verification failed"), strings.Contains(stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED"):
		return false, fmt.Sprintf("the borg server of %s does not show the host key pinned in host_key (%s): ssh refused it; check the server's key and correct host_key", r.Location, layout.RepoKnownHosts), nil
	case strings.Contains(stderr, "Permission denied"):
		return false, fmt.Sprintf("the borg server of %s refuses borgkit's key: authorize %s.pub there (one authorized_keys line, or the hosted service's SSH key page), then provision again", r.Location, layout.RepoIdentity), nil
	case strings.Contains(stderr, "passphrase supplied") && strings.Contains(stderr, "incorrect"):
		return true, fmt.Sprintf("%s exists, but the passphrase in %s does not open it: put the repo's own passphrase there (0600)", r.Location, r.PassFile), nil
	}
	return false, "", fmt.Errorf("borg info %s: %w", r.Location, err)
}

func (r *RemoteBorgRepo) Apply(ctx context.Context, h host.Host) error {
	if !h.Live() {
		return errors.New("a remote repo is provisioned on a live host only")
	}
	if why := r.server(ctx); why != "" {
		return errors.New(why)
	}
	exists, why, err := r.probe(ctx, h)
	switch {
	case err != nil:
		return err
	case why != "":
		return errors.New(why)
	case exists:
		return nil
	}
	if _, err := h.Run(ctx, borg.Cmd(borg.OnHost(h, r.PassFile), "init", "--encryption="+r.Encryption, "--make-parent-dirs", r.Location)); err != nil {
		return fmt.Errorf("borg init %s: %w", r.Location, err)
	}
	return nil
}

// probed remembers, for serverAnswers, the servers that answered with
// their pinned key in this process: a fleet run's clients of one server
// ask it once, not once each.
var probed sync.Map // addr, user and key -> *probeEntry

type probeEntry struct {
	mu sync.Mutex // held while one asks: the others wait for its answer
	at time.Time  // the last answer, zero if none
}

// serverAnswers is how long a server's answer stands for the other steps
// and hosts of the same run.
const serverAnswers = time.Minute

// probeServer is borg.ProbeServer, once a run for a server that answers;
// a failure is never remembered.
func probeServer(ctx context.Context, addr, user, key string) error {
	v, _ := probed.LoadOrStore(addr+"\x00"+user+"\x00"+key, &probeEntry{})
	e := v.(*probeEntry)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && time.Since(e.at) < serverAnswers {
		return nil
	}
	if err := borg.ProbeServer(ctx, addr, user, key, 20*time.Second); err != nil {
		return err
	}
	e.at = time.Now()
	return nil
}
