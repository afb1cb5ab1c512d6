package host_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/testing/sshd"
)

// Per-operation costs, to size how many round trips a plan can afford.

func benchFile(b *testing.B, h host.Host) string {
	p := filepath.Join(b.TempDir(), "f")
	if err := h.WriteFile(context.Background(), p, make([]byte, 4096), 0o644, host.Root); err != nil {
		b.Fatal(err)
	}
	return p
}

func benchSSH(b *testing.B) host.Host {
	b.Setenv("SSH_AUTH_SOCK", "")
	s := sshd.Start(b, sshd.Options{})
	return dialSSH(b, sshConfig(s))
}

func BenchmarkLstatLocal(b *testing.B) {
	h := host.NewLocal("local")
	p := benchFile(b, h)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Lstat(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLstatSSH(b *testing.B) {
	h := benchSSH(b)
	p := benchFile(b, h)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Lstat(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFileSSH(b *testing.B) {
	h := benchSSH(b)
	p := benchFile(b, h)
	ctx := context.Background()
	b.SetBytes(4096)
	for b.Loop() {
		if _, err := h.ReadFile(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteFileSSH(b *testing.B) {
	h := benchSSH(b)
	p := benchFile(b, h)
	ctx := context.Background()
	data := make([]byte, 4096)
	for b.Loop() {
		if err := h.WriteFile(ctx, p, data, 0o644, host.Root); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRunSSH(b *testing.B) {
	h := benchSSH(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Run(ctx, host.Cmd{Argv: []string{"true"}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRunLocal(b *testing.B) {
	h := host.NewLocal("local")
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Run(ctx, host.Cmd{Argv: []string{"true"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBinarySSH is how a plan learns that the installed borgkit binary
// (11 MB) is current, over SSH: by reading it back, as every file was
// before, or by its digest computed on the host. The link here is loopback;
// on the Pi's uplink only the read grows with the file.
func BenchmarkBinarySSH(b *testing.B) {
	h := benchSSH(b)
	ctx := context.Background()
	p := filepath.Join(b.TempDir(), "borgkit")
	const size = 11 << 20
	if err := h.WriteFile(ctx, p, make([]byte, size), 0o755, host.Root); err != nil {
		b.Fatal(err)
	}
	b.Run("read", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := h.ReadFile(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("digest", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := h.Digest(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
