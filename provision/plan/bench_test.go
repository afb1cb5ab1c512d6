package plan_test

import (
	"context"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/testing/sshd"
)

// benchRecheck measures the no-change run of a converged 50-step plan: what
// every nightly-safe re-provision costs.
func benchRecheck(b *testing.B, h host.Host, prefix string) {
	ctx := context.Background()
	s := sampleUnder(prefix, 50)
	if _, err := plan.Run(ctx, h, s, plan.Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		r, err := plan.Run(ctx, h, s, plan.Options{DryRun: true})
		if err != nil || r.Pending() != 0 || r.Unchanged != 50 {
			b.Fatalf("%v %+v", err, r)
		}
	}
}

func BenchmarkRecheck50Local(b *testing.B) {
	benchRecheck(b, host.NewLocal("local"), b.TempDir())
}

func BenchmarkRecheck50SSH(b *testing.B) {
	srv := sshd.Start(b, sshd.Options{})
	h, err := host.DialSSH(context.Background(), host.SSHConfig{
		Name: "bench", Addr: srv.Addr, User: "root",
		IdentityFiles: []string{srv.ClientKeyPath}, KnownHostsFiles: []string{srv.KnownHostsPath},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	benchRecheck(b, h, b.TempDir())
}
