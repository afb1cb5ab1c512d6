package luks2

import (
	"crypto/aes"
	"crypto/pbkdf2"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/xts"
)

const (
	// Keyslot areas are always encrypted in 512-byte sectors whatever the
	// data segment's sector size, with IVs counted from the area start.
	areaSectorSize = 512

	// Bounds below mirror what cryptsetup accepts; they exist so a damaged
	// or hostile header turns into an error instead of a huge allocation.
	maxVolumeKeySize = 512     // bytes
	maxStripes       = 65536   // cryptsetup only writes 4000
	maxArgon2Memory  = 4 << 20 // KiB, cryptsetup's hard ceiling (4 GiB)
	maxArgon2Lanes   = 255     // argon2 parameter is a uint8 in x/crypto
)

// errMismatch marks "this key does not open this slot" as opposed to
// "this slot could not be checked".
var errMismatch = errors.New("key does not match")

// OpenKeyslot tries key (passphrase or keyfile bytes, used exactly as given)
// against every luks2 keyslot in cryptsetup's order: priority "prefer" first,
// then "normal"; priority-0 ("ignore") slots are skipped, as cryptsetup does
// unless a slot is named explicitly. r must give access to the keyslot areas,
// i.e. be the device/image or a full header backup.
//
// It returns the slot that opened and the volume (master) key; the caller
// owns the key and should clear it. If every tried slot cleanly rejected the
// key the error wraps ErrNoKeyslot. If some slot could not be checked (unknown
// KDF or cipher, truncated file) the error wraps those causes instead,
// because the key might be right for that slot.
func (h *Header) OpenKeyslot(r io.ReaderAt, key []byte) (slot int, masterKey []byte, err error) {
	order, ignored := h.keyslotOrder()
	var note string
	if len(ignored) > 0 {
		note = "; priority ignore: " + idList(ignored)
	}
	if len(order) == 0 {
		return -1, nil, fmt.Errorf("%w: header has no usable luks2 keyslot%s", ErrNoKeyslot, note)
	}
	var tried []int
	var failed []error
	for _, ks := range order {
		tried = append(tried, ks.ID)
		mk, err := h.tryKeyslot(r, ks, key)
		if err == nil {
			return ks.ID, mk, nil
		}
		if !errors.Is(err, errMismatch) {
			failed = append(failed, fmt.Errorf("keyslot %d: %w", ks.ID, err))
		}
	}
	if len(failed) > 0 {
		return -1, nil, fmt.Errorf("luks2: key opened none of keyslots %s%s, and some could not be checked: %w",
			idList(tried), note, joinErrs(failed))
	}
	return -1, nil, fmt.Errorf("%w (tried keyslots %s%s)", ErrNoKeyslot, idList(tried), note)
}

// keyslotOrder returns luks2 keyslots in the order cryptsetup tries them,
// plus the ids skipped because their priority is "ignore".
func (h *Header) keyslotOrder() (order []Keyslot, ignored []int) {
	for _, prio := range []int{2, 1} {
		for _, ks := range h.Keyslots {
			if ks.Type == "luks2" && ks.Priority == prio {
				order = append(order, ks)
			}
		}
	}
	for _, ks := range h.Keyslots {
		if ks.Type == "luks2" && ks.Priority == 0 {
			ignored = append(ignored, ks.ID)
		}
	}
	return order, ignored
}

