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
	ahead    chan opened   // sessions opened ahead, each sent once

	// files is the SFTP session, started as the connection is made (see
	// DialSSH); ready is closed once it is there or failed.
	ready   chan struct{}
	sftp    *sftp.Client
	sftpErr error

	mu       sync.Mutex
	reserved int  // sessions opening or opened ahead that no Run has claimed
	noAhead  bool // sshd refused a session: none are opened ahead any more
	closed   bool
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
	c, chans, reqs, err := ssh.NewClientConn(quickAck(conn), addr, config)
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
		sessions: make(chan struct{}, maxRuns), ahead: make(chan opened, maxAhead), ready: make(chan struct{})}
	// Opening a session, and starting SFTP in one (open, subsystem, init),
	// each wait on the server: begun together now, they are ready when the
	// first program or file operation wants them, instead of one after the
	// other on its way.
	h.openAhead()
	go h.startFiles()
	return h, nil
}

// startFiles starts the SFTP session; files waits for it.
func (h *sshHost) startFiles() {
	defer close(h.ready)
	var c *sftp.Client
	err := h.retryRefused(func() (err error) {
		c, err = sftp.NewClient(h.client)
		return err
	})
	if err != nil {
		h.sftpErr = fmt.Errorf("start sftp: %w", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		c.Close()
		h.sftpErr = errors.New("host is closed")
		return
	}
	h.sftp = c
}

// opened is a session opened ahead, or why it could not be.
type opened struct {
	s   *ssh.Session
	err error
}

// session returns a new session of the connection. Opening one waits a
// round trip for the server's confirmation, so a few are always opened
// ahead, in the background: checks that run programs at once then start
// them a round trip sooner.
func (h *sshHost) session() (*ssh.Session, error) {
	for {
		h.mu.Lock()
		mine := h.reserved > 0
		if mine {
			h.reserved--
		}
		h.mu.Unlock()
		if !mine {
			break
		}
		// One sshd refused (its MaxSessions) is passed over for the next.
		if o := <-h.ahead; o.err == nil {
			h.openAhead()
			return o.s, nil
		}
	}
	h.openAhead()
	var s *ssh.Session
	err := h.retryRefused(func() (err error) {
		s, err = h.client.NewSession()
		return err
	})
	return s, err
}

// retryRefused runs open until sshd stops refusing the channel it asks
// for. sshd refuses past its MaxSessions: a server whose limit is below
// what was opened ahead (the idle ones are given back and no more are
// opened ahead), or one that has not yet counted the sessions just closed
// (their close is still on its way). Other errors, and a refusal that
// lasts past the last wait, are returned.
func (h *sshHost) retryRefused(open func() error) error {
	wait := 20 * time.Millisecond
	for try := 0; ; try++ {
		err := open()
		var refused *ssh.OpenChannelError
		if err == nil || !errors.As(err, &refused) || try == openTries {
			return err
		}
		if h.dropAhead() {
			continue
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// openTries bounds retryRefused: about 5 s of waits in all.
const openTries = 9

// dropAhead closes the sessions opened ahead and opens none again. It
// reports whether there were any.
func (h *sshHost) dropAhead() bool {
	h.mu.Lock()
	n := h.reserved
	h.reserved, h.noAhead = 0, true
	h.mu.Unlock()
	for range n {
		if o := <-h.ahead; o.err == nil {
			o.s.Close()
		}
	}
	return n > 0
}

// maxAhead is how many sessions are kept opened ahead: a plan's checks run
// a handful of programs at once (systemctl's three questions, findmnt,
// the installed binary's version).
const maxAhead = 4

// openAhead opens sessions in the background until maxAhead are opening or
// open. Those and the programs running stay within maxRuns, so that SFTP
// and the kills of cancelled programs keep some of sshd's MaxSessions.
func (h *sshHost) openAhead() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for !h.closed && !h.noAhead && h.reserved < maxAhead && h.reserved+len(h.sessions) < maxRuns {
		h.reserved++
		go func() {
			s, err := h.client.NewSession()
			if err != nil {
				h.mu.Lock()
				h.noAhead = true
				h.mu.Unlock()
			}
			h.ahead <- opened{s, err}
		}()
	}
}

func (h *sshHost) Name() string         { return h.name }
func (h *sshHost) Live() bool           { return true }
func (h *sshHost) Path(p string) string { return p }

// Close ends the connection, and with it the SFTP session and an SFTP
// start still under way. The connection goes first: an SFTP session
// closed on its own waits a round trip for the server's close, and
// nothing of it is in flight by now (every file operation waited for its
// answer). A second Close is a no-op.
func (h *sshHost) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	sc := h.sftp
	h.mu.Unlock()
	err := h.client.Close()
	if sc != nil {
		sc.Close() // ends its reader, which the closed connection already stopped
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
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
