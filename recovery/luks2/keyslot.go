package luks2

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math"
	"strconv"
	"strings"
)

const (
	// afStripes is cryptsetup's LUKS_STRIPES. It splits and merges every
	// keyslot with 4000 stripes and never reads af.stripes when opening
	// (measured: a header saying 1 still opens), so neither do we.
	afStripes = 4000

	// Bounds below exist so a damaged or hostile header turns into an
	// error instead of a huge allocation or an endless KDF.
	maxVolumeKeySize = 512     // bytes
	maxArgon2Memory  = 4 << 20 // KiB, cryptsetup's own ceiling (4 GiB)
	maxArgon2Lanes   = 0xFFFFFF

	// cryptsetup's PBKDF2 salts (keyslot and digest) are always 32 bytes;
	// any other length makes it refuse the keyslot.
	saltSize = 32
	// A PBKDF2 digest is 20 bytes (the LUKS1 length) or the hash's size.
	minDigestSize = 20
	maxDigestSize = 64
)

// Slot priorities as cryptsetup stores them.
const (
	priorityIgnore = 0
	priorityNormal = 1
	priorityPrefer = 2
)

// slotResult classifies one keyslot attempt the way cryptsetup's loop
// does: a mismatch (EPERM) or an unusable slot (ENOENT) moves on to the
// next keyslot; any other failure ends the search, even if a later keyslot
// would open.
type slotResult int

const (
	slotOpened slotResult = iota
	slotMismatch
	slotSkipped
	slotFailed
)

// OpenKeyslot tries key (passphrase or keyfile bytes, used exactly as given)
// as `cryptsetup open --test-passphrase` does: keyslots in the order the
// header lists them, priority "prefer" first, then "normal"; "ignore" slots
// are skipped, and so are slots that are not bound to the data segment
// through a digest (an unbound keyslot's key opens nothing). A keyslot that
// cannot be checked stops the search, as it stops cryptsetup's. r must give
// access to the keyslot areas, i.e. be the device/image or a full header
// backup. A cancelled ctx interrupts the key derivation.
//
// It returns the slot that opened and the volume (master) key; the caller
// owns the key and should clear it. If no usable keyslot took the key, the
// error wraps ErrNoKeyslot.
func (h *Header) OpenKeyslot(ctx context.Context, r io.ReaderAt, key []byte) (slot int, masterKey []byte, err error) {
	if err := h.checkDeviceSize(r); err != nil {
		return -1, nil, err
	}
	if len(h.Config.Requirements) > 0 {
		// cryptsetup open --test-passphrase ignores these, but activation
		// refuses a header with requirements it does not meet, and this
		// verifier handles none of them (reencryption, OPAL, inline tags).
		return -1, nil, fmt.Errorf("%w: the header has mandatory requirements %s; cryptsetup will not activate it as it is",
			ErrUnsupported, strings.Join(h.Config.Requirements, ", "))
	}
	keyslots := h.meta.get("keyslots")
	for _, m := range keyslots.obj {
		if m.val.get("type").cString() == "reencrypt" {
			return -1, nil, fmt.Errorf("%w: keyslot %s is a reencryption keyslot: a reencryption was interrupted", ErrUnsupported, m.key)
		}
	}

	var tried []int
	var skipped []string
	passResult := func(prio int32) (int, []byte, slotResult, error) {
		last := slotSkipped // cryptsetup starts from "no usable keyslot"
		for _, m := range keyslots.obj {
			if p := slotPriority(m.val); p != prio {
				if prio == priorityNormal && p != priorityPrefer {
					skipped = append(skipped, fmt.Sprintf("keyslot %s (priority %s)", m.key, priorityName(p)))
				}
				continue
			}
			id, ok := cAtoi(m.key)
			if !ok {
				return -1, nil, slotFailed, fmt.Errorf("%w: keyslot id %s out of range", ErrMalformed, m.key)
			}
			mk, res, err := h.tryKeyslot(ctx, r, id, key)
			switch res {
			case slotOpened:
				return id, mk, res, nil
			case slotFailed:
				if ctxErr := ctx.Err(); ctxErr != nil {
					return -1, nil, res, fmt.Errorf("luks2: interrupted while checking keyslot %d: %w", id, ctxErr)
				}
				return -1, nil, res, fmt.Errorf("luks2: keyslot %d cannot be checked, and cryptsetup stops at it: %w", id, err)
			case slotMismatch:
				tried = append(tried, id)
			case slotSkipped:
				skipped = append(skipped, fmt.Sprintf("keyslot %d (%v)", id, err))
			}
			last = res
		}
		return -1, nil, last, nil
	}
	id, mk, prefer, err := passResult(priorityPrefer)
	if prefer == slotOpened || prefer == slotFailed {
		return id, mk, err
	}
	id, mk, normal, err := passResult(priorityNormal)
	if normal == slotOpened || normal == slotFailed {
		return id, mk, err
	}
	var note string
	if len(skipped) > 0 {
		note = "; skipped " + strings.Join(skipped, ", ")
	}
	if len(tried) == 0 {
		return -1, nil, fmt.Errorf("%w: no usable keyslot%s", ErrNoKeyslot, note)
	}
	return -1, nil, fmt.Errorf("%w (tried keyslots %s%s)", ErrNoKeyslot, idList(tried), note)
}

