package vm

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Key is an ed25519 key pair in OpenSSH's file formats: a guest's host key,
// or the lab's login key.
type Key struct {
	Signer ssh.Signer
	// Private is the OpenSSH private key file (unencrypted).
	Private []byte
	// AuthorizedKey is the public half as one authorized_keys line.
	AuthorizedKey []byte
}

// NewKey makes a fresh ed25519 key pair.
func NewKey(comment string) (*Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	if comment != "" {
		line += " " + comment
	}
	return &Key{Signer: signer, Private: pem.EncodeToMemory(block), AuthorizedKey: []byte(line + "\n")}, nil
}

// LoadKey reads a key written by Save.
func LoadKey(dir, name string) (*Key, error) {
	priv, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(filepath.Join(dir, name+".pub"))
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return &Key{Signer: signer, Private: priv, AuthorizedKey: pub}, nil
}

// Save writes the key as dir/name (0600) and dir/name.pub.
func (k *Key) Save(dir, name string) error {
	if err := os.WriteFile(filepath.Join(dir, name), k.Private, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".pub"), k.AuthorizedKey, 0o644)
}

// Fingerprint is the public key's SHA256 fingerprint, as
// host.SSHConfig.AcceptHostKey pins it.
func (k *Key) Fingerprint() string { return ssh.FingerprintSHA256(k.Signer.PublicKey()) }

// freePort asks the kernel for a free port on 127.0.0.1. It is released at
// once for qemu to bind, so another process could take it in between; on
// a test machine that race is rare enough, and Start says which port.
func freePort(network string) (int, error) {
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	return 0, fmt.Errorf("freePort: network %q", network)
}

// Link is the point-to-point lab network between two guests: two UDP
// sockets on 127.0.0.1, each guest sending to the other's. Nothing else
// is on it, and it needs no bridge, tap device or root on the host.
type Link struct {
	ports [2]int
}

// NewLink picks the link's two ports.
func NewLink() (*Link, error) {
	var l Link
	for i := range l.ports {
		for {
			p, err := freePort("udp")
			if err != nil {
				return nil, err
			}
			if i == 0 || p != l.ports[0] {
				l.ports[i] = p
				break
			}
		}
	}
	return &l, nil
}

// netdev is qemu's -netdev argument for end 0 or 1 of the link.
func (l *Link) netdev(id string, end int) string {
	local, peer := l.ports[end], l.ports[1-end]
	return "socket,id=" + id + ",udp=127.0.0.1:" + strconv.Itoa(peer) + ",localaddr=127.0.0.1:" + strconv.Itoa(local)
}
