package status

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/borgkit/borgkit/roles/jobs/alert"
)

// timeLayout is how the dashboard prints a moment, as the seed's
// SELF-MONITORING lines do ("2026-06-12 00:42").
const timeLayout = "2006-01-02 15:04"

// ago formats an age in seconds as the seed does ("6h", "45m"), in days
// once hours stop being easy to read.
func ago(secs int64) string {
	d := time.Duration(secs) * time.Second
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return alert.Age(d)
}

// duration is a span such as an RTO: "42m", "1h 30m", "45s". Seconds
// past the first minute are noise here.
func duration(d time.Duration) string {
	if d < time.Minute {
		return alert.Elapsed(d)
	}
	return alert.Limit(d.Round(time.Minute))
}

// nonEmpty keeps nil for an empty list: an empty list is omitted from the
// JSON and comes back nil, and the model must round-trip.
func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// maxIssue bounds an issue's text: it ends up in a mail subject.
const maxIssue = 200

// oneLine keeps issue texts to a single bounded line: a record's message
// may carry borg's multi-line output, and a subject must not break.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxIssue {
		r := []rune(s)
		s = string(r[:maxIssue-3]) + "..."
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}
