package alert

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// TimestampLayout is how the mails print a moment ("2026-06-12 00:23:15"),
// in the time's own location: jobs pass local time, as the seed's cron did.
const TimestampLayout = "2006-01-02 15:04:05"

// Elapsed formats how long a step took as the seed does: "45s", "2m 18s",
// "10m 32s", "1h 5m".
func Elapsed(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		d = 0
	}
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	switch {
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// Age formats how old something is as the seed does: whole hours ("34h",
// "6h"), minutes below one hour ("45m"). It rounds down, so an age shown
// as the threshold ("30h (threshold: 30h)") is past it by under an hour.
func Age(d time.Duration) string {
	if d < time.Hour {
		if d < 0 {
			d = 0
		}
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
	return fmt.Sprintf("%dh", int(d/time.Hour))
}

// Limit formats a threshold exactly: "30h", "90m" or "1h 30m". Rounding
// it as Age does would misstate the configured value.
func Limit(d time.Duration) string {
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case m == 0:
		return fmt.Sprintf("%dh", h)
	case h == 0:
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%dh %dm", h, m)
}

// limitWords is a threshold in prose: "30 hours", "1 hour", "1h 30m".
func limitWords(d time.Duration) string {
	switch {
	case d == time.Hour:
		return "1 hour"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	}
	return Limit(d)
}

// Size formats a byte count as df -h does, which the seed quotes: powers of
// 1024, one decimal below 10 and rounded up ("2.9T", "290G", "1000G").
func Size(n uint64) string {
	units := []string{"", "K", "M", "G", "T", "P", "E"}
	v := float64(n)
	u := 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d", n)
	}
	for {
		var r float64
		if v < 10 {
			r = math.Ceil(v*10) / 10
		} else {
			r = math.Ceil(v)
		}
		if r >= 1024 && u < len(units)-1 {
			v /= 1024
			u++
			continue
		}
		if r < 10 {
			return fmt.Sprintf("%.1f%s", r, units[u])
		}
		return fmt.Sprintf("%.0f%s", r, units[u])
	}
}

// maxOutputLines bounds the program output one mail section carries: enough
// to see why, while the full log keeps the rest.
const maxOutputLines = 40

// writeOutput writes out under "  Output:", indented four spaces, keeping
// the last maxOutputLines lines.
func writeOutput(b *strings.Builder, out string) {
	out = strings.TrimRight(strings.ReplaceAll(out, "\r\n", "\n"), "\n \t")
	if strings.TrimSpace(out) == "" {
		return
	}
	lines := strings.Split(out, "\n")
	b.WriteString("  Output:\n")
	if n := len(lines) - maxOutputLines; n > 0 {
		fmt.Fprintf(b, "    [... %d earlier lines, see the full log]\n", n)
		lines = lines[n:]
	}
	for _, l := range lines {
		b.WriteString(strings.TrimRight("    "+l, " \t\r"))
		b.WriteByte('\n')
	}
}

// indent writes each line of s indented by two spaces.
func indent(b *strings.Builder, s string) {
	for l := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(strings.TrimRight("  "+l, " \t\r"))
		b.WriteByte('\n')
	}
}
