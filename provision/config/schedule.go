package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bits is a set of small integers: bit n is set when value n matches.
type Bits uint64

// Has reports whether n is in the set.
func (b Bits) Has(n int) bool { return n >= 0 && n < 64 && b&(1<<uint(n)) != 0 }

// Schedule is a parsed 5-field cron expression (vixie cron semantics).
type Schedule struct {
	Minutes  Bits // 0-59
	Hours    Bits // 0-23
	Days     Bits // day of month, 1-31
	Months   Bits // 1-12
	Weekdays Bits // 0-6, Sunday is 0 (cron's 7 is folded into 0)
	// DaysStar and WeekdaysStar record that the field began with "*". Cron
	// matches a day when both day fields match if either one is starred,
	// and when either matches if neither is: "0 0 1 * mon" runs on the 1st
	// and on every Monday.
	DaysStar, WeekdaysStar bool

	fields [5][]cronItem
}

// cronItem is one comma-separated element of a field: lo-hi/step, with
// star for "*" (lo-hi then being the whole field).
type cronItem struct {
	lo, hi, step int
	star         bool
	// isRange keeps "5-5" apart from "5"; loName and hiName keep month
	// and day names as written.
	isRange, loName, hiName bool
}

type fieldSpec struct {
	name     string
	min, max int
	names    []string // index = value - min offset handled by nameBase
	nameBase int
}

var cronFields = [5]fieldSpec{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}, nameBase: 1},
	{name: "day of week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}, nameBase: 0},
}

var cronShorthands = map[string]string{
	"@hourly":   "0 * * * *",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@weekly":   "0 0 * * 0",
	"@monthly":  "0 0 1 * *",
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
}

// ParseSchedule parses a 5-field cron expression (minute hour day-of-month
// month day-of-week: numbers, a-b ranges, */n and a-b/n steps, comma lists,
// jan-dec and sun-sat) or one of @hourly @daily @weekly @monthly @yearly
// @annually. Errors wrap ErrBadSchedule.
func ParseSchedule(s string) (Schedule, error) {
	spec := strings.TrimSpace(s)
	if strings.HasPrefix(spec, "@") {
		exp, ok := cronShorthands[strings.ToLower(spec)]
		if !ok {
			return Schedule{}, fmt.Errorf("%w %q: unknown shorthand (use @hourly, @daily, @weekly, @monthly or @yearly)", ErrBadSchedule, s)
		}
		spec = exp
	}
	parts := strings.Fields(spec)
	if len(parts) != 5 {
		return Schedule{}, fmt.Errorf("%w %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", ErrBadSchedule, s, len(parts))
	}
	var sc Schedule
	sets := [5]*Bits{&sc.Minutes, &sc.Hours, &sc.Days, &sc.Months, &sc.Weekdays}
	for i, part := range parts {
		items, bits, err := parseCronField(part, cronFields[i])
		if err != nil {
			return Schedule{}, fmt.Errorf("%w %q: %s", ErrBadSchedule, s, err)
		}
		sc.fields[i] = items
		*sets[i] = bits
	}
	if sc.Weekdays.Has(7) {
		sc.Weekdays = sc.Weekdays&^(1<<7) | 1
	}
	sc.DaysStar = strings.HasPrefix(parts[2], "*")
	sc.WeekdaysStar = strings.HasPrefix(parts[4], "*")
	if err := sc.checkReachable(); err != nil {
		return Schedule{}, fmt.Errorf("%w %q: %s", ErrBadSchedule, s, err)
	}
	return sc, nil
}

