//go:build !amd64 || purego

package luks2

func argon2Compress(prev, ref, out, r, q *argon2Block, xor bool) {
	argon2CompressGeneric(prev, ref, out, r, q, xor)
}
