package borg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrHostKeyMismatch is a borg server that shows another host key than
// the one pinned for it.
var ErrHostKeyMismatch = errors.New("host key mismatch")

// ErrUnreachable is a borg server that does not answer as an SSH server.
var ErrUnreachable = errors.New("unreachable")

// ProbeServer is the reachability check of a remote repo's borg server:
// a TCP connection to addr and an SSH key exchange that checks the
// server's host key against pinned ("TYPE BASE64", the config's
// host_key), without logging in: no borg starts on either side and no
// repo lock is taken. An error is ErrUnreachable or ErrHostKeyMismatch.
func ProbeServer(ctx context.Context, addr, user, pinned string, timeout time.Duration) error {
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pinned))
	if err != nil {
		return fmt.Errorf("pinned host key: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var got ssh.PublicKey
	algos := []string{want.Type()}
	if want.Type() == ssh.KeyAlgoRSA {
		algos = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	cfg := &ssh.ClientConfig{User: user, HostKeyAlgorithms: algos, Timeout: timeout,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			if !bytes.Equal(key.Marshal(), want.Marshal()) {
				return ErrHostKeyMismatch
			}
			return nil
		}}
	c, _, _, err := ssh.NewClientConn(conn, addr, cfg)
	if c != nil {
		c.Close()
	}
	switch {
	case errors.Is(err, ErrHostKeyMismatch) || (got != nil && !bytes.Equal(got.Marshal(), want.Marshal())):
		return fmt.Errorf("%w: %s shows %s %s, the pinned key is %s %s", ErrHostKeyMismatch, addr, got.Type(), ssh.FingerprintSHA256(got), want.Type(), ssh.FingerprintSHA256(want))
	case got == nil && err != nil && strings.Contains(err.Error(), "no common algorithm for host key"):
		return fmt.Errorf("%w: %s has no %s host key, the type pinned", ErrHostKeyMismatch, addr, want.Type())
	case got == nil:
		return fmt.Errorf("%w: %s does not complete an SSH key exchange: %v", ErrUnreachable, addr, err)
	}
	// The key matched; the login without credentials is refused, as
	// it should be.
	return nil
}