// checkReachable refuses day/month combinations that never occur, such as
// "0 0 31 2 *": cron would accept them and silently never run the job.
func (s Schedule) checkReachable() error {
	if !s.DaysStar && !s.WeekdaysStar {
		return nil // either day field may match alone, and every weekday comes round
	}
	longest := [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	for m := 1; m <= 12; m++ {
		if !s.Months.Has(m) {
			continue
		}
		for d := 1; d <= longest[m]; d++ {
			if s.Days.Has(d) {
				return nil
			}
		}
	}
	return fmt.Errorf("none of its months has any of its days of month, so it would never run")
}

func parseCronField(text string, f fieldSpec) ([]cronItem, Bits, error) {
	var items []cronItem
	var bits Bits
	for _, el := range strings.Split(text, ",") {
		it, err := parseCronItem(el, f)
		if err != nil {
			return nil, 0, err
		}
		for v := it.lo; v <= it.hi; v += it.step {
			bits |= 1 << uint(v)
		}
		items = append(items, it)
	}
	return items, bits, nil
}

func parseCronItem(el string, f fieldSpec) (cronItem, error) {
	if el == "" {
		return cronItem{}, fmt.Errorf("%s: empty list element", f.name)
	}
	it := cronItem{step: 1}
	rng, stepText, hasStep := strings.Cut(el, "/")
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || len(stepText) > 2 || n < 1 || n > f.max {
			return cronItem{}, fmt.Errorf("%s: step %q must be a number from 1 to %d", f.name, stepText, f.max)
		}
		it.step = n
	}
	if rng == "*" {
		it.star, it.lo, it.hi = true, f.min, f.max
		if f.max == 7 { // day of week: 7 is only an alias of 0
			it.hi = 6
		}
		return it, nil
	}
	loText, hiText, isRange := strings.Cut(rng, "-")
	lo, loName, err := cronValue(loText, f)
	if err != nil {
		return cronItem{}, err
	}
	it.lo, it.hi, it.loName, it.hiName = lo, lo, loName, loName
	if isRange {
		hi, hiName, err := cronValue(hiText, f)
		if err != nil {
			return cronItem{}, err
		}
		if hi < lo {
			return cronItem{}, fmt.Errorf("%s: range %q runs backwards", f.name, rng)
		}
		it.hi, it.hiName, it.isRange = hi, hiName, true
	} else if hasStep {
		return cronItem{}, fmt.Errorf("%s: a step needs * or a range before it (%q), e.g. */%d", f.name, el, it.step)
	}
	return it, nil
}

func cronValue(s string, f fieldSpec) (int, bool, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return i + f.nameBase, true, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || len(s) > 2 || s[0] == '+' || s[0] == '-' {
		if len(f.names) > 0 {
			return 0, false, fmt.Errorf("%s: %q is not a number or a name (%s-%s)", f.name, s, f.names[0], f.names[len(f.names)-1])
		}
		return 0, false, fmt.Errorf("%s: %q is not a number", f.name, s)
	}
	if n < f.min || n > f.max {
		return 0, false, fmt.Errorf("%s: %d is out of range %d-%d", f.name, n, f.min, f.max)
	}
	return n, false, nil
}

// CronSpec is the schedule as one normalised cron line prefix (shorthands
// expanded, names lowercased), for /etc/cron.d.
func (s Schedule) CronSpec() string {
	parts := make([]string, 5)
	for i, items := range s.fields {
		els := make([]string, len(items))
		for j, it := range items {
			els[j] = it.cronText(cronFields[i])
		}
		parts[i] = strings.Join(els, ",")
	}
	return strings.Join(parts, " ")
}

func (s Schedule) String() string { return s.CronSpec() }

func (it cronItem) cronText(f fieldSpec) string {
	val := func(v int, name bool) string {
		if name {
			return f.names[v-f.nameBase]
		}
		return strconv.Itoa(v)
	}
	var t string
	switch {
	case it.star:
		t = "*"
	case !it.isRange:
		t = val(it.lo, it.loName)
	default:
		t = val(it.lo, it.loName) + "-" + val(it.hi, it.hiName)
	}
	if it.step != 1 {
		t += "/" + strconv.Itoa(it.step)
	}
	return t
}

