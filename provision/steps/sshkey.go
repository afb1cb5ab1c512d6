package steps

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
)

// SSHKey is an ed25519 key pair, generated once in Go (no ssh-keygen) and
// never regenerated: other hosts trust its public half.
type SSHKey struct {
	Path    string // private key; the public key is Path+".pub"
	Comment string
}

func (k *SSHKey) ID() string { return "ssh-key." + k.Path }

func (k *SSHKey) Reads() []host.Want {
	return []host.Want{{Path: k.Path, Content: true}, {Path: k.Path + ".pub", Content: true}}
}

func (k *SSHKey) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	priv, err := h.ReadFile(ctx, k.Path)
	if host.IsNotExist(err) {
		if _, perr := h.Lstat(ctx, k.Path+".pub"); perr == nil {
			return plan.Conflicts(fmt.Sprintf("%s.pub exists without its private key; borgkit will not pair it with a new key", k.Path)), nil
		}
		return plan.Creates("generate ed25519 key pair"), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	pub, err := publicOf(priv)
	if err != nil {
		return plan.Conflicts(fmt.Sprintf("%s: %v", k.Path, err)), nil
	}
	fi, err := h.Lstat(ctx, k.Path)
	if err != nil {
		return plan.Check{}, err
	}
	if drift := metaDrift(h, fi, 0o600, host.Root); drift != "" {
		return plan.Modifies(drift), nil
	}
	have, err := h.ReadFile(ctx, k.Path+".pub")
	if host.IsNotExist(err) {
		return plan.Modifies("write the missing public key"), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	if !samePublicKey(have, pub) {
		return plan.Conflicts(fmt.Sprintf("%s.pub does not belong to %s", k.Path, k.Path)), nil
	}
	return plan.Satisfied(), nil
}

// publicOf parses an unencrypted OpenSSH private key and insists on ed25519:
// the rrsync and serve-key lines are written for it.
func publicOf(priv []byte) (ssh.PublicKey, error) {
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("not a usable unencrypted private key: %w", err)
	}
	if t := signer.PublicKey().Type(); t != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("existing key is %s, borgkit wants ssh-ed25519", t)
	}
	return signer.PublicKey(), nil
}

func samePublicKey(authorized []byte, pub ssh.PublicKey) bool {
	have, _, _, _, err := ssh.ParseAuthorizedKey(authorized)
	return err == nil && bytes.Equal(have.Marshal(), pub.Marshal())
}

func (k *SSHKey) authorizedLine(pub ssh.PublicKey) []byte {
	line := bytes.TrimRight(ssh.MarshalAuthorizedKey(pub), "\n")
	if k.Comment != "" {
		line = append(append(line, ' '), k.Comment...)
	}
	return append(line, '\n')
}

func (k *SSHKey) Apply(ctx context.Context, h host.Host) error {
	priv, err := h.ReadFile(ctx, k.Path)
	if host.IsNotExist(err) {
		_, key, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return gerr
		}
		block, merr := ssh.MarshalPrivateKey(key, k.Comment)
		if merr != nil {
			return merr
		}
		priv = pem.EncodeToMemory(block)
		if err := writeFile(ctx, h, k.Path, priv, 0o600, host.Root); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	pub, err := publicOf(priv)
	if err != nil {
		return err
	}
	if err := fixMeta(ctx, h, k.Path, 0o600, host.Root); err != nil {
		return err
	}
	if have, err := h.ReadFile(ctx, k.Path+".pub"); err == nil && samePublicKey(have, pub) {
		return nil
	}
	return h.WriteFile(ctx, k.Path+".pub", k.authorizedLine(pub), 0o644, host.Root)
}
