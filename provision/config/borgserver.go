package config

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/layout"
)

// RoleBorgServer is a host that serves borg repos to many clients over
// SSH: a system user, one directory per client, and one forced-command
// key per client (borg serve, append-only, with a quota).
const RoleBorgServer Role = "borg-server"

// DefaultBorgUser is the borg server's system user when borg_server.user
// is not set.
const DefaultBorgUser = "borg"

// BorgServer is what a borg-server host serves.
type BorgServer struct {
	// User is the system user every client logs in as (default borg);
	// each client's key is confined to its own directory by borg serve.
	User string `yaml:"user,omitempty"`
	// Root holds one directory per client, ROOT/CLIENT, owned by User.
	Root    string       `yaml:"root"`
	Clients []BorgClient `yaml:"clients"`
}

// BorgClient is one client of a borg server: its key may run borg serve
// in ROOT/NAME only, append-only, within Quota.
type BorgClient struct {
	Name string `yaml:"name"`
	// PublicKey is the client's repo identity ("ssh-ed25519 AAAA... comment"),
	// taken from the config, never from the client at provisioning time:
	// the server's plan then never depends on another host's state, and
	// a client cannot swap in a key by being provisioned first.
	PublicKey string `yaml:"public_key"`
	// Quota is borg serve --storage-quota: a number with an optional
	// K, M, G, T or P suffix (powers of 1000), as borg parses it.
	Quota string `yaml:"quota"`
	// From, when set, limits the key to these addresses (authorized_keys
	// from="..."): patterns of names or addresses, comma-separated.
	From string `yaml:"from,omitempty"`
}

// UserOrDefault is the borg server's system user.
func (b *BorgServer) UserOrDefault() string {
	if b.User == "" {
		return DefaultBorgUser
	}
	return b.User
}

// Dir is the client's repository directory on the server.
func (b *BorgServer) Dir(c BorgClient) string { return path.Join(b.Root, c.Name) }

