package luks2

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/crypto/blake2b"
)

// Argon2 (RFC 9106, version 0x13, as libargon2 and so cryptsetup use it),
// ours rather than x/crypto's for three reasons measured on the bench
// header (256 MiB, 4 passes): x/crypto cannot be cancelled, so SIGTERM
// waited for the whole KDF; it allocates its memory on the Go heap, where
// it is faulted in 4 KiB at a time (65536 page faults, and TLB misses on
// every random reference block), while argon2Memory asks for transparent
// huge pages; and its memory stays with the process until the GC runs.
// Tests check it against x/crypto and RFC 9106's vectors.

const (
	argon2Version  = 0x13
	argon2BlockLen = 128 // uint64 words in a 1 KiB block
	argon2Sync     = 4   // slices per pass
	argon2TypeI    = 1
	argon2TypeID   = 2
)

type argon2Block [argon2BlockLen]uint64

// argon2Key derives an Argon2i or Argon2id key. A cancelled ctx stops it
// within argon2CheckEvery blocks (a few milliseconds).
func argon2Key(ctx context.Context, typ string, pass, salt []byte, time, memoryKiB, lanes uint32, keyLen int) ([]byte, error) {
	mode := uint32(argon2TypeID)
	if typ == "argon2i" {
		mode = argon2TypeI
	}
	h0 := argon2H0(pass, salt, time, memoryKiB, lanes, uint32(keyLen), mode)
	defer clear(h0[:])

	// As libargon2: at least 8 blocks per lane, rounded down to whole
	// segments. (The caller has already refused less than 8 per lane.)
	blocks := max(memoryKiB, 2*argon2Sync*lanes)
	segLen := blocks / (lanes * argon2Sync)
	blocks = segLen * lanes * argon2Sync
	laneLen := segLen * argon2Sync

	mem, err := newArgon2Memory(int(blocks))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	defer mem.free()
	B := mem.blocks

	var buf [1024]byte
	for l := uint32(0); l < lanes; l++ {
		for j := uint32(0); j < 2; j++ {
			var in [blake2b.Size + 8]byte
			copy(in[:], h0[:])
			binary.LittleEndian.PutUint32(in[blake2b.Size:], j)
			binary.LittleEndian.PutUint32(in[blake2b.Size+4:], l)
			argon2Hprime(buf[:], in[:])
			b := &B[l*laneLen+j]
			for i := range b {
				b[i] = binary.LittleEndian.Uint64(buf[8*i:])
			}
		}
	}
	clear(buf[:])

	f := argon2Fill{B: B, lanes: lanes, laneLen: laneLen, segLen: segLen, passes: time, blocks: blocks, mode: mode, done: ctx.Done()}
	for pass := uint32(0); pass < time; pass++ {
		for slice := uint32(0); slice < argon2Sync; slice++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%s interrupted: %w", typ, err)
			}
			f.slice(pass, slice)
		}
	}
	// A segment cut short leaves garbage: never let it become a key.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s interrupted: %w", typ, err)
	}

	var final argon2Block
	for l := uint32(0); l < lanes; l++ {
		last := &B[l*laneLen+laneLen-1]
		for i := range final {
			final[i] ^= last[i]
		}
	}
	for i, w := range final {
		binary.LittleEndian.PutUint64(buf[8*i:], w)
	}
	clear(final[:])
	out := make([]byte, keyLen)
	argon2Hprime(out, buf[:])
	clear(buf[:])
	return out, nil
}

func argon2H0(pass, salt []byte, time, memory, lanes, keyLen, mode uint32) [blake2b.Size]byte {
	h, _ := blake2b.New512(nil)
	var w [4]byte
	u32 := func(v uint32) {
		binary.LittleEndian.PutUint32(w[:], v)
		h.Write(w[:])
	}
	for _, v := range []uint32{lanes, keyLen, memory, time, argon2Version, mode} {
		u32(v)
	}
	u32(uint32(len(pass)))
	h.Write(pass)
	u32(uint32(len(salt)))
	h.Write(salt)
	u32(0) // no secret
	u32(0) // no associated data
	var out [blake2b.Size]byte
	h.Sum(out[:0])
	return out
}

