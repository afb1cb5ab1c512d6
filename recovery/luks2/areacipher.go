package luks2

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"strings"
)

// Keyslot areas are encrypted in 512-byte sectors whatever the data
// segment's sector size, with IVs counted from the start of the area.
const areaSectorSize = 512

// areaCipher is a keyslot area encryption this verifier can undo: AES in
// XTS or CBC mode with one of dm-crypt's IV generators. It covers what
// cryptsetup writes by default (aes-xts-plain64) and what LUKS1 disks
// converted to LUKS2 keep (aes-cbc-essiv:sha256, aes-cbc-plain64,
// aes-cbc-plain, aes-xts-plain).
type areaCipher struct {
	spec string
	mode string // "xts" or "cbc"
	iv   string // "plain", "plain64", "plain64be", "null" or "essiv:sha256"
}

// parseAreaEncryption reads an area "encryption" the way cryptsetup splits
// a cipher spec: "CIPHER-MODE-IV", where a bare "CIPHER" or "CIPHER-plain"
// means CBC with the plain IV.
func parseAreaEncryption(spec string) (areaCipher, error) {
	c := areaCipher{spec: spec}
	name, mode, hasMode := strings.Cut(spec, "-")
	if !hasMode || mode == "plain" {
		mode = "cbc-plain"
	}
	if name != "aes" {
		return c, fmt.Errorf("%w: keyslot area cipher %q (only AES is implemented)", ErrUnsupported, spec)
	}
	c.mode, c.iv, _ = strings.Cut(mode, "-")
	if c.mode != "xts" && c.mode != "cbc" {
		return c, fmt.Errorf("%w: keyslot area cipher mode %q in %q (xts and cbc are implemented)", ErrUnsupported, c.mode, spec)
	}
	switch c.iv {
	case "plain", "plain64", "plain64be", "null", "essiv:sha256":
	default:
		return c, fmt.Errorf("%w: keyslot area IV %q in %q (plain, plain64, plain64be, null and essiv:sha256 are implemented)", ErrUnsupported, c.iv, spec)
	}
	return c, nil
}

// checkKeySize rejects what the kernel's AES refuses, as cryptsetup then
// does ("Cannot use ... cipher for keyslot encryption"); measured: XTS takes
// 256- and 512-bit keys only.
func (c areaCipher) checkKeySize(n int) error {
	ok := n == 16 || n == 24 || n == 32
	if c.mode == "xts" {
		ok = n == 32 || n == 64
	}
	if !ok {
		return fmt.Errorf("%w: keyslot area key of %d bits for %s", ErrMalformed, n*8, c.spec)
	}
	return nil
}

// decrypt decrypts buf (whole 512-byte sectors) in place.
func (c areaCipher) decrypt(key, buf []byte) error {
	ivGen, err := c.ivGenerator(key)
	if err != nil {
		return err
	}
	var iv [aes.BlockSize]byte
	switch c.mode {
	case "cbc":
		b, err := aes.NewCipher(key)
		if err != nil {
			return fmt.Errorf("keyslot area cipher: %w", err)
		}
		for s := 0; s < len(buf)/areaSectorSize; s++ {
			ivGen(&iv, uint64(s))
			sector := buf[s*areaSectorSize : (s+1)*areaSectorSize]
			cipher.NewCBCDecrypter(b, iv[:]).CryptBlocks(sector, sector)
		}
	case "xts":
		half := len(key) / 2
		data, err := aes.NewCipher(key[:half])
		if err != nil {
			return fmt.Errorf("keyslot area cipher: %w", err)
		}
		tweak, err := aes.NewCipher(key[half:])
		if err != nil {
			return fmt.Errorf("keyslot area cipher: %w", err)
		}
		for s := 0; s < len(buf)/areaSectorSize; s++ {
			ivGen(&iv, uint64(s))
			xtsDecryptSector(data, tweak, iv, buf[s*areaSectorSize:(s+1)*areaSectorSize])
		}
	}
	return nil
}

// ivGenerator returns dm-crypt's IV for a sector number.
func (c areaCipher) ivGenerator(key []byte) (func(iv *[aes.BlockSize]byte, sector uint64), error) {
	switch c.iv {
	case "plain":
		return func(iv *[aes.BlockSize]byte, s uint64) {
			*iv = [aes.BlockSize]byte{}
			binary.LittleEndian.PutUint32(iv[:], uint32(s))
		}, nil
	case "plain64":
		return func(iv *[aes.BlockSize]byte, s uint64) {
			*iv = [aes.BlockSize]byte{}
			binary.LittleEndian.PutUint64(iv[:], s)
		}, nil
	case "plain64be":
		return func(iv *[aes.BlockSize]byte, s uint64) {
			*iv = [aes.BlockSize]byte{}
			binary.BigEndian.PutUint64(iv[aes.BlockSize-8:], s)
		}, nil
	case "null":
		return func(iv *[aes.BlockSize]byte, _ uint64) { *iv = [aes.BlockSize]byte{} }, nil
	}
	// essiv:sha256: the sector number encrypted under the hash of the
	// whole key.
	salt := sha256.Sum256(key)
	b, err := aes.NewCipher(salt[:])
	clear(salt[:])
	if err != nil {
		return nil, fmt.Errorf("keyslot area ESSIV: %w", err)
	}
	return func(iv *[aes.BlockSize]byte, s uint64) {
		*iv = [aes.BlockSize]byte{}
		binary.LittleEndian.PutUint64(iv[:], s)
		b.Encrypt(iv[:], iv[:])
	}, nil
}

// xtsDecryptSector is IEEE 1619 XTS for whole blocks with an arbitrary
// 16-byte IV as the tweak (x/crypto/xts only takes a sector number,
// which covers plain64 but not the other IV generators).
func xtsDecryptSector(data, tweak cipher.Block, iv [aes.BlockSize]byte, sector []byte) {
	var t [aes.BlockSize]byte
	tweak.Encrypt(t[:], iv[:])
	lo, hi := binary.LittleEndian.Uint64(t[:8]), binary.LittleEndian.Uint64(t[8:])
	for off := 0; off < len(sector); off += aes.BlockSize {
		blk := sector[off : off+aes.BlockSize]
		binary.LittleEndian.PutUint64(t[:8], lo)
		binary.LittleEndian.PutUint64(t[8:], hi)
		subtle.XORBytes(blk, blk, t[:])
		data.Decrypt(blk, blk)
		subtle.XORBytes(blk, blk, t[:])
		// Multiply the tweak by x in GF(2^128).
		carry := hi >> 63
		hi = hi<<1 | lo>>63
		lo <<= 1
		lo ^= 0x87 & -carry
	}
}
