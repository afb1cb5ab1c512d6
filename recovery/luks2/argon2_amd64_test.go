//go:build !purego

package luks2

import (
	"math/rand/v2"
	"testing"
)

// The AVX2 permutation must compute exactly what the generic Go one does,
// for the first pass (out overwritten) and later ones (XORed into out),
// and leave the same prev^ref in the scratch block.
func TestArgon2CompressAVX2MatchesGeneric(t *testing.T) {
	if !argon2HasAVX2 {
		t.Skip("this CPU has no AVX2: only the generic permutation runs here")
	}
	rng := rand.New(rand.NewPCG(19, 4))
	random := func() *argon2Block {
		var b argon2Block
		for i := range b {
			b[i] = rng.Uint64()
		}
		return &b
	}
	for i := range 100 {
		prev, ref, out := random(), random(), random()
		for _, xor := range []bool{false, true} {
			wantOut, gotOut := *out, *out
			var wr, wq, gr, gq argon2Block
			argon2CompressGeneric(prev, ref, &wantOut, &wr, &wq, xor)
			argon2RowsAVX2(prev, ref, &gr, &gq)
			argon2ColumnsAVX2(&gq, &gr, &gotOut, xor)
			if gotOut != wantOut || gr != wr {
				t.Fatalf("block %d, xor %v: AVX2 and generic differ", i, xor)
			}
		}
	}
	// prev and ref may be the same block (the address blocks are
	// compressed with zero and themselves, into themselves).
	a := random()
	want, got := *a, *a
	var r, q argon2Block
	zero := argon2Block{}
	argon2CompressGeneric(&zero, &want, &want, &r, &q, false)
	argon2RowsAVX2(&zero, &got, &r, &q)
	argon2ColumnsAVX2(&q, &r, &got, false)
	if got != want {
		t.Fatal("in-place compression differs")
	}
}
