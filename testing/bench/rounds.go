package bench

import "context"

// Warmup rounds run before the measured ones and are dropped: caches,
// page cache and Python byte-code are then as warm for every tool.
const Warmup = 1

// side is one contender of a round.
type side func(ctx context.Context) (Result, error)

// pairs runs a and b side by side for Warmup+runs rounds, alternating
// which goes first, and returns the measured rounds' results.
func pairs(ctx context.Context, runs int, a, b side) (as, bs []Result, err error) {
	for i := range Warmup + runs {
		var ra, rb Result
		if i%2 == 0 {
			if ra, err = a(ctx); err == nil {
				rb, err = b(ctx)
			}
		} else {
			if rb, err = b(ctx); err == nil {
				ra, err = a(ctx)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		if i >= Warmup {
			as, bs = append(as, ra), append(bs, rb)
		}
	}
	return as, bs, nil
}

func seconds(rs []Result) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.Seconds
	}
	return out
}

func peaks(rs []Result) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.PeakRSS
	}
	return out
}

// timeRow is a row whose ratio is peer time over borgkit time: how many
// times faster borgkit is.
func timeRow(item, what string, kit, peer []Result, goal Goal) Row {
	k, p := seconds(kit), seconds(peer)
	return Row{Item: item, What: what, Kit: Seconds(Summarize(k).Median), Peer: Seconds(Summarize(p).Median),
		Ratio: Summarize(Ratios(p, k)), Goal: goal}
}
