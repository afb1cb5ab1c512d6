package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// SSHConfig says how to reach a host over SSH.
type SSHConfig struct {
	Name string // config name for messages; Addr if empty
	Addr string // host:port; ":22" is added when the port is missing
	User string // remote user; required
	// IdentityFiles are private keys (unencrypted: an encrypted key must be
	// loaded into the agent). The agent at SSH_AUTH_SOCK is tried after them.
	IdentityFiles []string
	// KnownHostsFiles are checked for the host key; a file that does not exist
	// counts as empty. There is no trust on first use: an unknown key fails.
	KnownHostsFiles []string
	// AcceptHostKey pins the host key by its "SHA256:..." fingerprint, as the
	// user confirmed it out of band (--accept-host-key). It wins over
	// known_hosts; record the key with AppendKnownHost to drop the pin.
	AcceptHostKey string
	// Timeout bounds connecting and the handshake; 0 means 30s.
	Timeout time.Duration
}

const defaultSSHTimeout = 30 * time.Second

// sshHost is a remote machine over one SSH connection: every Run opens a
// session on it, every file operation goes through one SFTP session.
type sshHost struct {
	name    string
	client  *ssh.Client
	hostKey ssh.PublicKey

	sessions chan struct{} // a slot for each program Run may run at once
	ahead    chan opened   // the session opened ahead, when aheadOpen

	mu        sync.Mutex
	sftp      *sftp.Client // opened on the first file operation
	aheadOpen bool         // a session is being or was opened ahead
	closed    bool
}

// DialSSH connects and authenticates; the connection serves every operation
// until Close.
func DialSSH(ctx context.Context, cfg SSHConfig) (Host, error) {
	addr := cfg.Addr
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
	}
	name := cfg.Name
	if name == "" {
		name = addr
	}
	fail := func(err error) (Host, error) {
		return nil, fmt.Errorf("ssh %s@%s (%s): %w", cfg.User, addr, name, err)
	}
	if cfg.User == "" {
		return fail(errors.New("no user given"))
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultSSHTimeout
	}
	check, err := newHostKeyCheck(cfg.KnownHostsFiles, cfg.AcceptHostKey)
	if err != nil {
		return fail(err)
	}
	auth, err := loadAuth(cfg.IdentityFiles)
	if err != nil {
		return fail(err)
	}
	defer auth.close()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(err)
	}
	// ssh.NewClientConn knows no context: closing the socket is what stops a
	// handshake with a server that accepted but never answers.
	stop := context.AfterFunc(ctx, func() { conn.Close() })

	var presented ssh.PublicKey
	config := &ssh.ClientConfig{
		User: cfg.User,
		Auth: auth.methods(),
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			if err := check.verify(hostname, remote, key); err != nil {
				return err
			}
			presented = key
			return nil
		},
		HostKeyAlgorithms: check.algorithms(addr, conn.RemoteAddr()),
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	if !stop() {
		if err == nil {
			c.Close()
		}
		return fail(fmt.Errorf("connect: %w", ctx.Err()))
	}
	if err != nil {
		conn.Close()
		return fail(auth.explain(err))
	}
	h := &sshHost{name: name, client: ssh.NewClient(c, chans, reqs), hostKey: presented,
		sessions: make(chan struct{}, maxRuns), ahead: make(chan opened, 1)}
	h.openAhead()
	return h, nil
}

// opened is a session opened ahead, or why it could not be.
type opened struct {
	s   *ssh.Session
	err error
}

// session returns a new session of the connection. Opening one waits a
// round trip for the server's confirmation, so one is always opened ahead,
// in the background, while the last is in use: a program that follows
// another then starts a round trip sooner.
func (h *sshHost) session() (*ssh.Session, error) {
	h.mu.Lock()
	mine := h.aheadOpen
	h.aheadOpen = false
	h.mu.Unlock()
	var s *ssh.Session
	if mine {
		if o := <-h.ahead; o.err == nil {
			s = o.s
		}
	}
	h.openAhead()
	if s != nil {
		return s, nil
	}
	return h.client.NewSession()
}

// openAhead opens the next session in the background, unless one is open
// or opening already. It takes one of sshd's MaxSessions besides the
// programs Run allows and SFTP.
func (h *sshHost) openAhead() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.aheadOpen || h.closed {
		return
	}
	h.aheadOpen = true
	go func() {
		s, err := h.client.NewSession()
		h.ahead <- opened{s, err}
	}()
}

func (h *sshHost) Name() string         { return h.name }
func (h *sshHost) Live() bool           { return true }
func (h *sshHost) Path(p string) string { return p }

// Close ends the SFTP session, then the connection. A second Close is a no-op.
func (h *sshHost) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	var errs []error
	if h.sftp != nil {
		errs = append(errs, h.sftp.Close())
	}
	if err := h.client.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s: %w", h.name, err)
	}
	return nil
}

// SSHHostKey returns the key an SSH host presented when it was dialled, so
// that a caller which accepted it by fingerprint can record it with
// AppendKnownHost. It is nil for hosts that are not SSH hosts.
func SSHHostKey(h Host) ssh.PublicKey {
	if s, ok := h.(*sshHost); ok {
		return s.hostKey
	}
	return nil
}
