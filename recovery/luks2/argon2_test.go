package luks2

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// Our Argon2 must derive exactly what x/crypto's (and libargon2's, which
// the cryptsetup-made argon2 fixtures cover) does, over lane counts,
// passes, memory sizes that are and are not multiples of a segment, and
// output lengths on both sides of 64 bytes (H' chaining).
func TestArgon2MatchesXCrypto(t *testing.T) {
	pass, salt := make([]byte, 20), make([]byte, 32)
	rand.Read(pass)
	rand.Read(salt)
	for _, typ := range []string{"argon2i", "argon2id"} {
		for _, p := range []struct{ time, mem, lanes uint32 }{
			{1, 8, 1}, {1, 64, 1}, {2, 256, 2}, {3, 1000, 3}, {4, 1024, 4}, {1, 4099, 7}, {3, 2048, 1},
		} {
			for _, keyLen := range []int{16, 32, 64, 65, 100, 129} {
				want := argon2.IDKey(pass, salt, p.time, p.mem, uint8(p.lanes), uint32(keyLen))
				if typ == "argon2i" {
					want = argon2.Key(pass, salt, p.time, p.mem, uint8(p.lanes), uint32(keyLen))
				}
				got, err := argon2Key(context.Background(), typ, pass, salt, p.time, p.mem, p.lanes, keyLen)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s t=%d m=%d p=%d len=%d: %x, %v; x/crypto: %x", typ, p.time, p.mem, p.lanes, keyLen, got, err, want)
				}
			}
		}
	}
}

// A cancelled context stops the KDF at its next synchronisation point.
func TestArgon2Cancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	timer := time.AfterFunc(50*time.Millisecond, cancel)
	defer timer.Stop()
	// About 20 s of work uncancelled: 64 passes over 64 MiB.
	_, err := argon2Key(ctx, "argon2id", []byte("p"), make([]byte, 32), 64, 64<<10, 1, 32)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// A segment stops within 1024 blocks (a millisecond or so); allow a
	// loaded machine.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancellation took %v", d)
	}
}

func TestPBKDF2Cancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h, _ := lookupHash("sha256")
	if _, err := pbkdf2Key(ctx, h.new, []byte("p"), []byte("s"), 1<<30, 32); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func BenchmarkArgon2XCrypto(b *testing.B) {
	cpu0 := selfCPU()
	for b.Loop() {
		argon2.IDKey([]byte("p"), make([]byte, 32), 4, 256<<10, 2, 64)
	}
	b.ReportMetric(float64((selfCPU()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}
