package plan_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/testing/link"
	"github.com/borgkit/borgkit/testing/sshd"
)

// converge applies a 50-step plan under prefix on this machine, which the
// test sshd serves too: the benchmarks time the runs that change nothing.
func converge(b *testing.B, s []plan.Step) []plan.Step {
	if _, err := plan.Run(context.Background(), host.NewLocal("local"), s, plan.Options{}); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchRecheck measures the no-change run of a converged 50-step plan: what
// every nightly-safe re-provision costs.
func benchRecheck(b *testing.B, h host.Host, prefix string) {
	ctx := context.Background()
	s := converge(b, sampleUnder(prefix, 50))
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

func dialBench(b *testing.B, srv *sshd.Server, addr string) host.Host {
	h, err := host.DialSSH(context.Background(), host.SSHConfig{
		Name: "bench", Addr: addr, User: "root",
		IdentityFiles: []string{srv.ClientKeyPath}, AcceptHostKey: srv.HostKeyFingerprint,
		Timeout: 30 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h
}

func BenchmarkRecheck50SSH(b *testing.B) {
	b.Setenv("SSH_AUTH_SOCK", "")
	srv := sshd.Start(b, sshd.Options{})
	benchRecheck(b, dialBench(b, srv, srv.Addr), b.TempDir())
}

// BenchmarkRecheck50SSHLink is the same no-change plan, and an offsite
// host's mirror check (a program and a directory listing), over a link with
// latency (testing/link's proxy, 20 ms round trip), counting the plan's
// sequential round trips, login included: the figure that grows with the
// distance to the offsite host, so a change that adds some shows here.
// Before the survey and the checks at once it was about 300; before the
// sessions and SFTP were started with the login and the mirror's listing
// came with the survey, 23; a login is about 7 of them. With the disk's
// mountpoint -q in the plan: 12, and 10.3 once the survey ran it too
// (host.Want.Run).
func BenchmarkRecheck50SSHLink(b *testing.B) {
	l := startLink(b)
	prefix := b.TempDir()
	s := converge(b, withMirror(b, prefix, sampleUnder(prefix, 50)))
	l.loop(b, func(ctx context.Context, h host.Host) error {
		r, err := plan.Run(ctx, h, s, plan.Options{DryRun: true})
		if err == nil && (r.Pending() != 0 || r.Unchanged != 52) {
			err = fmt.Errorf("%+v", r)
		}
		return err
	})
}

// BenchmarkApply50SSHLink is a first run of the same 50-step plan over
// the delayed link: every step applied, then checked again, counting the
// round trips, login included. The files of a directory are written
// beside each other (plan.Beside), so they overlap their round trips
// instead of adding them up.
func BenchmarkApply50SSHLink(b *testing.B) {
	l := startLink(b)
	l.loop(b, func(ctx context.Context, h host.Host) error {
		r, err := plan.Run(ctx, h, sampleUnder(b.TempDir(), 50), plan.Options{})
		if err == nil && r.Create != 50 {
			err = fmt.Errorf("%+v", r)
		}
		return err
	})
}

// linkBench is the test sshd behind testing/link's proxy, 20 ms round
// trip.
type linkBench struct {
	srv   *sshd.Server
	proxy *link.Proxy
}

func startLink(b *testing.B) *linkBench {
	b.Setenv("SSH_AUTH_SOCK", "")
	srv := sshd.Start(b, sshd.Options{})
	p, err := link.NewProxy(srv.Addr, link.Shape{Delay: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return &linkBench{srv: srv, proxy: p}
}

// loop runs run on a new connection each iteration and reports the link's
// round trips per run.
func (l *linkBench) loop(b *testing.B, run func(context.Context, host.Host) error) {
	ctx := context.Background()
	b.ResetTimer()
	l.proxy.ResetTurns()
	n := 0
	for b.Loop() {
		h := dialBench(b, l.srv, l.proxy.Addr)
		if err := run(ctx, h); err != nil {
			b.Fatal(err)
		}
		h.Close()
		n++
	}
	b.ReportMetric(float64(link.RoundTrips(l.proxy.Turns()))/float64(n), "round-trips/op")
}
