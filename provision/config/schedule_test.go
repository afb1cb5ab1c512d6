package config

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseScheduleValid(t *testing.T) {
	tests := []struct{ in, spec string }{
		{"0 9 * * 6", "0 9 * * 6"},
		{"  0  9 * *\tSAT ", "0 9 * * sat"},
		{"@daily", "0 0 * * *"},
		{"@WEEKLY", "0 0 * * 0"},
		{"@annually", "0 0 1 1 *"},
		{"*/15 8-17 * * Mon-Fri", "*/15 8-17 * * mon-fri"},
		{"0 0 1 jan-mar/2 *", "0 0 1 jan-mar/2 *"},
		{"05 07 * * *", "5 7 * * *"},
		{"0 0 * * 5-7", "0 0 * * 5-7"},
		{"0 0 * * sun-7", "0 0 * * sun-7"},
		{"1,2,3-5 */2 1-31/10 * *", "1,2,3-5 */2 1-31/10 * *"},
	}
	for _, tt := range tests {
		s, err := ParseSchedule(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got := s.CronSpec(); got != tt.spec {
			t.Errorf("%q: CronSpec %q, want %q", tt.in, got, tt.spec)
		}
		// The normalised text must mean the same.
		again, err := ParseSchedule(s.CronSpec())
		if err != nil || again.Minutes != s.Minutes || again.Hours != s.Hours || again.Days != s.Days ||
			again.Months != s.Months || again.Weekdays != s.Weekdays {
			t.Errorf("%q: CronSpec does not round-trip: %v", tt.in, err)
		}
	}
}

func TestParseScheduleSets(t *testing.T) {
	s, err := ParseSchedule("*/20 1-3,22 */10 jan,dec 5-7")
	if err != nil {
		t.Fatal(err)
	}
	if s.Minutes != 1|1<<20|1<<40 || s.Hours != 1<<1|1<<2|1<<3|1<<22 || s.Days != 1<<1|1<<11|1<<21|1<<31 ||
		s.Months != 1<<1|1<<12 || s.Weekdays != 1|1<<5|1<<6 || !s.DaysStar || s.WeekdaysStar {
		t.Errorf("sets %+v", s)
	}
	if !s.Weekdays.Has(0) || s.Weekdays.Has(7) || s.Weekdays.Has(-1) || s.Weekdays.Has(99) {
		t.Error("Has")
	}
}

func TestParseScheduleInvalid(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"", "want 5 fields"},
		{"* * * *", "got 4"},
		{"* * * * * *", "got 6"},
		{"60 * * * *", "minute: 60 is out of range 0-59"},
		{"* 24 * * *", "hour: 24 is out of range 0-23"},
		{"* * 0 * *", "day of month: 0 is out of range 1-31"},
		{"* * 32 * *", "day of month: 32"},
		{"* * * 13 *", "month: 13"},
		{"* * * * 8", "day of week: 8 is out of range 0-7"},
		{"*/0 * * * *", "step \"0\""},
		{"*/61 * * * *", "step \"61\""},
		{"5-1 * * * *", "runs backwards"},
		{"1,,2 * * * *", "empty list element"},
		{"a * * * *", `"a" is not a number`},
		{"* * * foo *", `"foo" is not a number or a name (jan-dec)`},
		{"* * * * mon-sun", "runs backwards"},
		{"@reboot", "unknown shorthand"},
		{"@every 5m", "unknown shorthand"},
		{"5/10 * * * *", "a step needs * or a range"},
		{"-1 * * * *", "not a number"},
		{"+1 * * * *", "not a number"},
		{"0 0 30 2 *", "would never run"},
		{"0 0 31 4,6,9,11 *", "would never run"},
		{"0 0 31 4 *\n", "would never run"},
		{"0 0 * * *;reboot", "not a number"},
	}
	for _, tt := range tests {
		_, err := ParseSchedule(tt.in)
		if err == nil {
			t.Errorf("%q: accepted", tt.in)
			continue
		}
		if !errors.Is(err, ErrBadSchedule) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: %v, want ErrBadSchedule containing %q", tt.in, err, tt.msg)
		}
	}
	// Cron's OR rule makes "31st or a Monday" reachable, so it is fine.
	if _, err := ParseSchedule("0 0 31 2 mon"); err != nil {
		t.Errorf("day OR weekday: %v", err)
	}
}