// quotaRE is borg 1.2's parse_file_size: digits, an optional fraction, and
// one suffix of K, M, G, T, P.
var quotaRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[KMGTP]?$`)

// minQuota is borg serve's smallest --storage-quota (10M): below it,
// borg serve exits with a usage error and the client never connects.
const minQuota = 10_000_000

// quotaBytes is a quota matching quotaRE in bytes, as borg computes it:
// int(float(number) * factor).
func quotaBytes(q string) float64 {
	factor := 1.0
	if i := strings.IndexAny(q, "KMGTP"); i >= 0 {
		factor = map[byte]float64{'K': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'P': 1e15}[q[i]]
		q = q[:i]
	}
	n, err := strconv.ParseFloat(q, 64)
	if err != nil {
		return 0
	}
	return n * factor
}

// safeArgRE is what may go unquoted into the forced command: sshd hands
// it to the user's shell, so no space, quote or shell character.
var safeArgRE = regexp.MustCompile(`^[A-Za-z0-9/._+-]+$`)

// fromRE is an authorized_keys from= pattern list: host names, addresses,
// CIDR, wildcards, negation, comma-separated; no quote, space or newline.
var fromRE = regexp.MustCompile(`^!?[A-Za-z0-9.:*?/_%-]+(,!?[A-Za-z0-9.:*?/_%-]+)*$`)

// ServeCommand is the forced command of the client's key.
func (b *BorgServer) ServeCommand(c BorgClient) string {
	return "borg serve --restrict-to-path " + b.Dir(c) + " --append-only --storage-quota " + c.Quota
}

// AuthorizedKeysLine is the client's line in the borg user's
// authorized_keys: restrict (no pty, no forwarding), its addresses, and
// borg serve as its only command.
func (b *BorgServer) AuthorizedKeysLine(c BorgClient) (string, error) {
	key, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(c.PublicKey))
	if err != nil {
		return "", fmt.Errorf("client %s: public_key: %w", c.Name, err)
	}
	if len(opts) > 0 || len(rest) > 0 {
		return "", fmt.Errorf("client %s: public_key: give the key alone, TYPE BASE64 [COMMENT], on one line", c.Name)
	}
	cmd := b.ServeCommand(c)
	for _, a := range strings.Fields(cmd) {
		if !safeArgRE.MatchString(a) {
			return "", fmt.Errorf("client %s: %q cannot go into a forced command", c.Name, a)
		}
	}
	opt := "restrict"
	if c.From != "" {
		if !fromRE.MatchString(c.From) {
			return "", fmt.Errorf("client %s: from %q is not an authorized_keys pattern list", c.Name, c.From)
		}
		opt += `,from="` + c.From + `"`
	}
	line := opt + `,command="` + cmd + `" ` + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	if comment = strings.TrimSpace(comment); comment != "" {
		line += " " + comment
	}
	return line, nil
}

func (v *validator) borgServer(p string, h *Host) {
	b := h.BorgServer
	if h.Role != RoleBorgServer {
		if b != nil {
			v.add(p+".borg_server", ErrRoleMismatch, "borg_server is only for a borg-server host (this one is %s)", h.Role)
		}
		return
	}
	if b == nil {
		v.add(p+".borg_server", ErrRequired, "a borg-server host needs borg_server: with root and clients")
		return
	}
	p += ".borg_server"
	if b.User != "" && (len(b.User) > 32 || !userRE.MatchString(b.User) || b.User == "root") {
		v.add(p+".user", ErrBadValue, "user %q is not an unprivileged login name", b.User)
	}
	if v.path(p+".root", "root", b.Root, true) && !safeArgRE.MatchString(b.Root) {
		v.add(p+".root", ErrBadPath, "root %q: letters, digits and / . _ + - only (it goes into the clients' forced command)", b.Root)
	} else if b.Root == "/" {
		v.add(p+".root", ErrBadPath, "root / would give the borg user the whole machine")
	}
	if len(b.Clients) == 0 {
		v.add(p+".clients", ErrRequired, "clients: at least one client")
	}
	seen := map[string]string{}
	keys := map[string]string{}
	for i, c := range b.Clients {
		cp := fmt.Sprintf("%s.clients[%d]", p, i)
		if v.name(cp+".name", "client", c.Name) {
			v.unique(seen, cp+".name", "client", c.Name)
		}
		switch {
		case c.Quota == "":
			v.add(cp+".quota", ErrRequired, "quota is required (borg serve --storage-quota, e.g. 500G): a client must not fill the server")
		case !quotaRE.MatchString(c.Quota):
			v.add(cp+".quota", ErrBadValue, "quota %q: a number with an optional K, M, G, T or P suffix, as borg --storage-quota takes it (500G, 1.5T)", c.Quota)
		case quotaBytes(c.Quota) < minQuota:
			v.add(cp+".quota", ErrBadValue, "quota %q: borg serve refuses a quota under 10M", c.Quota)
		}
		if c.From != "" && !fromRE.MatchString(c.From) {
			v.add(cp+".from", ErrBadValue, "from %q: comma-separated host or address patterns, no spaces or quotes (authorized_keys from=)", c.From)
		}
		if c.PublicKey == "" {
			v.add(cp+".public_key", ErrRequired, "public_key is required: the client's repo identity (%s.pub on a borgkit client)", layout.RepoIdentity)
			continue
		}
		key, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(c.PublicKey))
		switch {
		case err != nil:
			v.add(cp+".public_key", ErrBadValue, "public_key: %v", err)
		case len(opts) > 0 || len(rest) > 0 || hasCtl(c.PublicKey):
			v.add(cp+".public_key", ErrBadValue, "public_key: the key alone, TYPE BASE64 [COMMENT], on one line, without options")
		default:
			fp := ssh.FingerprintSHA256(key)
			if other, dup := keys[fp]; dup {
				v.add(cp+".public_key", ErrBadValue, "public_key is client %s's too: one key per client, or one client reads the other's repo", other)
			}
			keys[fp] = c.Name
		}
	}
}
