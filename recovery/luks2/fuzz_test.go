package luks2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The seed testdata/luks2-header-32k.bin is the first 32 KiB (both header
// copies, no keyslot areas) of a luksHeaderBackup made with cryptsetup 2.6.1:
//
//	truncate -s 16M img
//	cryptsetup luksFormat --type luks2 --batch-mode --key-file k1 --pbkdf argon2id \
//	  --pbkdf-memory 32768 --pbkdf-force-iterations 4 --pbkdf-parallel 1 --key-size 512 \
//	  --label borg-offsite --subsystem borgkit img
//	cryptsetup luksAddKey --batch-mode --key-file k1 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 img k2
//	cryptsetup token import --json-file tok.json img   # {"type":"borgkit-note","keyslots":["1"],...}
//	cryptsetup luksHeaderBackup img --header-backup-file hdr && head -c 32768 hdr > luks2-header-32k.bin
//
// with k1 = "seed-key-1" and k2 = "seed-key-2".

func FuzzReadHeader(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "luks2-header-32k.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:16384])
	f.Add(seed[:4096])
	secondaryOnly := bytes.Clone(seed)
	clear(secondaryOnly[:16])
	f.Add(secondaryOnly)
	f.Add([]byte("LUKS\xba\xbe\x00\x01"))
	f.Add(tinyKeyslotSeed(f, seed))

	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data)
		// Most mutations break the checksum and stop at it; re-sealing
		// lets the fuzzer reach the JSON checks and keyslot code too.
		if sealed := resealForFuzz(data); sealed != nil {
			checkParse(t, sealed)
		}
	})
}

// checkParse asserts what must hold for any input: no panic, every error
// classified, a header only if it is consistent, and never "opens". The
// keyslot areas in the seeds are garbage, so the only way a key could open
// one is a bypass of the digest check, the very bug (cryptsetup's md5 and
// bad-salt digests) that must not happen here.
func checkParse(t *testing.T, data []byte) {
	r := bytes.NewReader(data)
	h, err := ReadHeader(r)
	if err != nil {
		if !isClassified(err) {
			t.Fatalf("error wraps no package sentinel: %v", err)
		}
		return
	}
	if h.Copy == "" || h.HeaderSize < 0x4000 || uint64(len(data)) < h.Offset+h.HeaderSize || h.meta == nil {
		t.Fatalf("inconsistent header: copy %q size %#x offset %#x len %d", h.Copy, h.HeaderSize, h.Offset, len(data))
	}
	if !cheapToOpen(h) {
		return
	}
	slot, mk, err := h.OpenKeyslot(context.Background(), r, []byte("seed-key-2"))
	if err == nil {
		t.Fatalf("a garbage keyslot area opened: slot %d, %d-byte key", slot, len(mk))
	}
	if !isClassified(err) {
		t.Fatalf("OpenKeyslot error wraps no package sentinel: %v", err)
	}
}

func isClassified(err error) bool {
	for _, s := range []error{ErrNotLUKS, ErrUnsupported, ErrChecksum, ErrMalformed, ErrTruncated, ErrNoKeyslot} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// cheapToOpen keeps the fuzzer from spending seconds in a KDF a mutation
// made expensive; the parsing paths are what we want exercised.
func cheapToOpen(h *Header) bool {
	for _, ks := range h.Keyslots {
		if ks.KDF.Iterations > 2000 || ks.KDF.Memory > 1024 || ks.KDF.Time > 4 || ks.KeySize > 64 {
			return false
		}
	}
	for _, d := range h.Digests {
		if d.Iterations > 2000 {
			return false
		}
	}
	for _, m := range h.meta.get("digests").objOrNil() {
		if m.val.get("iterations").cInt64() > 2000 || m.val.get("iterations").cInt64() < 0 {
			return false
		}
	}
	return true
}

// resealForFuzz recomputes the sha256 checksums of whichever copies fit in
// data, returning nil when there is nothing to seal.
func resealForFuzz(data []byte) []byte {
	if len(data) < binHeaderSize {
		return nil
	}
	hdrSize := binary.BigEndian.Uint64(data[8:16])
	if !validHeaderSize(hdrSize) || uint64(len(data)) < hdrSize {
		return nil
	}
	out := bytes.Clone(data)
	reseal(out[:hdrSize])
	if uint64(len(out)) >= 2*hdrSize {
		reseal(out[hdrSize : 2*hdrSize])
	}
	return out
}

// tinyKeyslotSeed rewrites the seed into a header whose only keyslot is a
// cheap pbkdf2 slot with a one-byte volume key (cryptsetup always splits
// into 4000 stripes: 4000 bytes, 8 sectors) in a 4 KiB keyslots area right
// after the metadata, so the fuzzer reaches area decryption, AF merge and
// the digest within a 36 KiB input.
func tinyKeyslotSeed(tb testing.TB, seed []byte) []byte {
	m := mutation{json: func(tb testing.TB, r *jsonValue) {
		keyslots := at(tb, r, "keyslots")
		del(keyslots, "0")
		rename(keyslots, "1", "0")
		set(ks(tb, r, "0"), "key_size", jv(tb, `1`))
		set(ks(tb, r, "0", "area"), "offset", jv(tb, `"32768"`))
		set(ks(tb, r, "0", "area"), "size", jv(tb, `"4096"`))
		set(ks(tb, r, "0", "area"), "key_size", jv(tb, `32`))
		set(ks(tb, r, "0", "area"), "encryption", jv(tb, `"aes-cbc-essiv:sha256"`))
		set(dig0(tb, r), "keyslots", jv(tb, `["0"]`))
		set(at(tb, r, "tokens", "0"), "keyslots", jv(tb, `["0"]`))
		set(at(tb, r, "config"), "keyslots_size", jv(tb, `"4096"`))
	}}
	return append(m.apply(tb, seed), bytes.Repeat([]byte{0x5a}, 4096)...)
}

func TestTinyKeyslotSeedReachesKeyslotCode(t *testing.T) {
	seed := readFile(t, filepath.Join("testdata", "luks2-header-32k.bin"))
	data := tinyKeyslotSeed(t, seed)
	h, err := ReadHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !cheapToOpen(h) {
		t.Fatal("tiny seed is too expensive for the fuzzer to open")
	}
	// Garbage area, so the digest must reject it: proves the full path ran.
	if _, _, err := h.OpenKeyslot(context.Background(), bytes.NewReader(data), []byte("x")); !errors.Is(err, ErrNoKeyslot) {
		t.Fatalf("OpenKeyslot = %v, want ErrNoKeyslot", err)
	}
}