var onCalendarTests = []struct{ cron, cal string }{
	{"0 9 * * 6", "Sat *-*-* 09:00:00"},
	{"0 */6 * * *", "*-*-* 00/6:00:00"},
	{"0 3 15 * *", "*-*-15 03:00:00"},
	{"30 2 * * *", "*-*-* 02:30:00"},
	{"0 10 1 * *", "*-*-01 10:00:00"},
	{"*/15 8-17 * * mon-fri", "Mon..Fri *-*-* 08..17:00/15:00"},
	{"0 0 1 */3 *", "*-01/3-01 00:00:00"},
	{"5,35 1-23/2 * jan,jul *", "*-01,07-* 01..23/2:05,35:00"},
	{"0 6 * * 5-7", "Fri..Sun *-*-* 06:00:00"},
	{"0 6 * * 1,3", "Mon,Wed *-*-* 06:00:00"},
	{"0 6 * * 6,0", "Sat,Sun *-*-* 06:00:00"},
	{"0 6 * * 0-6", "*-*-* 06:00:00"},
	{"@hourly", "*-*-* *:00:00"},
	{"@yearly", "*-01-01 00:00:00"},
	{"0 0 */2 * mon", "Mon *-*-01/2 00:00:00"},
	{"0 12 */10 * *", "*-*-01/10 12:00:00"},
	{"0 0 29 2 *", "*-02-29 00:00:00"},
	{"0 4 * * */2", "Tue,Thu,Sat,Sun *-*-* 04:00:00"},
}

func TestOnCalendar(t *testing.T) {
	for _, tt := range onCalendarTests {
		s, err := ParseSchedule(tt.cron)
		if err != nil {
			t.Fatalf("%q: %v", tt.cron, err)
		}
		got, err := s.OnCalendar()
		if err != nil || got != tt.cal {
			t.Errorf("%q: OnCalendar %q, %v; want %q", tt.cron, got, err, tt.cal)
		}
	}
	s, _ := ParseSchedule("0 0 1 * mon")
	if _, err := s.OnCalendar(); !errors.Is(err, ErrBadSchedule) || !strings.Contains(err.Error(), "OR") {
		t.Errorf("day OR weekday converted: %v", err)
	}
	if _, err := (Schedule{}).OnCalendar(); err == nil {
		t.Error("zero Schedule converted")
	}
}

// matches is cron's rule, minute by minute, to check Next against.
func (s Schedule) matches(t time.Time) bool {
	return s.Minutes.Has(t.Minute()) && s.Hours.Has(t.Hour()) && s.Months.Has(int(t.Month())) && s.dayMatches(t)
}

func TestNextAgainstBruteForce(t *testing.T) {
	base := time.Date(2026, 2, 27, 13, 47, 31, 0, time.UTC)
	for _, spec := range []string{"0 9 * * 6", "*/7 */5 * * *", "0 0 1 * mon", "0 0 31 * *", "15 3 * 2 */2", "0 0 29 2 *"} {
		s, err := ParseSchedule(spec)
		if err != nil {
			t.Fatal(err)
		}
		got := s.Next(base)
		want := base.Truncate(time.Minute).Add(time.Minute)
		for !s.matches(want) {
			want = want.Add(time.Minute)
		}
		if !got.Equal(want) {
			t.Errorf("%q: Next = %v, want %v", spec, got, want)
		}
	}
	s, _ := ParseSchedule("0 0 * * *")
	if got := s.Next(base); !got.Equal(time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("daily: %v", got)
	}
	if !(Schedule{}).Next(base).IsZero() {
		t.Error("zero Schedule has a next time")
	}
}

func TestNextAcrossDST(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	s, _ := ParseSchedule("30 2 * * *")
	// 2026-03-29 02:30 does not exist there; cron-like behaviour is to run
	// at the next matching time that does, and never to loop.
	got := s.Next(time.Date(2026, 3, 28, 12, 0, 0, 0, loc))
	if got.IsZero() || !got.After(time.Date(2026, 3, 28, 12, 0, 0, 0, loc)) {
		t.Errorf("Next across spring forward: %v", got)
	}
	after := time.Date(2026, 10, 25, 1, 0, 0, 0, loc)
	for range 50 {
		n := s.Next(after)
		if !n.After(after) {
			t.Fatalf("Next(%v) = %v went backwards", after, n)
		}
		after = n
	}
}

var elapseRE = regexp.MustCompile(`(?m)^\s*(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$`)

// TestOnCalendarWithSystemd has systemd itself read each converted
// expression and checks it fires exactly when cron would.
func TestOnCalendarWithSystemd(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: cannot cross-check OnCalendar= output")
	}
	const iterations = 6
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range onCalendarTests {
		cmd := exec.Command(bin, "calendar", "--iterations=6", "--base-time=2026-01-01 00:00:00 UTC", tt.cal)
		cmd.Env = append(os.Environ(), "TZ=UTC", "SYSTEMD_COLORS=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "base-time") {
				t.Skipf("systemd-analyze lacks --base-time: %s", out)
			}
			t.Errorf("%q -> %q rejected by systemd: %v\n%s", tt.cron, tt.cal, err, out)
			continue
		}
		m := elapseRE.FindAllStringSubmatch(string(out), -1)
		if len(m) != iterations {
			t.Errorf("%q: %d elapse times in:\n%s", tt.cal, len(m), out)
			continue
		}
		s, _ := ParseSchedule(tt.cron)
		at := base
		for i, mm := range m {
			sys, err := time.Parse(time.DateTime, mm[1])
			if err != nil {
				t.Fatal(err)
			}
			at = s.Next(at)
			if !at.Equal(sys) {
				t.Errorf("%q (%q) firing %d: cron %v, systemd %v", tt.cron, tt.cal, i+1, at, sys)
				break
			}
		}
	}
}