func slotPriority(ks *jsonValue) int32 {
	if p := ks.get("priority"); p != nil {
		return p.cInt()
	}
	return priorityNormal
}

func priorityName(p int32) string {
	switch p {
	case priorityIgnore:
		return "ignore"
	case priorityNormal:
		return "normal"
	case priorityPrefer:
		return "prefer"
	}
	return fmt.Sprintf("%d, which cryptsetup never tries", p)
}

// checkDeviceSize mirrors cryptsetup refusing a header whose metadata and
// keyslots area do not fit in the device or file.
func (h *Header) checkDeviceSize(r io.ReaderAt) error {
	need := 2*(h.Config.JSONSize+binHeaderSize) + h.Config.KeyslotsSize
	var probe [1]byte
	if n, err := r.ReadAt(probe[:], int64(need-1)); n != 1 {
		if err != nil && err != io.EOF {
			return fmt.Errorf("luks2: reading the keyslots area: %w", err)
		}
		return fmt.Errorf("%w: the header and its keyslots area take %d bytes, but the file is shorter (a cut-down header copy rather than a full luksHeaderBackup?)",
			ErrTruncated, need)
	}
	return nil
}

// defaultSegment is the segment cryptsetup opens: the one flagged
// "backup-final" (during a reencryption), else 0.
func (h *Header) defaultSegment() int {
	for _, m := range h.meta.get("segments").objOrNil() {
		for _, f := range m.val.get("flags").arrOrNil() {
			if f.kind == jsonString && f.str == "backup-final" {
				id, _ := cAtoi(m.key)
				return id
			}
		}
	}
	return 0
}

// firstDigest returns the id of the first digest (in header order) whose
// list named field contains name, as cryptsetup's digest lookups do.
func (h *Header) firstDigest(field, name string) (string, int, bool) {
	for _, d := range h.meta.get("digests").objOrNil() {
		if containsString(d.val.get(field), name) {
			id, ok := cAtoi(d.key)
			return d.key, id, ok
		}
	}
	return "", 0, false
}

// keyslotParams is everything needed to open one luks2 keyslot, gathered
// and checked before the deliberately expensive KDF so that a keyslot we
// cannot handle fails in microseconds and names the reason.
type keyslotParams struct {
	vkLen      int
	kdf        kdfParams
	areaKeyLen int
	area       areaCipher
	areaOffset uint64
	afHash     hashDef
	digest     digestParams
}

type kdfParams struct {
	typ              string
	hash             hashDef // pbkdf2
	iterations       int     // pbkdf2
	time, mem, lanes uint32  // argon2
	salt             []byte
}

type digestParams struct {
	id         int
	hash       hashDef
	iterations int
	salt       []byte
	digest     []byte
}

