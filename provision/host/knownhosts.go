package host

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

var (
	// ErrHostKeyUnknown: the host's key is in no known_hosts file. The error
	// text carries the fingerprint and how to accept it.
	ErrHostKeyUnknown = errors.New("unknown host key")
	// ErrHostKeyChanged: known_hosts records other keys for the host.
	ErrHostKeyChanged = errors.New("HOST KEY CHANGED")
)

// hostKeyCheck decides whether to trust a presented host key.
type hostKeyCheck struct {
	files   []string // known_hosts files that exist
	missing []string // those that do not
	db      ssh.HostKeyCallback
	pin     string
}

func newHostKeyCheck(files []string, pin string) (*hostKeyCheck, error) {
	if pin != "" && !strings.HasPrefix(pin, "SHA256:") {
		return nil, fmt.Errorf("host key pin %q is not a SHA256:... fingerprint", pin)
	}
	c := &hostKeyCheck{pin: pin}
	for _, f := range files {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			c.missing = append(c.missing, f)
			continue // a first run has no known_hosts yet: every key is unknown
		}
		c.files = append(c.files, f)
	}
	db, err := knownhosts.New(c.files...)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	c.db = db
	return c, nil
}

func (c *hostKeyCheck) verify(hostname string, remote net.Addr, key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(key)
	host := knownhosts.Normalize(hostname)
	if c.pin != "" {
		if fp == c.pin {
			return nil
		}
		return fmt.Errorf("%s presents %s key %s, not the accepted %s: not connecting", host, key.Type(), fp, c.pin)
	}
	err := c.db(hostname, remote, key)
	var keyErr *knownhosts.KeyError
	var revoked *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &revoked):
		return fmt.Errorf("%s presents %s key %s, which %s:%d marks revoked", host, key.Type(), fp, revoked.Revoked.Filename, revoked.Revoked.Line)
	case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
		where := "no known_hosts file is configured"
		switch {
		case len(c.files) > 0:
			where = "it is not in " + strings.Join(c.files, ", ")
		case len(c.missing) > 0:
			where = "known_hosts " + strings.Join(c.missing, ", ") + " does not exist"
		}
		return fmt.Errorf("%w: %s presents %s key %s and %s. Check that fingerprint on the host itself "+
			"(ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then run again with --accept-host-key %s",
			ErrHostKeyUnknown, host, key.Type(), fp, where, keyFileKind(key.Type()), fp)
	case errors.As(err, &keyErr):
		var known []string
		for _, k := range keyErr.Want {
			known = append(known, fmt.Sprintf("%s:%d (%s %s)", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key)))
		}
		return fmt.Errorf("%w for %s: it presents %s key %s, but known_hosts records %s. "+
			"Someone may be intercepting the connection, or the host was reinstalled. "+
			"Only if you know why: check the new fingerprint on the host, remove the old line, "+
			"or run with --accept-host-key %s",
			ErrHostKeyChanged, host, key.Type(), fp, strings.Join(known, ", "), fp)
	}
	return fmt.Errorf("host key check for %s: %w", host, err)
}

func keyFileKind(keyType string) string {
	switch {
	case strings.Contains(keyType, "ed25519"):
		return "ed25519"
	case strings.HasPrefix(keyType, "ecdsa"):
		return "ecdsa"
	case strings.Contains(keyType, "rsa"):
		return "rsa"
	}
	return "*"
}

// probeKey is a key no host has: checking it against known_hosts lists the
// keys recorded for a host without a connection.
var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
})

// algorithms puts the key types known_hosts records for the host first, as
// OpenSSH does: otherwise a server with an ed25519 and an RSA key, known only
// by its RSA key, would show its ed25519 key and look like a changed host.
// nil keeps the library's default order.
func (c *hostKeyCheck) algorithms(addr string, remote net.Addr) []string {
	if c.pin != "" {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if err := c.db(addr, remote, probeKey()); !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
		return nil
	}
	var algos []string
	for _, k := range keyErr.Want {
		t := k.Key.Type()
		if t == ssh.KeyAlgoRSA {
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
		}
		algos = append(algos, t)
	}
	algos = append(algos, ssh.SupportedAlgorithms().HostKeys...)
	var out []string
	for _, a := range algos {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// AppendKnownHost records key for addr (host or host:port) in a known_hosts
// file, creating it with mode 0600 if needed. Callers use it after the user
// accepted a key by fingerprint; DialSSH never writes known_hosts itself.
func AppendKnownHost(file, addr string, key ssh.PublicKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("append to known_hosts: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("append to %s: %w", file, err)
	}
	if fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err != nil {
			return fmt.Errorf("append to %s: %w", file, err)
		}
		if last[0] != '\n' {
			line = "\n" + line // keep a hand-edited last line intact
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("append to %s: %w", file, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("append to %s: %w", file, err)
	}
	return f.Close()
}
