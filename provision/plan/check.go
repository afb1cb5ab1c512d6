package plan

import (
	"context"
	"path"
	"sync"

	"github.com/borgkit/borgkit/provision/host"
)

// Reader is a step that names the paths its Check looks at. The engine
// gathers them from every step and asks the host for all of them at once
// (host.Survey), so that over SSH a plan's checks cost one exchange rather
// than a dozen SFTP round trips a step. A step that does not say, or reads
// more than it said, still works: what was not surveyed goes to the host.
type Reader interface {
	Reads() []host.Want
}

// Follower is a step whose Check uses what other steps' checks found (a
// repo waits for the check that says its disk is mounted in this run).
// Checks otherwise run at once; a follower's starts after those it names.
type Follower interface {
	CheckAfter() []Step
}

// checkWorkers bounds the checks running at once: over SSH each may hold a
// session (the host bounds those too); locally more would only queue.
const checkWorkers = 8

type checked struct {
	c   Check
	err error
}

// checkAll checks every step against one survey of the paths they read,
// at once where they are independent; results are in step order. The
// view of the host the checks had comes with them: it also holds the
// directories of the steps that may be applied beside others (Beside).
func checkAll(ctx context.Context, h host.Host, steps []Step) ([]checked, host.Host) {
	wants := Wants(steps)
	// A survey that fails (a host without base64) only costs speed: every
	// check then asks the host itself.
	view, err := host.Survey(ctx, h, wants)
	if err != nil {
		view = h
	}
	out := make([]checked, len(steps))
	done := make([]chan struct{}, len(steps))
	for i := range done {
		done[i] = make(chan struct{})
	}
	slots := make(chan struct{}, checkWorkers)
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			for _, j := range earlier(steps, i, s) {
				<-done[j]
			}
			slots <- struct{}{}
			defer func() { <-slots }()
			c, err := s.Check(ctx, view)
			out[i] = checked{c, err}
		}()
	}
	wg.Wait()
	return out, view
}

// Wants are what the checks of steps read (Reader), and the directories
// of the steps that may be applied beside others (Beside): what Run
// surveys before checking, and what a caller may prefetch
// (host.Prefetch).
func Wants(steps []Step) []host.Want {
	var wants []host.Want
	for _, s := range steps {
		if r, ok := s.(Reader); ok {
			wants = append(wants, r.Reads()...)
		}
		if b, ok := s.(Beside); ok && b.Place() != "" {
			wants = append(wants, host.Want{Path: path.Dir(b.Place())})
		}
	}
	return wants
}

// earlier are the indexes of the steps before i that s's check follows.
// A step named but not earlier in the plan is not waited for: its check
// could not have been meant to come first.
func earlier(steps []Step, i int, s Step) []int {
	f, ok := s.(Follower)
	if !ok {
		return nil
	}
	var idx []int
	for _, d := range f.CheckAfter() {
		for j := range i {
			if steps[j] == d {
				idx = append(idx, j)
			}
		}
	}
	return idx
}