func (h *Header) digestsFor(slot int) []Digest {
	var out []Digest
	for _, d := range h.Digests {
		for _, id := range d.Keyslots {
			if id == slot {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

func (h *Header) tryKeyslot(r io.ReaderAt, ks Keyslot, pass []byte) ([]byte, error) {
	// Validate everything cheap before the deliberately expensive KDF, so a
	// header we cannot handle fails fast and names the reason.
	digests := h.digestsFor(ks.ID)
	if len(digests) == 0 {
		return nil, fmt.Errorf("%w: not bound to any digest, so a key cannot be verified", ErrMalformed)
	}
	for _, d := range digests {
		if err := checkDigestParams(d); err != nil {
			return nil, err
		}
	}
	if ks.KeySize <= 0 || ks.KeySize > maxVolumeKeySize {
		return nil, fmt.Errorf("%w: key_size %d", ErrMalformed, ks.KeySize)
	}
	if ks.AF.Type != "luks1" {
		return nil, fmt.Errorf("%w: anti-forensic splitter %q", ErrUnsupported, ks.AF.Type)
	}
	afHash, err := hashByName(ks.AF.Hash)
	if err != nil {
		return nil, fmt.Errorf("AF hash: %w", err)
	}
	if ks.AF.Stripes <= 0 || ks.AF.Stripes > maxStripes {
		return nil, fmt.Errorf("%w: af stripes %d", ErrMalformed, ks.AF.Stripes)
	}
	if ks.Area.Type != "raw" {
		return nil, fmt.Errorf("%w: keyslot area type %q", ErrUnsupported, ks.Area.Type)
	}
	if err := checkAreaCipher(ks.Area); err != nil {
		return nil, err
	}
	if err := checkKDF(ks.KDF); err != nil {
		return nil, err
	}
	afSize := ks.KeySize * ks.AF.Stripes
	readLen := (afSize + areaSectorSize - 1) / areaSectorSize * areaSectorSize
	if uint64(readLen) > ks.Area.Size {
		return nil, fmt.Errorf("%w: area size %d is smaller than the %d bytes of split key", ErrMalformed, ks.Area.Size, readLen)
	}
	if ks.Area.Offset > math.MaxInt64-uint64(readLen) {
		return nil, fmt.Errorf("%w: area offset %d out of range", ErrMalformed, ks.Area.Offset)
	}

	// Read before deriving: a header backup cut short should fail in
	// microseconds, not after a second of Argon2.
	buf := make([]byte, readLen)
	defer clear(buf)
	n, err := r.ReadAt(buf, int64(ks.Area.Offset))
	if n < len(buf) {
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading keyslot area at %#x: %w", ks.Area.Offset, err)
		}
		return nil, fmt.Errorf("%w: keyslot area at %#x needs %d bytes, only %d present (is this a cut-down header copy rather than a full luksHeaderBackup?)",
			ErrTruncated, ks.Area.Offset, len(buf), n)
	}

	areaKey, err := deriveKey(ks.KDF, pass, ks.Area.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(areaKey)
	// The expanded AES key schedules inside c cannot be wiped from Go; they
	// become garbage when this function returns.
	c, err := xts.NewCipher(aes.NewCipher, areaKey)
	if err != nil {
		return nil, fmt.Errorf("keyslot area cipher: %w", err)
	}
	for i := 0; i < len(buf)/areaSectorSize; i++ {
		sector := buf[i*areaSectorSize : (i+1)*areaSectorSize]
		c.Decrypt(sector, sector, uint64(i))
	}

	mk := afMerge(buf[:afSize], ks.KeySize, ks.AF.Stripes, afHash)
	for _, d := range digests {
		ok, err := verifyDigest(d, mk)
		if err != nil || !ok {
			clear(mk)
			if err != nil {
				return nil, err
			}
			return nil, errMismatch
		}
	}
	return mk, nil
}

func checkAreaCipher(a Area) error {
	if a.Encryption != "aes-xts-plain64" {
		return fmt.Errorf("%w: keyslot area encryption %q (only aes-xts-plain64 is implemented)", ErrUnsupported, a.Encryption)
	}
	if a.KeySize != 32 && a.KeySize != 64 {
		return fmt.Errorf("%w: keyslot area key size %d bits for aes-xts-plain64 (want 256 or 512)", ErrUnsupported, a.KeySize*8)
	}
	return nil
}

func checkKDF(k KDF) error {
	switch k.Type {
	case "pbkdf2":
		if _, err := hashByName(k.Hash); err != nil {
			return fmt.Errorf("pbkdf2 KDF: %w", err)
		}
		if k.Iterations < 1 {
			return fmt.Errorf("%w: pbkdf2 iterations %d", ErrMalformed, k.Iterations)
		}
	case "argon2i", "argon2id":
		if k.Time < 1 || uint64(k.Time) > math.MaxUint32 {
			return fmt.Errorf("%w: %s time cost %d", ErrMalformed, k.Type, k.Time)
		}
		if k.CPUs < 1 || k.CPUs > maxArgon2Lanes {
			return fmt.Errorf("%w: %s parallel lanes %d", ErrMalformed, k.Type, k.CPUs)
		}
		// Argon2 needs at least 8 KiB per lane; below that x/crypto silently
		// raises the memory, which would derive a key cryptsetup never did.
		if k.Memory < 8*k.CPUs || k.Memory > maxArgon2Memory {
			return fmt.Errorf("%w: %s memory %d KiB", ErrMalformed, k.Type, k.Memory)
		}
	default:
		return fmt.Errorf("%w: KDF %q (supported: pbkdf2, argon2i, argon2id)", ErrUnsupported, k.Type)
	}
	return nil
}

// deriveKey assumes checkKDF passed.
func deriveKey(k KDF, pass []byte, keyLen int) ([]byte, error) {
	switch k.Type {
	case "pbkdf2":
		newHash, err := hashByName(k.Hash)
		if err != nil {
			return nil, err
		}
		// crypto/pbkdf2 takes the password as a string, an immutable copy
		// we cannot wipe; accepted because the alternative is our own PBKDF2.
		out, err := pbkdf2.Key(newHash, string(pass), k.Salt, k.Iterations, keyLen)
		if err != nil {
			return nil, fmt.Errorf("pbkdf2 KDF: %w", err)
		}
		return out, nil
	case "argon2i":
		return argon2.Key(pass, k.Salt, uint32(k.Time), uint32(k.Memory), uint8(k.CPUs), uint32(keyLen)), nil
	case "argon2id":
		return argon2.IDKey(pass, k.Salt, uint32(k.Time), uint32(k.Memory), uint8(k.CPUs), uint32(keyLen)), nil
	}
	return nil, fmt.Errorf("%w: KDF %q", ErrUnsupported, k.Type)
}

func checkDigestParams(d Digest) error {
	if d.Type != "pbkdf2" {
		return fmt.Errorf("%w: digest %d type %q", ErrUnsupported, d.ID, d.Type)
	}
	if _, err := hashByName(d.Hash); err != nil {
		return fmt.Errorf("digest %d: %w", d.ID, err)
	}
	if d.Iterations < 1 || len(d.Digest) == 0 {
		return fmt.Errorf("%w: digest %d has %d iterations and a %d-byte digest", ErrMalformed, d.ID, d.Iterations, len(d.Digest))
	}
	return nil
}

// verifyDigest recomputes the volume key digest; comparing in constant time
// keeps the check from leaking how close a candidate key came.
func verifyDigest(d Digest, mk []byte) (bool, error) {
	newHash, err := hashByName(d.Hash)
	if err != nil {
		return false, fmt.Errorf("digest %d: %w", d.ID, err)
	}
	got, err := pbkdf2.Key(newHash, string(mk), d.Salt, d.Iterations, len(d.Digest))
	if err != nil {
		return false, fmt.Errorf("digest %d: %w", d.ID, err)
	}
	return subtle.ConstantTimeCompare(got, d.Digest) == 1, nil
}

// afMerge undoes the LUKS anti-forensic split: the key is the last stripe
// XORed with the diffused running XOR of all earlier stripes.
func afMerge(src []byte, keySize, stripes int, newHash func() hash.Hash) []byte {
	acc := make([]byte, keySize)
	defer clear(acc)
	h := newHash()
	var sum []byte
	for i := 0; i < stripes-1; i++ {
		subtle.XORBytes(acc, acc, src[i*keySize:(i+1)*keySize])
		sum = diffuse(acc, h, sum)
	}
	clear(sum)
	out := make([]byte, keySize)
	subtle.XORBytes(out, acc, src[(stripes-1)*keySize:stripes*keySize])
	return out
}

// diffuse hashes b in place, digest-sized block by block, each block
// prefixed by its big-endian index; a short last block takes a truncated
// digest. This is cryptsetup's af.c diffuse(). sum is scratch space reused
// across calls to avoid allocating per stripe.
func diffuse(b []byte, h hash.Hash, sum []byte) []byte {
	ds := h.Size()
	var idx [4]byte
	for i, off := 0, 0; off < len(b); i, off = i+1, off+ds {
		end := min(off+ds, len(b))
		binary.BigEndian.PutUint32(idx[:], uint32(i))
		h.Reset()
		h.Write(idx[:])
		h.Write(b[off:end])
		sum = h.Sum(sum[:0])
		copy(b[off:end], sum)
	}
	return sum
}

func idList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ", ")
}

// joinedErr is errors.Join on one line: these messages end up in runbook
// output and logs, where the newline errors.Join uses splits a record.
type joinedErr []error

func (e joinedErr) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e joinedErr) Unwrap() []error { return e }

func joinErrs(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return joinedErr(errs)
}