// argon2Hprime is Argon2's variable-length hash H' into out.
func argon2Hprime(out, in []byte) {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(out)))
	if len(out) <= blake2b.Size {
		h, _ := blake2b.New(len(out), nil)
		h.Write(n[:])
		h.Write(in)
		h.Sum(out[:0])
		return
	}
	// Longer outputs chain 64-byte hashes, keeping 32 bytes of each, and
	// end with one hash of the length that remains.
	h, _ := blake2b.New512(nil)
	h.Write(n[:])
	h.Write(in)
	var v [blake2b.Size]byte
	h.Sum(v[:0])
	pos := 0
	for {
		copy(out[pos:], v[:32])
		pos += 32
		if len(out)-pos <= blake2b.Size {
			break
		}
		h.Reset()
		h.Write(v[:])
		h.Sum(v[:0])
	}
	last, _ := blake2b.New(len(out)-pos, nil)
	last.Write(v[:])
	last.Sum(out[pos:pos])
	clear(v[:])
}

type argon2Fill struct {
	B                      []argon2Block
	lanes, laneLen, segLen uint32
	passes, blocks, mode   uint32
	done                   <-chan struct{} // the context's; a segment stops early when closed
}

// argon2CheckEvery is how many blocks a segment fills between looks at
// the context: about a millisecond of work.
const argon2CheckEvery = 1024

// slice fills one segment of every lane, the lanes in parallel: within a
// slice no lane references another lane's current segment.
func (f *argon2Fill) slice(pass, slice uint32) {
	workers := min(int(f.lanes), runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for l := uint32(0); l < f.lanes; l++ {
			f.segment(pass, slice, l)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan uint32, f.lanes)
	for l := uint32(0); l < f.lanes; l++ {
		next <- l
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range next {
				f.segment(pass, slice, l)
			}
		}()
	}
	wg.Wait()
}

func (f *argon2Fill) segment(pass, slice, lane uint32) {
	B := f.B
	dataIndependent := f.mode == argon2TypeI || pass == 0 && slice < argon2Sync/2
	var addr, in, zero, r, q argon2Block
	if dataIndependent {
		in[0], in[1], in[2], in[3], in[4], in[5] = uint64(pass), uint64(lane), uint64(slice), uint64(f.blocks), uint64(f.passes), uint64(f.mode)
	}
	start := uint32(0)
	if pass == 0 && slice == 0 {
		start = 2
		if dataIndependent {
			in[6]++
			argon2Compress(&zero, &in, &addr, &r, &q, false)
			argon2Compress(&zero, &addr, &addr, &r, &q, false)
		}
	}
	laneBase := lane * f.laneLen
	cur := laneBase + slice*f.segLen + start
	prev := cur - 1
	if cur%f.laneLen == 0 {
		prev = laneBase + f.laneLen - 1
	}
	for idx := start; idx < f.segLen; idx, cur, prev = idx+1, cur+1, cur {
		if idx%argon2CheckEvery == 0 {
			select {
			case <-f.done:
				return // argon2Key sees the context's error
			default:
			}
		}
		var rnd uint64
		if dataIndependent {
			if idx%argon2BlockLen == 0 {
				in[6]++
				argon2Compress(&zero, &in, &addr, &r, &q, false)
				argon2Compress(&zero, &addr, &addr, &r, &q, false)
			}
			rnd = addr[idx%argon2BlockLen]
		} else {
			rnd = B[prev][0]
		}
		refLane := uint32(rnd>>32) % f.lanes
		if pass == 0 && slice == 0 {
			refLane = lane
		}
		ref := refLane*f.laneLen + f.refIndex(pass, slice, idx, uint32(rnd), refLane == lane)
		argon2Compress(&B[prev], &B[ref], &B[cur], &r, &q, pass > 0)
	}
}

// refIndex maps the pseudo-random J1 onto the blocks a reference may use.
func (f *argon2Fill) refIndex(pass, slice, idx, j1 uint32, sameLane bool) uint32 {
	var area uint32
	switch {
	case pass == 0 && sameLane:
		area = slice*f.segLen + idx - 1
	case pass == 0:
		area = slice * f.segLen
		if idx == 0 {
			area--
		}
	case sameLane:
		area = f.laneLen - f.segLen + idx - 1
	default:
		area = f.laneLen - f.segLen
		if idx == 0 {
			area--
		}
	}
	x := uint64(j1) * uint64(j1) >> 32
	rel := uint64(area) - 1 - uint64(area)*x>>32
	startPos := uint32(0)
	if pass != 0 && slice != argon2Sync-1 {
		startPos = (slice + 1) * f.segLen
	}
	return uint32((uint64(startPos) + rel) % uint64(f.laneLen))
}

