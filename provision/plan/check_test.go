package plan_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/testing/link"
	"github.com/borgkit/borgkit/testing/sshd"
)

// meeting is a step whose check returns only once all n of its kind are
// in their checks at the same time, or fails after a while: checks one
// after another never meet.
type meeting struct {
	i  int
	wg *sync.WaitGroup
}

func (m *meeting) ID() string { return fmt.Sprintf("meeting.%d", m.i) }
func (m *meeting) Check(ctx context.Context, _ host.Host) (plan.Check, error) {
	m.wg.Done()
	met := make(chan struct{})
	go func() { m.wg.Wait(); close(met) }()
	select {
	case <-met:
		return plan.Satisfied(), nil
	case <-time.After(10 * time.Second):
		return plan.Check{}, fmt.Errorf("checked alone: the checks ran one after another")
	}
}
func (m *meeting) Apply(context.Context, host.Host) error { return nil }

// Independent checks run at once: over SSH their round trips overlap.
func TestChecksRunAtOnce(t *testing.T) {
	h, _ := rootedHost(t)
	wg := &sync.WaitGroup{}
	var s []plan.Step
	for i := range 6 {
		wg.Add(1)
		s = append(s, &meeting{i: i, wg: wg})
	}
	r, err := plan.Run(context.Background(), h, s, plan.Options{DryRun: true})
	if err != nil || r.Unchanged != 6 {
		t.Fatalf("%v %+v", err, r)
	}
}

// disk stands for a mount step whose check finds, slowly, that it mounts
// in this run; repo for the step that reads that finding in its check.
type disk struct{ mounts atomic.Bool }

func (d *disk) ID() string { return "disk" }
func (d *disk) Check(context.Context, host.Host) (plan.Check, error) {
	time.Sleep(100 * time.Millisecond)
	d.mounts.Store(true)
	return plan.Creates("mount"), nil
}
func (d *disk) Apply(context.Context, host.Host) error { return nil }

type repo struct{ d *disk }

func (r *repo) ID() string              { return "repo" }
func (r *repo) CheckAfter() []plan.Step { return []plan.Step{r.d} }
func (r *repo) Check(context.Context, host.Host) (plan.Check, error) {
	if !r.d.mounts.Load() {
		return plan.Conflicts("the disk is not mounted"), nil
	}
	return plan.Creates("init once mounted"), nil
}
func (r *repo) Apply(context.Context, host.Host) error { return nil }

// A follower's check starts after the checks it names have ended.
func TestFollowerChecksAfter(t *testing.T) {
	h, _ := rootedHost(t)
	d := &disk{}
	r, err := plan.Run(context.Background(), h, []plan.Step{d, &repo{d}}, plan.Options{DryRun: true})
	if err != nil || r.Conflict != 0 || r.Create != 2 {
		t.Fatalf("the repo's check did not see the disk's: %v %+v", err, r)
	}
}

// withMirror adds to a plan what an offsite host's has besides files: a
// mirror of two borg repos on a mounted filesystem, whose check runs a
// program and lists a directory.
func withMirror(tb testing.TB, prefix string, s []plan.Step) []plan.Step {
	root := filepath.Join(prefix, "mirror")
	for _, name := range []string{"server", "nas"} {
		if err := os.MkdirAll(filepath.Join(root, name), 0o700); err != nil {
			tb.Fatal(err)
		}
		config := fmt.Sprintf("[repository]\nversion = 1\nid = %064d\n", len(name))
		if err := os.WriteFile(filepath.Join(root, name, "config"), []byte(config), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return append(s, &steps.MirrorContents{Root: root, Mountpoint: "/", Names: []string{"server", "nas"},
		Repos: func(context.Context, host.Host) (map[string]string, error) {
			return map[string]string{"server": fmt.Sprintf("%064d", 6), "nas": fmt.Sprintf("%064d", 3)}, nil
		}},
		// The disk's check (mountpoint -q), which the survey runs too.
		&steps.MountedDir{Mountpoint: "/", Dir: steps.Dir{Path: root, Mode: 0o700, Owner: host.Root}})
}

// A no-change plan over SSH costs a fixed handful of round trips, however
// many steps it has: the login, then one survey and the checks at once.
// Counted, not timed, on a link with latency.
func TestNoChangePlanRoundTrips(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	srv := sshd.Start(t, sshd.Options{})
	p, err := link.NewProxy(srv.Addr, link.Shape{Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	prefix := t.TempDir()
	s := withMirror(t, prefix, sampleUnder(prefix, 50))
	if _, err := plan.Run(context.Background(), host.NewLocal("local"), s, plan.Options{}); err != nil {
		t.Fatal(err)
	}
	h, err := host.DialSSH(context.Background(), host.SSHConfig{Addr: p.Addr, User: "root",
		IdentityFiles: []string{srv.ClientKeyPath}, AcceptHostKey: srv.HostKeyFingerprint})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	r, err := plan.Run(context.Background(), h, s, plan.Options{DryRun: true})
	if err != nil || r.Unchanged != 52 {
		t.Fatalf("%v %+v", err, r)
	}
	// About 7 for the login, 2 for the survey (its session opened as the
	// login ends), then the mirror's mount test. Before sessions and SFTP
	// were started with the login, and the mirror's listing and configs
	// came with the survey, it was 23; 50 steps one SFTP exchange after
	// another were about 300. The count is of turns of the traffic, which
	// programs running at once can add one or two to: 12 to 13 here.
	if n := link.RoundTrips(p.Turns()); n > 14 {
		t.Errorf("a no-change plan of 52 steps took %d round trips, want at most 14", n)
	} else {
		t.Logf("%d round trips", n)
	}
}
