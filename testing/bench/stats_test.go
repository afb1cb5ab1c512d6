package bench

import "testing"

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want Summary
	}{
		{[]float64{3, 1, 2}, Summary{Median: 2, Min: 1, Max: 3, N: 3}},
		{[]float64{4, 1, 3, 2}, Summary{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{[]float64{5}, Summary{Median: 5, Min: 5, Max: 5, N: 1}},
		{nil, Summary{}},
	} {
		in := append([]float64(nil), c.in...)
		if got := Summarize(c.in); got != c.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("Summarize sorted its argument")
			}
		}
	}
}

func TestRatiosArePaired(t *testing.T) {
	got := Ratios([]float64{2, 9, 4}, []float64{1, 3, 0})
	if len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("Ratios = %v (a zero denominator is dropped)", got)
	}
	// The median of paired ratios is not the ratio of medians: pairing
	// cancels a round's noise that both sides felt.
	a, b := []float64{1, 10, 3}, []float64{1, 10, 1}
	if m := Summarize(Ratios(a, b)).Median; m != 1 {
		t.Fatalf("median ratio %v, want 1", m)
	}
}

func TestNewBytes(t *testing.T) {
	before := map[string]fileState{"a": {size: 10}, "b": {size: 20}}
	after := map[string]fileState{"a": {size: 10}, "b": {size: 25}, "c": {size: 5}}
	if n := newBytes(before, after); n != 30 {
		t.Fatalf("newBytes = %d, want 30 (b changed, c new)", n)
	}
}
