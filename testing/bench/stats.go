package bench

import (
	"fmt"
	"slices"
)

// Summary is a set of samples as the table shows it: the median, which
// a noisy neighbour moves least, and the range.
type Summary struct {
	Median, Min, Max float64
	N                int
}

// Summarize reduces samples; the median of an even count is the mean of
// the middle two.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Summary{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// Ratios divides paired samples a[i]/b[i]: each pair was measured side by
// side in one round, so the machine's mood at that moment cancels out.
func Ratios(a, b []float64) []float64 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("bench: %d samples against %d", len(a), len(b)))
	}
	out := make([]float64, 0, len(a))
	for i := range a {
		if b[i] != 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}
