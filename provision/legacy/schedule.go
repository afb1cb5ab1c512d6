package legacy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Entry is one scheduled command of a hand-built setup: a cron line or a
// systemd timer (or boot-time service) with what it runs.
type Entry struct {
	// File is where the schedule is written (/etc/cron.d/john-ai-backups,
	// /etc/systemd/system/borg-backup.timer); Line is the cron line's
	// number, 0 for a unit.
	File string
	Line int
	// Cron is the schedule as a 5-field cron spec ("0 2 * * *"); "" when
	// it cannot be written as one (a boot-time unit, an OnCalendar= with
	// seconds or ranges). Boot says the unit runs at boot.
	Cron string
	Boot bool
	// Units are the unit files of a systemd entry: the timer and its
	// service, or a boot-time service alone.
	Units []string
	// Command is the command line as the schedule gives it.
	Command string
	// Env are the cron file's variable lines (MAILTO=...).
	Env map[string]string
}

// CronFile reads a crontab. system says it has the user field
// (/etc/crontab, /etc/cron.d/*); a user's crontab has none.
func CronFile(file string, data []byte, system bool) []Entry {
	var out []Entry
	env := map[string]string{}
	for i, raw := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(raw)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if m := cronEnvRE.FindStringSubmatch(l); m != nil {
			env[m[1]] = strings.Trim(strings.TrimSpace(m[2]), `"'`)
			continue
		}
		f := strings.Fields(l)
		var spec string
		var rest []string
		if strings.HasPrefix(f[0], "@") {
			spec, rest = macro(f[0]), f[1:]
		} else if len(f) >= 5 {
			spec, rest = strings.Join(f[:5], " "), f[5:]
		} else {
			continue
		}
		if system {
			if len(rest) == 0 {
				continue
			}
			rest = rest[1:] // the user
		}
		if len(rest) == 0 {
			continue
		}
		e := Entry{File: file, Line: i + 1, Cron: spec, Command: cronCommand(l, rest), Env: copyMap(env)}
		if f[0] == "@reboot" {
			e.Cron, e.Boot = "", true
		}
		out = append(out, e)
	}
	return out
}

var cronEnvRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$`)

// cronCommand is the rest of the line from the first word of the
// command, spacing kept (quotes inside it matter to the shell cron runs).
func cronCommand(line string, rest []string) string {
	i := strings.Index(line, rest[0])
	for i >= 0 {
		// The first occurrence after the fields: find the last start
		// position whose remainder has as many fields as rest.
		if len(strings.Fields(line[i:])) == len(rest) {
			return strings.TrimSpace(line[i:])
		}
		j := strings.Index(line[i+1:], rest[0])
		if j < 0 {
			break
		}
		i += j + 1
	}
	return strings.Join(rest, " ")
}

func macro(m string) string {
	switch m {
	case "@hourly":
		return "0 * * * *"
	case "@daily", "@midnight":
		return "0 0 * * *"
	case "@weekly":
		return "0 0 * * 0"
	case "@monthly":
		return "0 0 1 * *"
	case "@yearly", "@annually":
		return "0 0 1 1 *"
	}
	return m
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Unit is a systemd unit file's settings: section -> key -> values (a key
// may repeat, as ExecStart= does).
type Unit map[string]map[string][]string

// ParseUnit reads a unit file (continuation lines joined).
func ParseUnit(data []byte) Unit {
	u := Unit{}
	sec := ""
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	for _, raw := range strings.Split(text, "\n") {
		l := strings.TrimSpace(raw)
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			sec = l[1 : len(l)-1]
			if u[sec] == nil {
				u[sec] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || sec == "" {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if v == "" {
				delete(u[sec], k) // an empty assignment resets the list
				continue
			}
			u[sec][k] = append(u[sec][k], v)
		}
	}
	return u
}

// Get is the last value of key in section, "" if unset.
func (u Unit) Get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// ExecCommands are the service's ExecStartPre/ExecStart/ExecStartPost
// lines, without systemd's prefixes (-, @, :, +, !).
func (u Unit) ExecCommands() []string {
	var out []string
	for _, k := range []string{"ExecStartPre", "ExecStart", "ExecStartPost"} {
		for _, v := range u["Service"][k] {
			out = append(out, strings.TrimLeft(v, "-@:+!"))
		}
	}
	return out
}

var onCalRE = regexp.MustCompile(`^(?:(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+)?(?:\*-\*-(\*|\d{1,2})\s+)?(\d{1,2}):(\d{2})(?::00)?$`)

var weekdayNum = map[string]string{"Sun": "0", "Mon": "1", "Tue": "2", "Wed": "3", "Thu": "4", "Fri": "5", "Sat": "6"}

// CalendarCron writes a simple OnCalendar= expression as a cron spec:
// daily/weekly/monthly/hourly, "*-*-* 02:30:00", "Sun *-*-* 04:30",
// "*-*-15 04:45:00". Anything richer gives an error.
func CalendarCron(cal string) (string, error) {
	cal = strings.TrimSpace(cal)
	switch cal {
	case "hourly":
		return "0 * * * *", nil
	case "daily", "midnight":
		return "0 0 * * *", nil
	case "weekly":
		return "0 0 * * 1", nil // systemd's weeks start on Monday
	case "monthly":
		return "0 0 1 * *", nil
	}
	m := onCalRE.FindStringSubmatch(cal)
	if m == nil {
		return "", fmt.Errorf("OnCalendar=%s is not a plain daily, weekly or monthly time", cal)
	}
	hour, _ := strconv.Atoi(m[3])
	minute, _ := strconv.Atoi(m[4])
	if hour > 23 || minute > 59 {
		return "", fmt.Errorf("OnCalendar=%s: no such time", cal)
	}
	dom, dow := "*", "*"
	if m[2] != "" && m[2] != "*" {
		dom = strings.TrimLeft(m[2], "0")
	}
	if m[1] != "" {
		dow = weekdayNum[m[1]]
	}
	return fmt.Sprintf("%d %d %s * %s", minute, hour, dom, dow), nil
}
