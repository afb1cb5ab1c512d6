package host

import (
	"context"
	"io/fs"
	"path"
	"sync"
)

// Prefetch starts a survey of wants on h in the background and returns h
// with it: the first Survey of the returned host takes what it found for
// the wants it covers and surveys only the rest. A caller that knows most
// of a plan's wants before the plan is final (the plan depends on the
// probe's answer, the wants hardly) so runs the survey beside the probe:
// over a slow link one round trip instead of two. Once anything is
// changed through it, or after that first Survey, nothing of it is used
// again. A host where a survey gains nothing is returned as it is.
func Prefetch(ctx context.Context, h Host, wants []Want) Host {
	if len(wants) == 0 || !surveys(h) {
		return h
	}
	p := &prefetched{done: make(chan struct{}), asked: map[string]Want{}}
	p.changing = changing{Host: h, changed: p.changed}
	for _, w := range wants {
		k := wantKey(w)
		a := p.asked[k]
		a.Content, a.List = a.Content || w.Content, a.List || w.List
		p.asked[k] = a
	}
	go func() {
		defer close(p.done)
		p.view, p.err = Survey(ctx, h, wants)
	}()
	return p
}

// wantKey is what a Want asks about: a path or a program.
func wantKey(w Want) string {
	if len(w.Run) > 0 {
		return runKey(w.Run)
	}
	return path.Clean(w.Path)
}

type prefetched struct {
	changing
	done  chan struct{}
	asked map[string]Want // by wantKey, Content and List merged
	view  Host
	err   error

	mu   sync.Mutex
	used bool // taken by a Survey, or the host changed
}

func (p *prefetched) Unwrap() Host { return p.Host }

// take returns the prefetched view once, if the host is unchanged.
func (p *prefetched) take() *surveyView {
	p.mu.Lock()
	used := p.used
	p.used = true
	p.mu.Unlock()
	if used {
		return nil
	}
	<-p.done
	v, _ := p.view.(*surveyView)
	if p.err != nil {
		return nil
	}
	return v
}

// survey is Survey of a prefetching host: what the prefetch found, and
// a survey of the wants it did not cover.
func (p *prefetched) survey(ctx context.Context, wants []Want) (Host, error) {
	v := p.take()
	if v == nil {
		return Survey(ctx, p.Host, wants)
	}
	more, err := Survey(ctx, p.Host, p.rest(wants))
	if err != nil {
		return p.Host, err
	}
	if m, ok := more.(*surveyView); ok {
		for k, s := range m.found {
			v.found[k] = s
		}
		for k, r := range m.ran {
			v.ran[k] = r
		}
	}
	return v, nil
}

// rest are the wants the prefetch did not cover.
func (p *prefetched) rest(wants []Want) []Want {
	var out []Want
	for _, w := range wants {
		a, ok := p.asked[wantKey(w)]
		if !ok || w.Content && !a.Content || w.List && !a.List {
			out = append(out, w)
		}
	}
	return out
}

// changed makes the prefetch unusable: what it found may be stale.
func (p *prefetched) changed() {
	p.mu.Lock()
	p.used = true
	p.mu.Unlock()
}

// Run may change the host: a program run through the prefetching host
// (not through a view of it) ends the prefetch.
func (p *prefetched) Run(ctx context.Context, c Cmd) (Result, error) {
	p.changed()
	return p.Host.Run(ctx, c)
}

// changing is a Host that calls changed before each file operation that
// changes the host (a view of it whose answers are then stale).
type changing struct {
	Host
	changed func()
}

func (c changing) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode, owner Owner) error {
	c.changed()
	return c.Host.WriteFile(ctx, path, data, mode, owner)
}

func (c changing) MkdirAll(ctx context.Context, path string, mode fs.FileMode, owner Owner) error {
	c.changed()
	return c.Host.MkdirAll(ctx, path, mode, owner)
}

func (c changing) Chmod(ctx context.Context, path string, mode fs.FileMode) error {
	c.changed()
	return c.Host.Chmod(ctx, path, mode)
}

func (c changing) Chown(ctx context.Context, path string, owner Owner) error {
	c.changed()
	return c.Host.Chown(ctx, path, owner)
}

func (c changing) Remove(ctx context.Context, path string) error {
	c.changed()
	return c.Host.Remove(ctx, path)
}