func (h *Header) tryKeyslot(ctx context.Context, r io.ReaderAt, id int, pass []byte) ([]byte, slotResult, error) {
	ks := h.meta.get("keyslots").get(strconv.Itoa(id))
	if ks == nil {
		return nil, slotSkipped, fmt.Errorf("no keyslot is named %d", id)
	}
	if typ := ks.get("type").cString(); typ != "luks2" {
		return nil, slotSkipped, fmt.Errorf("type %q is not a keyslot type cryptsetup opens", typ)
	}
	if err := validateLUKS2Keyslot(ks, fmt.Sprintf("keyslot %d", id)); err != nil {
		return nil, slotFailed, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	digestKey, digestID, ok := h.firstDigest("keyslots", strconv.Itoa(id))
	if !ok {
		return nil, slotFailed, fmt.Errorf("%w: no digest lists keyslot %d", ErrMalformed, id)
	}
	seg := h.defaultSegment()
	_, segDigest, ok := h.firstDigest("segments", strconv.Itoa(seg))
	switch {
	case !ok:
		return nil, slotSkipped, fmt.Errorf("no digest covers data segment %d", seg)
	case segDigest != digestID:
		return nil, slotSkipped, fmt.Errorf("unbound: its digest %d does not cover data segment %d", digestID, seg)
	}
	p, err := readKeyslotParams(ks, h.meta.get("digests").get(digestKey), digestID)
	if err != nil {
		return nil, slotFailed, err
	}

	// Read before deriving: a header backup cut short should fail in
	// microseconds, not after a second of Argon2.
	afSize := p.vkLen * afStripes
	buf := make([]byte, (afSize+areaSectorSize-1)/areaSectorSize*areaSectorSize)
	defer clear(buf)
	if p.areaOffset > math.MaxInt64-uint64(len(buf)) {
		return nil, slotFailed, fmt.Errorf("%w: area offset %d out of range", ErrMalformed, p.areaOffset)
	}
	n, err := r.ReadAt(buf, int64(p.areaOffset))
	if n < len(buf) {
		if err != nil && err != io.EOF {
			return nil, slotFailed, fmt.Errorf("reading keyslot area at %#x: %w", p.areaOffset, err)
		}
		return nil, slotFailed, fmt.Errorf("%w: keyslot area at %#x needs %d bytes, only %d present",
			ErrTruncated, p.areaOffset, len(buf), n)
	}

	areaKey, err := deriveKey(ctx, p.kdf, pass, p.areaKeyLen)
	if err != nil {
		return nil, slotFailed, err
	}
	err = p.area.decrypt(areaKey, buf)
	clear(areaKey)
	if err != nil {
		return nil, slotFailed, err
	}
	mk := afMerge(buf[:afSize], p.vkLen, afStripes, p.afHash.new)
	ok, err = verifyDigest(ctx, p.digest, mk)
	if err != nil || !ok {
		clear(mk)
		if err != nil {
			return nil, slotFailed, err
		}
		return nil, slotMismatch, nil
	}
	return mk, slotOpened, nil
}

// readKeyslotParams reads a keyslot's parameters the way cryptsetup's luks2
// keyslot handler and PBKDF2 digest do, refusing what they refuse.
func readKeyslotParams(ks, digest *jsonValue, digestID int) (keyslotParams, error) {
	var p keyslotParams
	var err error
	// cryptsetup 2.6 reads as many key bytes as the keyslot's own
	// key_size says (measured: a second keyslot claiming 32 bytes of a
	// 64-byte key no longer opens).
	if p.vkLen = int(ks.get("key_size").cInt()); p.vkLen <= 0 || p.vkLen > maxVolumeKeySize {
		return p, fmt.Errorf("%w: volume key size %d bytes", ErrMalformed, p.vkLen)
	}
	af, area, kdf := ks.get("af"), ks.get("area"), ks.get("kdf")
	if p.afHash, err = lookupHash(af.get("hash").cString()); err != nil {
		return p, fmt.Errorf("AF hash: %w", err)
	}
	p.areaOffset, _ = cStrtoull(area.get("offset").cString())
	if p.area, err = parseAreaEncryption(area.get("encryption").cString()); err != nil {
		return p, err
	}
	p.areaKeyLen = int(area.get("key_size").cInt())
	if err := p.area.checkKeySize(p.areaKeyLen); err != nil {
		return p, err
	}
	if p.kdf, err = readKDF(kdf); err != nil {
		return p, err
	}
	if p.digest, err = readDigest(digest, digestID); err != nil {
		return p, err
	}
	return p, nil
}

func readKDF(kdf *jsonValue) (kdfParams, error) {
	k := kdfParams{typ: kdf.get("type").cString()}
	need := func(names ...string) error {
		for _, n := range names {
			if !kdf.has(n) {
				return fmt.Errorf("%w: %s kdf has no %q", ErrMalformed, k.typ, n)
			}
		}
		return nil
	}
	var err error
	switch k.typ {
	case "pbkdf2":
		if err := need("hash", "iterations", "salt"); err != nil {
			return k, err
		}
		if k.hash, err = lookupHash(kdf.get("hash").cString()); err != nil {
			return k, fmt.Errorf("pbkdf2 KDF: %w", err)
		}
		it := kdf.get("iterations").cInt()
		if it < 1 {
			return k, fmt.Errorf("%w: pbkdf2 iterations %d", ErrMalformed, it)
		}
		k.iterations = int(it)
	case "argon2i", "argon2id":
		if err := need("time", "memory", "cpus", "salt"); err != nil {
			return k, err
		}
		t, m, c := kdf.get("time").cInt(), kdf.get("memory").cInt(), kdf.get("cpus").cInt()
		switch {
		case t < 1:
			return k, fmt.Errorf("%w: %s time cost %d", ErrMalformed, k.typ, t)
		case c < 1 || c > maxArgon2Lanes:
			return k, fmt.Errorf("%w: %s parallel lanes %d", ErrMalformed, k.typ, c)
		case int64(m) < 8*int64(c):
			// libargon2 refuses less than 8 KiB per lane (x/crypto would
			// silently raise it and derive a key cryptsetup never does).
			return k, fmt.Errorf("%w: %s memory %d KiB is less than 8 KiB for each of %d lanes", ErrMalformed, k.typ, m, c)
		case m > maxArgon2Memory:
			return k, fmt.Errorf("%w: %s memory %d KiB is over cryptsetup's 4 GiB limit", ErrUnsupported, k.typ, m)
		}
		k.time, k.mem, k.lanes = uint32(t), uint32(m), uint32(c)
	default:
		return k, fmt.Errorf("%w: KDF %q (pbkdf2, argon2i and argon2id are what cryptsetup implements)", ErrUnsupported, k.typ)
	}
	if k.salt, err = base64Field(kdf, "salt", "kdf salt", saltSize, saltSize); err != nil {
		return k, err
	}
	return k, nil
}

func readDigest(d *jsonValue, id int) (digestParams, error) {
	p := digestParams{id: id}
	if typ := d.get("type").cString(); typ != "pbkdf2" {
		return p, fmt.Errorf("%w: digest %d type %q (cryptsetup only has pbkdf2)", ErrUnsupported, id, typ)
	}
	var err error
	if !d.has("hash") {
		return p, fmt.Errorf("%w: digest %d has no hash", ErrMalformed, id)
	}
	if p.hash, err = lookupHash(d.get("hash").cString()); err != nil {
		return p, fmt.Errorf("digest %d: %w", id, err)
	}
	if !d.has("iterations") {
		return p, fmt.Errorf("%w: digest %d has no iterations", ErrMalformed, id)
	}
	// cryptsetup reads them as a 64-bit number and passes an unsigned int.
	it := uint32(d.get("iterations").cInt64())
	if it < 1 || it > math.MaxInt32 {
		return p, fmt.Errorf("%w: digest %d iterations %d", ErrMalformed, id, it)
	}
	p.iterations = int(it)
	where := fmt.Sprintf("digest %d", id)
	if p.salt, err = base64Field(d, "salt", where+" salt", saltSize, saltSize); err != nil {
		return p, err
	}
	if p.digest, err = base64Field(d, "digest", where, minDigestSize, maxDigestSize); err != nil {
		return p, err
	}
	if n := len(p.digest); n != minDigestSize && n != p.hash.new().Size() {
		return p, fmt.Errorf("%w: %s is %d bytes, neither 20 nor the %s size", ErrMalformed, where, n, p.hash.name)
	}
	return p, nil
}

// base64Field decodes a base64 string member whose length must be in [lo, hi].
func base64Field(obj *jsonValue, name, what string, lo, hi int) ([]byte, error) {
	v := obj.get(name)
	if v == nil {
		return nil, fmt.Errorf("%w: %s is missing", ErrMalformed, what)
	}
	b, err := base64.StdEncoding.DecodeString(v.cString())
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64: %w", ErrMalformed, what, err)
	}
	if len(b) < lo || len(b) > hi {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrMalformed, what, len(b))
	}
	return b, nil
}

func deriveKey(ctx context.Context, k kdfParams, pass []byte, keyLen int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if k.typ == "pbkdf2" {
		return pbkdf2Key(ctx, k.hash.new, pass, k.salt, k.iterations, keyLen)
	}
	return argon2Key(ctx, k.typ, pass, k.salt, k.time, k.mem, k.lanes, keyLen)
}

// verifyDigest recomputes the volume key digest; comparing in constant time
// keeps the check from leaking how close a candidate key came.
func verifyDigest(ctx context.Context, d digestParams, mk []byte) (bool, error) {
	got, err := pbkdf2Key(ctx, d.hash.new, mk, d.salt, d.iterations, len(d.digest))
	if err != nil {
		return false, fmt.Errorf("digest %d: %w", d.id, err)
	}
	defer clear(got)
	return subtle.ConstantTimeCompare(got, d.digest) == 1, nil
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