var systemdDays = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// OnCalendar converts the schedule to a systemd OnCalendar= expression with
// the same firing times, e.g. "0 9 * * 6" to "Sat *-*-* 09:00:00". It fails
// when both day fields are restricted: cron then fires when either matches,
// and OnCalendar= can only require both.
func (s Schedule) OnCalendar() (string, error) {
	if len(s.fields[0]) == 0 {
		return "", fmt.Errorf("%w: empty schedule", ErrBadSchedule)
	}
	if !s.DaysStar && !s.WeekdaysStar {
		return "", fmt.Errorf("%w %q: cron runs it when the day of month OR the weekday matches, which OnCalendar= cannot express; restrict only one of them, or use the cron scheduler", ErrBadSchedule, s.CronSpec())
	}
	var b strings.Builder
	if s.Weekdays != 0x7f {
		b.WriteString(weekdayList(s.Weekdays))
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "*-%s-%s %s:%s:00",
		calendarField(s.fields[3], cronFields[3]),
		calendarField(s.fields[2], cronFields[2]),
		calendarField(s.fields[1], cronFields[1]),
		calendarField(s.fields[0], cronFields[0]))
	return b.String(), nil
}

// weekdayList writes systemd weekdays in its Monday-first order, folding
// runs of three or more into a..b ranges.
func weekdayList(w Bits) string {
	order := [7]int{1, 2, 3, 4, 5, 6, 0}
	var out []string
	for i := 0; i < 7; {
		if !w.Has(order[i]) {
			i++
			continue
		}
		j := i
		for j+1 < 7 && w.Has(order[j+1]) {
			j++
		}
		switch {
		case j-i >= 2:
			out = append(out, systemdDays[order[i]]+".."+systemdDays[order[j]])
		default:
			for k := i; k <= j; k++ {
				out = append(out, systemdDays[order[k]])
			}
		}
		i = j + 1
	}
	return strings.Join(out, ",")
}

func calendarField(items []cronItem, f fieldSpec) string {
	els := make([]string, len(items))
	for i, it := range items {
		var t string
		switch {
		case it.star && it.step == 1:
			t = "*"
		case it.star:
			t = fmt.Sprintf("%02d/%d", f.min, it.step)
		case !it.isRange:
			t = fmt.Sprintf("%02d", it.lo)
		default:
			t = fmt.Sprintf("%02d..%02d", it.lo, it.hi)
			if it.step != 1 {
				t += "/" + strconv.Itoa(it.step)
			}
		}
		els[i] = t
	}
	return strings.Join(els, ",")
}

func (s Schedule) dayMatches(t time.Time) bool {
	dom := s.Days.Has(t.Day())
	dow := s.Weekdays.Has(int(t.Weekday()))
	if s.DaysStar || s.WeekdaysStar {
		return dom && dow
	}
	return dom || dow
}

// Next is the first time after after at which cron would start the job, in
// after's location; the zero Time if there is none within five years.
func (s Schedule) Next(after time.Time) time.Time {
	if s.Minutes == 0 || s.Hours == 0 || s.Months == 0 {
		return time.Time{}
	}
	loc := after.Location()
	t := time.Date(after.Year(), after.Month(), after.Day(), after.Hour(), after.Minute(), 0, 0, loc)
	t = forward(t, t.Add(time.Minute))
	limit := after.AddDate(5, 0, 0)
	for t.Before(limit) {
		y, mo, d := t.Date()
		h, mi := t.Hour(), t.Minute()
		switch {
		case !s.Months.Has(int(mo)):
			t = forward(t, time.Date(y, mo+1, 1, 0, 0, 0, 0, loc))
		case !s.dayMatches(t):
			t = forward(t, time.Date(y, mo, d+1, 0, 0, 0, 0, loc))
		case !s.Hours.Has(h):
			t = forward(t, time.Date(y, mo, d, h+1, 0, 0, 0, loc))
		case !s.Minutes.Has(mi):
			t = forward(t, time.Date(y, mo, d, h, mi+1, 0, 0, loc))
		default:
			return t
		}
	}
	return time.Time{}
}

// forward guards against time.Date stepping back across a DST change.
func forward(cur, next time.Time) time.Time {
	if !next.After(cur) {
		return cur.Add(time.Minute)
	}
	return next
}
