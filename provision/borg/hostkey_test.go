package borg_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/testing/sshd"
)

func authorized(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// TestProbeServer runs the remote repo's reachability check against a real
// sshd: its own key passes (the login it never attempts is refused), a
// server that also has an ECDSA key is still checked on the pinned type,
// another key is a mismatch, a closed port is unreachable.
func TestProbeServer(t *testing.T) {
	srv := sshd.Start(t, sshd.Options{ECDSAHostKey: true})
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	tests := []struct {
		name, addr, key string
		want            error
	}{
		{"pinned ed25519", srv.Addr, authorized(srv.HostKey), nil},
		{"pinned ecdsa", srv.Addr, authorized(srv.ECDSAHostKey), nil},
		{"another key", srv.Addr, authorized(otherSigner.PublicKey()), borg.ErrHostKeyMismatch},
		{"closed port", closed, authorized(srv.HostKey), borg.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := borg.ProbeServer(context.Background(), tt.addr, "root", tt.key, 10*time.Second)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("ProbeServer: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestRSH: borg splits BORG_RSH with shlex; the paths are quoted for it
// and host keys are checked strictly against borgkit's file alone.
func TestRSH(t *testing.T) {
	got := borg.RSH("/etc/borgkit/ssh/repo_ed25519", "/tmp/a b/known_hosts")
	for _, want := range []string{"ssh -i /etc/borgkit/ssh/repo_ed25519 ", "'UserKnownHostsFile=/tmp/a b/known_hosts'",
		"StrictHostKeyChecking=yes", "GlobalKnownHostsFile=/dev/null", "IdentitiesOnly=yes", "BatchMode=yes"} {
		if !strings.Contains(got, want) {
			t.Errorf("RSH = %q, lacks %q", got, want)
		}
	}
	env := borg.Env{RSH: got}
	if !strings.Contains(strings.Join(env.Vars(), "\n"), "BORG_RSH="+got) {
		t.Errorf("Vars lacks BORG_RSH: %v", env.Vars())
	}
}
