package luks2

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"hash"
)

// pbkdfCheckEvery is how many PBKDF2 iterations run between looks at the
// context: a few milliseconds of work.
const pbkdfCheckEvery = 4096

// pbkdf2Key is PBKDF2-HMAC (RFC 8018). It is ours rather than
// crypto/pbkdf2's so a cancelled context stops it: LUKS1-era keyslots and
// digests can carry seconds of iterations.
func pbkdf2Key(ctx context.Context, newHash func() hash.Hash, password, salt []byte, iter, keyLen int) ([]byte, error) {
	prf := hmac.New(newHash, password)
	hLen := prf.Size()
	out := make([]byte, 0, (keyLen+hLen-1)/hLen*hLen)
	u := make([]byte, 0, hLen)
	defer clear(u[:hLen])
	var idx [4]byte
	for block := uint32(1); len(out) < keyLen; block++ {
		binary.BigEndian.PutUint32(idx[:], block)
		prf.Reset()
		prf.Write(salt)
		prf.Write(idx[:])
		u = prf.Sum(u[:0])
		t := out[len(out) : len(out)+hLen]
		out = out[:len(out)+hLen]
		copy(t, u)
		for n := 2; n <= iter; n++ {
			if n%pbkdfCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					clear(out[:cap(out)])
					return nil, fmt.Errorf("pbkdf2 interrupted: %w", err)
				}
			}
			prf.Reset()
			prf.Write(u)
			u = prf.Sum(u[:0])
			for i := range t {
				t[i] ^= u[i]
			}
		}
	}
	clear(out[keyLen:cap(out)])
	return out[:keyLen], nil
}
