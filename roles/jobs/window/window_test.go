package window

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// tracker records what runs at once.
type tracker struct {
	mu              sync.Mutex
	running         map[string]int // by disk
	total, maxTotal int
	maxDisk         map[string]int
	order           []int // start order
}

func newTracker() *tracker {
	return &tracker{running: map[string]int{}, maxDisk: map[string]int{}}
}

func (tr *tracker) task(disks []string, hold time.Duration, fail map[int]bool) func(context.Context, int) error {
	return func(ctx context.Context, i int) error {
		d := disks[i]
		tr.mu.Lock()
		tr.order = append(tr.order, i)
		tr.total++
		tr.running[d]++
		tr.maxTotal = max(tr.maxTotal, tr.total)
		tr.maxDisk[d] = max(tr.maxDisk[d], tr.running[d])
		tr.mu.Unlock()
		select {
		case <-time.After(hold):
		case <-ctx.Done():
		}
		tr.mu.Lock()
		tr.total--
		tr.running[d]--
		tr.mu.Unlock()
		if fail[i] {
			return fmt.Errorf("task %d failed", i)
		}
		return ctx.Err()
	}
}

func TestRunBounds(t *testing.T) {
	five := []string{"usb", "usb", "usb", "usb", "usb"}
	mixed := []string{"usb", "usb", "nas", "usb", "nas", "ssd"}
	for _, tc := range []struct {
		name          string
		disks         []string
		limits        Limits
		total         int            // the most at once the run must reach, and not pass
		perDisk       map[string]int // the most at once on each disk
		sequentialRun bool
	}{
		{"one at a time", five, Sequential, 1, map[string]int{"usb": 1}, true},
		{"default on one disk", five, Limits{}, 1, map[string]int{"usb": 1}, true},
		{"default: one per disk, every disk", mixed, Limits{}, 3, map[string]int{"usb": 1, "nas": 1, "ssd": 1}, false},
		{"parallel 2 on one disk", five, Limits{Total: 2, PerDisk: 2}, 2, map[string]int{"usb": 2}, false},
		{"parallel 2, one per disk", mixed, Limits{Total: 2, PerDisk: 1}, 2, map[string]int{"usb": 1, "nas": 1, "ssd": 1}, false},
		{"two per disk, no total", mixed, Limits{PerDisk: 2}, 5, map[string]int{"usb": 2, "nas": 2, "ssd": 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker()
			errs := Run(context.Background(), tc.disks, tc.limits, tr.task(tc.disks, 30*time.Millisecond, nil))
			for i, err := range errs {
				if err != nil {
					t.Errorf("task %d: %v", i, err)
				}
			}
			if len(tr.order) != len(tc.disks) {
				t.Fatalf("%d tasks ran, want %d", len(tr.order), len(tc.disks))
			}
			if tr.maxTotal != tc.total {
				t.Errorf("at most %d at once, want %d", tr.maxTotal, tc.total)
			}
			for d, n := range tc.perDisk {
				if tr.maxDisk[d] != n {
					t.Errorf("disk %s: at most %d at once, want %d", d, tr.maxDisk[d], n)
				}
			}
			if tc.sequentialRun && !slices.IsSorted(tr.order) {
				t.Errorf("one at a time, yet started in order %v", tr.order)
			}
		})
	}
}

// TestRunOrderAndFailures: a failing task stops none of the others, and
// each result lands at its task's index whatever the order they end in.
func TestRunOrderAndFailures(t *testing.T) {
	disks := []string{"a", "b", "a", "b", "c"}
	fail := map[int]bool{0: true, 3: true}
	var mu sync.Mutex
	var ended []int
	task := func(ctx context.Context, i int) error {
		// The first tasks take longest: they end after later ones.
		time.Sleep(time.Duration(len(disks)-i) * 15 * time.Millisecond)
		mu.Lock()
		ended = append(ended, i)
		mu.Unlock()
		if fail[i] {
			return fmt.Errorf("task %d failed", i)
		}
		return nil
	}
	errs := Run(context.Background(), disks, Limits{Total: 3, PerDisk: 1}, task)
	if len(ended) != len(disks) {
		t.Fatalf("%d of %d tasks ran: one failure stopped others", len(ended), len(disks))
	}
	for i, err := range errs {
		want := ""
		if fail[i] {
			want = fmt.Sprintf("task %d failed", i)
		}
		if got := fmt.Sprint(err); (err == nil && want != "") || (err != nil && got != want) {
			t.Errorf("errs[%d] = %v, want %q", i, err, want)
		}
	}
	if slices.IsSorted(ended) {
		t.Errorf("tasks ended in index order %v: the test proves nothing about result order", ended)
	}
}

// TestRunCancel: once the context ends, the running tasks see it and no
// waiting task starts.
func TestRunCancel(t *testing.T) {
	disks := []string{"a", "a", "a", "b", "b"}
	ctx, cancel := context.WithCancel(context.Background())
	tr := newTracker()
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	errs := Run(ctx, disks, Limits{}, tr.task(disks, time.Minute, nil))
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Run took %s after the cancel", d)
	}
	if len(tr.order) != 2 {
		t.Errorf("started %v, want the first task of each disk", tr.order)
	}
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errs[%d] = %v, want the cancel", i, err)
		}
	}
}
