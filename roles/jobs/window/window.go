package window

import "context"

// Limits bound the tasks running at once.
type Limits struct {
	// Total bounds them all; 0 is no bound but PerDisk's.
	Total int
	// PerDisk bounds those on one disk; 0 is 1.
	PerDisk int
}

// Sequential is one task at a time.
var Sequential = Limits{Total: 1, PerDisk: 1}

// Run calls task(ctx, i) for every i of disks, disks[i] naming the disk
// task i works on, with at most l.Total running at once and at most
// l.PerDisk on one disk. Tasks start in index order as room frees: the
// first waiting one whose disk has room, so a busy disk never holds back
// another's. A task's error stops no other task; errs[i] is task i's, or
// ctx's error for a task never started because ctx ended first. Run
// returns once every started task has returned.
//
// With room for one task only, the tasks run one after another in the
// caller's goroutine, exactly as a plain loop would.
func Run(ctx context.Context, disks []string, l Limits, task func(ctx context.Context, i int) error) []error {
	errs := make([]error, len(disks))
	perDisk := max(l.PerDisk, 1)
	if l.OneAtATime(disks) {
		for i := range disks {
			if err := ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			errs[i] = task(ctx, i)
		}
		return errs
	}
	type result struct {
		i   int
		err error
	}
	var (
		done    = make(chan result)
		busy    = map[string]int{}
		started = make([]bool, len(disks))
		waiting = len(disks)
		running = 0
	)
	for waiting > 0 || running > 0 {
		if ctx.Err() == nil {
			for i, d := range disks {
				if started[i] || (l.Total > 0 && running >= l.Total) || busy[d] >= perDisk {
					continue
				}
				started[i] = true
				waiting--
				running++
				busy[d]++
				go func() { done <- result{i, task(ctx, i)} }()
			}
		}
		if running == 0 {
			break // ctx ended with tasks still waiting
		}
		r := <-done
		running--
		busy[disks[r.i]]--
		errs[r.i] = r.err
	}
	for i := range disks {
		if !started[i] {
			errs[i] = ctx.Err()
		}
	}
	return errs
}

// OneAtATime reports whether l leaves room for one task at a time only,
// among tasks on disks.
func (l Limits) OneAtATime(disks []string) bool {
	return len(disks) <= 1 || l.Total == 1 || (l.Total == 0 && max(l.PerDisk, 1) == 1 && oneDisk(disks))
}

func oneDisk(disks []string) bool {
	for _, d := range disks {
		if d != disks[0] {
			return false
		}
	}
	return true
}