// argon2Compress is Argon2's G: out = P(prev^ref) ^ prev ^ ref, XORed into
// the old out instead when xor is set (passes after the first, v1.3).
// r and q are scratch blocks, kept by the caller so no call zeroes 2 KiB.
func argon2Compress(prev, ref, out, r, q *argon2Block, xor bool) {
	// The reference block is a random one of up to gigabytes. Start
	// loading all 16 of its cache lines at once (their first words go to
	// q), then mix it in row by row, so the first rows' rounds run while
	// the later lines are still arriving.
	for i := 0; i < argon2BlockLen; i += 8 {
		q[i] = ref[i]
	}
	for i := 0; i < 8; i++ {
		o := 16 * i
		pr, rf, rr, qq := (*[16]uint64)(prev[o:o+16]), (*[16]uint64)(ref[o:o+16]), (*[16]uint64)(r[o:o+16]), (*[16]uint64)(q[o:o+16])
		for j := range rr {
			v := pr[j] ^ rf[j]
			rr[j], qq[j] = v, v
		}
		blamkaRow(q, o)
	}
	for i := 0; i < 8; i++ {
		blamkaColumn(q, 2*i)
	}
	if xor {
		subtle.XORBytes(blockBytes(q), blockBytes(q), blockBytes(r))
		subtle.XORBytes(blockBytes(out), blockBytes(out), blockBytes(q))
		return
	}
	subtle.XORBytes(blockBytes(out), blockBytes(q), blockBytes(r))
}

// blockBytes views a block as the bytes the XOR routines take; the word
// order does not matter to XOR.
func blockBytes(b *argon2Block) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(b)), argon2BlockLen*8)
}

func blamkaRow(b *argon2Block, o int) {
	s := (*[16]uint64)(b[o : o+16])
	blamkaRound(&s[0], &s[1], &s[2], &s[3], &s[4], &s[5], &s[6], &s[7],
		&s[8], &s[9], &s[10], &s[11], &s[12], &s[13], &s[14], &s[15])
}

func blamkaColumn(b *argon2Block, o int) {
	blamkaRound(&b[o], &b[o+1], &b[o+16], &b[o+17], &b[o+32], &b[o+33], &b[o+48], &b[o+49],
		&b[o+64], &b[o+65], &b[o+80], &b[o+81], &b[o+96], &b[o+97], &b[o+112], &b[o+113])
}

// blamkaRound is Blake2b's round function on sixteen words with the
// multiplication Argon2 adds (BlaMka).
func blamkaRound(t00, t01, t02, t03, t04, t05, t06, t07, t08, t09, t10, t11, t12, t13, t14, t15 *uint64) {
	v0, v1, v2, v3, v4, v5, v6, v7 := *t00, *t01, *t02, *t03, *t04, *t05, *t06, *t07
	v8, v9, v10, v11, v12, v13, v14, v15 := *t08, *t09, *t10, *t11, *t12, *t13, *t14, *t15

	v0, v4, v8, v12 = gb(v0, v4, v8, v12)
	v1, v5, v9, v13 = gb(v1, v5, v9, v13)
	v2, v6, v10, v14 = gb(v2, v6, v10, v14)
	v3, v7, v11, v15 = gb(v3, v7, v11, v15)
	v0, v5, v10, v15 = gb(v0, v5, v10, v15)
	v1, v6, v11, v12 = gb(v1, v6, v11, v12)
	v2, v7, v8, v13 = gb(v2, v7, v8, v13)
	v3, v4, v9, v14 = gb(v3, v4, v9, v14)

	*t00, *t01, *t02, *t03, *t04, *t05, *t06, *t07 = v0, v1, v2, v3, v4, v5, v6, v7
	*t08, *t09, *t10, *t11, *t12, *t13, *t14, *t15 = v8, v9, v10, v11, v12, v13, v14, v15
}

func gb(a, b, c, d uint64) (uint64, uint64, uint64, uint64) {
	a += b + 2*uint64(uint32(a))*uint64(uint32(b))
	d = bits.RotateLeft64(d^a, -32)
	c += d + 2*uint64(uint32(c))*uint64(uint32(d))
	b = bits.RotateLeft64(b^c, -24)
	a += b + 2*uint64(uint32(a))*uint64(uint32(b))
	d = bits.RotateLeft64(d^a, -16)
	c += d + 2*uint64(uint32(c))*uint64(uint32(d))
	b = bits.RotateLeft64(b^c, -63)
	return a, b, c, d
}
