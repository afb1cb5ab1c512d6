package link

import (
	"fmt"
	"sync"
	"time"
)

// Shape is what the link does to the traffic of each direction.
type Shape struct {
	// Delay is the one-way delay; the round trip is twice it.
	Delay time.Duration
	// Rate is each direction's capacity in bits per second; 0 is unlimited.
	Rate int64
	// Queue is how many bytes may wait for the line in one direction:
	// beyond it a frame is dropped (Join), as a router's full buffer does,
	// or the sender is held back (Proxy). 0 is what the line sends in
	// 100 ms, at least 64 KiB.
	Queue int
}

// RTT is the round trip the shape adds, without the time on the line.
func (s Shape) RTT() time.Duration { return 2 * s.Delay }

func (s Shape) String() string {
	rate := "unlimited"
	if s.Rate > 0 {
		rate = fmt.Sprintf("%g Mbit/s", float64(s.Rate)/1e6)
	}
	return fmt.Sprintf("%v round trip, %s each way", s.RTT(), rate)
}

func (s Shape) queue() int {
	if s.Queue > 0 {
		return s.Queue
	}
	return max(64<<10, int(s.Rate/8/10))
}

// airtime is how long n bytes occupy the line.
func (s Shape) airtime(n int) time.Duration {
	if s.Rate <= 0 {
		return 0
	}
	return time.Duration(int64(n) * 8 * int64(time.Second) / s.Rate)
}

// Line is one direction of the link: frames wait for the line to be free
// (the rate), then travel for Delay, then are delivered in order. The line
// is a virtual clock, not a sleeping sender, so a late wake-up delivers a
// burst but never lowers the rate below Shape.Rate.
type Line struct {
	shape   Shape
	deliver func([]byte) error

	mu     sync.Mutex
	cond   *sync.Cond
	q      []frame
	queued int       // bytes in q
	free   time.Time // when the line has sent everything in q
	closed bool
	stats  LineStats
}

type frame struct {
	b   []byte
	due time.Time
}

// LineStats count what one direction carried.
type LineStats struct {
	Frames, Bytes int64
	Dropped       int64 // frames the full queue refused
}

func newLine(s Shape, deliver func([]byte) error) *Line {
	l := &Line{shape: s, deliver: deliver}
	l.cond = sync.NewCond(&l.mu)
	go l.run()
	return l
}

// put queues b (which the line keeps). With wait false a full queue drops
// it and put returns false; with wait true put waits for room.
func (l *Line) put(b []byte, wait bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for wait && !l.closed && l.queued > 0 && l.queued+len(b) > l.shape.queue() {
		l.cond.Wait()
	}
	if l.closed {
		return false
	}
	if !wait && l.queued+len(b) > l.shape.queue() {
		l.stats.Dropped++
		return false
	}
	now := time.Now()
	start := l.free
	if start.Before(now) {
		start = now
	}
	l.free = start.Add(l.shape.airtime(len(b)))
	l.q = append(l.q, frame{b: b, due: l.free.Add(l.shape.Delay)})
	l.queued += len(b)
	l.stats.Frames++
	l.stats.Bytes += int64(len(b))
	l.cond.Broadcast()
	return true
}

// run delivers frames when they are due, until close.
func (l *Line) run() {
	for {
		l.mu.Lock()
		for len(l.q) == 0 && !l.closed {
			l.cond.Wait()
		}
		if l.closed {
			l.mu.Unlock()
			return
		}
		f := l.q[0]
		l.mu.Unlock()
		if d := time.Until(f.due); d > 0 {
			time.Sleep(d)
		}
		err := l.deliver(f.b)
		l.mu.Lock()
		l.q = l.q[1:]
		l.queued -= len(f.b)
		if err != nil {
			l.closed = true
		}
		l.cond.Broadcast()
		l.mu.Unlock()
	}
}

func (l *Line) close() {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// Stats returns the direction's counters so far.
func (l *Line) Stats() LineStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// turns counts how often the payload changed direction on a link.
type turns struct {
	mu   sync.Mutex
	last int // direction of the last payload, 0 before any
	n    int64
}

func (t *turns) payload(dir int) {
	t.mu.Lock()
	if t.last != dir {
		t.last = dir
		t.n++
	}
	t.mu.Unlock()
}

func (t *turns) get() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// reset starts counting afresh.
func (t *turns) reset() {
	t.mu.Lock()
	t.last, t.n = 0, 0
	t.mu.Unlock()
}

// RoundTrips turns a turn count into sequential round trips: a request
// and its answer are two turns.
func RoundTrips(turns int64) int64 { return (turns + 1) / 2 }
