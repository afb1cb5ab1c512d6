//go:build !purego

package luks2

import "golang.org/x/sys/cpu"

// argon2HasAVX2 picks the AVX2 permutation (argon2_amd64.s); a test runs
// both and compares them. Debian's libargon2, which cryptsetup uses, is
// the portable scalar build, so this is where the Go check gains on it.
var argon2HasAVX2 = cpu.X86.HasAVX2

//go:noescape
func argon2RowsAVX2(prev, ref, r, q *argon2Block)

//go:noescape
func argon2ColumnsAVX2(q, r, out *argon2Block, xor bool)

// argon2Compress is Argon2's G: out = P(prev^ref) ^ prev ^ ref, XORed into
// the old out instead when xor is set (passes after the first, v1.3).
// r and q are scratch blocks, kept by the caller so no call zeroes 2 KiB.
func argon2Compress(prev, ref, out, r, q *argon2Block, xor bool) {
	if argon2HasAVX2 {
		argon2RowsAVX2(prev, ref, r, q)
		argon2ColumnsAVX2(q, r, out, xor)
		return
	}
	argon2CompressGeneric(prev, ref, out, r, q, xor)
}
