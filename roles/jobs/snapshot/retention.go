package snapshot

import (
	"fmt"
	"time"
)

// Policy is which snapshots are kept: the newest always, and the first
// snapshot of each of the Daily most recent days that have one, and of
// each of the Weekly most recent ISO weeks that have one, days and weeks
// as Loc reckons them (default the host's zone).
//
// The first of a day, not the last: a push that arrives later the same day
// (an intruder's, with a heartbeat of its own) then displaces nothing. And
// the days are days that have a snapshot, not the last N calendar days:
// when the pushes stop nothing is deleted, however long the silence, and
// more snapshots in a day never push older days out faster.
type Policy struct {
	Daily, Weekly int
	Loc           *time.Location
}

func (p Policy) String() string { return fmt.Sprintf("%d daily, %d weekly", p.Daily, p.Weekly) }

// Keep maps each kept snapshot's name to why it is kept. snaps are oldest
// first, as List returns them.
func (p Policy) Keep(snaps []Snapshot) map[string]string {
	keep := map[string]string{}
	if len(snaps) == 0 {
		return keep
	}
	loc := p.Loc
	if loc == nil {
		loc = time.Local
	}
	day := func(t time.Time) string { return t.In(loc).Format("2006-01-02") }
	week := func(t time.Time) string {
		y, w := t.In(loc).ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	}
	for _, r := range []struct {
		n      int
		period func(time.Time) string
		why    string
	}{{p.Weekly, week, "weekly"}, {p.Daily, day, "daily"}} {
		// The first snapshot of each period, newest period first.
		var firsts []Snapshot
		for i, s := range snaps {
			if i == 0 || r.period(s.Time) != r.period(snaps[i-1].Time) {
				firsts = append(firsts, s)
			}
		}
		for i := len(firsts) - 1; i >= 0 && len(firsts)-i <= r.n; i-- {
			keep[firsts[i].Name] = r.why
		}
	}
	keep[snaps[len(snaps)-1].Name] = "newest"
	return keep
}

// Prune removes the snapshots p does not keep and returns them.
func (s *Store) Prune(p Policy) ([]Snapshot, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	keep := p.Keep(all)
	var removed []Snapshot
	for _, sn := range all {
		if _, ok := keep[sn.Name]; ok {
			continue
		}
		if err := s.Remove(sn); err != nil {
			return removed, err
		}
		removed = append(removed, sn)
	}
	return removed, nil
}
