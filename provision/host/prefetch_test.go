package host_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/testing/sshd"
)

// runLog counts the programs a Logged host ran.
type runLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *runLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *runLog) surveys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), "] sh -c ")
}

// A prefetched survey answers the first Survey for what it covered, which
// then surveys only the rest; a change through the host, or a second
// Survey, is never answered from it.
func TestPrefetch(t *testing.T) {
	s := sshd.Start(t, sshd.Options{})
	ssh := dialSSH(t, sshConfig(s))
	ctx := context.Background()
	read := func(t *testing.T, h host.Host, p, want string) {
		t.Helper()
		if got, err := h.ReadFile(ctx, p); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	for _, tc := range []struct {
		name     string
		then     string // "a" or "ab": the wants of the Survey after
		write    bool   // WriteFile a through the prefetching host first
		twice    bool   // Survey it twice, reading from the second
		surveys  int
		contentA string
	}{
		{name: "covered", then: "a", surveys: 1, contentA: "old"},
		{name: "and the rest", then: "ab", surveys: 2, contentA: "old"},
		{name: "changed", then: "a", write: true, surveys: 2, contentA: "new"},
		{name: "second survey", then: "a", twice: true, surveys: 2, contentA: "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			for _, f := range []string{a, b} {
				if err := os.WriteFile(f, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantA := host.Want{Path: a, Content: true}
			then := []host.Want{wantA}
			if tc.then == "ab" {
				then = append(then, host.Want{Path: b, Content: true})
			}
			log := &runLog{}
			h := host.Logged(ssh, log)
			p := host.Prefetch(ctx, h, []host.Want{wantA})
			if tc.write {
				if err := p.WriteFile(ctx, a, []byte("new"), 0o644, host.Owner{UID: -1, GID: -1}); err != nil {
					t.Fatal(err)
				}
			}
			v, err := host.Survey(ctx, p, then)
			if err == nil && tc.twice {
				v, err = host.Survey(ctx, p, then)
			}
			if err != nil {
				t.Fatal(err)
			}
			read(t, v, a, tc.contentA)
			read(t, v, b, "old")
			if got := log.surveys(); got != tc.surveys {
				t.Errorf("%d survey programs ran, want %d:\n%s", got, tc.surveys, log.b.String())
			}
		})
	}
}
