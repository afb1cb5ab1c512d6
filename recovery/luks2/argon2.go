package luks2

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

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

// argon2CompressGeneric is argon2Compress in Go, for every arch (the
// Pi's arm64 among them) and for amd64 without AVX2. The rows pass reads prev and ref once and leaves prev^ref in r; the
// columns pass writes out directly, so no block is copied or XORed whole.
func argon2CompressGeneric(prev, ref, out, r, q *argon2Block, xor bool) {
	argon2Rows(prev, ref, r, q)
	argon2Columns(q, r, out, xor)
}
