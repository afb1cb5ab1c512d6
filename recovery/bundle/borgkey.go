package bundle

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Errors of the offline borg key check.
var (
	// ErrWrongPassphrase: the passphrase does not decrypt the key export.
	ErrWrongPassphrase = errors.New("the passphrase does not open the key export")
	// ErrKeyFormat: the file is not a borg key export this check can read.
	ErrKeyFormat = errors.New("not a borg key export")
	// ErrKeyUnsupported: a key export borgkit cannot check offline (a newer
	// KDF); a reachable repo copy can still prove it with borg itself.
	ErrKeyUnsupported = errors.New("key export format not supported by the offline check")
)

// KeyInfo is what the offline check learned from a key export.
type KeyInfo struct {
	RepoID     string // hex, from the export's first line
	Iterations int
}

// CheckBorgKey proves, without borg and without the repository, that the
// passphrase opens the key export: borg 1.x keeps the key as msgpack
// {version, salt, iterations, algorithm "sha256", hash, data}, data being
// the key material AES-256-CTR encrypted (zero IV) under
// PBKDF2-HMAC-SHA256(passphrase, salt, iterations), and hash its
// HMAC-SHA256 under the same key. A match also proves the key material
// belongs to the repository id written on the export's first line.
func CheckBorgKey(export, passphraseFile []byte) (*KeyInfo, error) {
	first, rest, ok := bytes.Cut(export, []byte("\n"))
	fields := strings.Fields(string(first))
	if !ok || len(fields) != 2 || fields[0] != "BORG_KEY" || len(fields[1]) != 64 {
		return nil, fmt.Errorf("%w: first line is not \"BORG_KEY <repository id>\"", ErrKeyFormat)
	}
	info := &KeyInfo{RepoID: strings.ToLower(fields[1])}
	blob, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(rest)), ""))
	if err != nil {
		return info, fmt.Errorf("%w: key data is not base64: %v", ErrKeyFormat, err)
	}
	enc, err := decodeMsgpackMap(blob)
	if err != nil {
		return info, fmt.Errorf("%w: %v", ErrKeyFormat, err)
	}
	if v, _ := enc["version"].(int64); v != 1 {
		return info, fmt.Errorf("%w: encrypted key version %v", ErrKeyUnsupported, enc["version"])
	}
	if alg := asString(enc["algorithm"]); alg != "sha256" {
		return info, fmt.Errorf("%w: key algorithm %q", ErrKeyUnsupported, alg)
	}
	salt, hash, data := asBytes(enc["salt"]), asBytes(enc["hash"]), asBytes(enc["data"])
	iter, _ := enc["iterations"].(int64)
	if len(salt) == 0 || len(hash) != sha256.Size || len(data) == 0 || iter <= 0 || iter > 1<<30 {
		return info, fmt.Errorf("%w: encrypted key fields missing or out of range", ErrKeyFormat)
	}
	info.Iterations = int(iter)

	pass := borgPassphrase(passphraseFile)
	key, err := pbkdf2.Key(sha256.New, pass, salt, int(iter), 32)
	if err != nil {
		return info, fmt.Errorf("pbkdf2: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return info, fmt.Errorf("aes: %w", err)
	}
	plain := make([]byte, len(data))
	defer clear(plain)
	cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(plain, data)
	mac := hmac.New(sha256.New, key)
	mac.Write(plain)
	if !hmac.Equal(mac.Sum(nil), hash) {
		return info, ErrWrongPassphrase
	}
	inner, err := decodeMsgpackMap(plain)
	if err != nil {
		return info, fmt.Errorf("%w: decrypted key: %v", ErrKeyFormat, err)
	}
	if id := hex.EncodeToString(asBytes(inner["repository_id"])); id != info.RepoID {
		return info, fmt.Errorf("%w: the key inside is for repository %s, the export's first line says %s", ErrKeyFormat, id, info.RepoID)
	}
	return info, nil
}

// borgPassphrase is the passphrase borg gets from `cat FILE` through
// BORG_PASSCOMMAND: Python reads the output with universal newlines and
// strips trailing newlines.
func borgPassphrase(file []byte) string {
	s := strings.ReplaceAll(string(file), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.TrimRight(s, "\n")
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func asBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return nil
}

// decodeMsgpackMap decodes the small msgpack subset borg's key blobs use:
// a map of str keys to ints, bools, nil and raw/str/bin values (borg 1.x
// packs bytes as msgpack raw, so str and bin both decode to []byte).
func decodeMsgpackMap(b []byte) (map[string]any, error) {
	d := &mpDecoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("msgpack: top level is not a map")
	}
	return m, nil
}

type mpDecoder struct {
	b   []byte
	off int
}

var errShort = errors.New("msgpack: data ends early")

func (d *mpDecoder) take(n int) ([]byte, error) {
	if n < 0 || d.off+n > len(d.b) {
		return nil, errShort
	}
	s := d.b[d.off : d.off+n]
	d.off += n
	return s, nil
}

func (d *mpDecoder) uint(n int) (uint64, error) {
	s, err := d.take(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range s {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

func (d *mpDecoder) value(depth int) (any, error) {
	if depth > 8 {
		return nil, errors.New("msgpack: nested too deep")
	}
	t, err := d.take(1)
	if err != nil {
		return nil, err
	}
	c := t[0]
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c&0xe0 == 0xa0:
		return d.raw(int(c & 0x1f))
	case c&0xf0 == 0x80:
		return d.mapOf(int(c&0x0f), depth)
	case c&0xf0 == 0x90:
		return d.array(int(c&0x0f), depth)
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xd9:
		return d.rawN(1)
	case 0xc5, 0xda:
		return d.rawN(2)
	case 0xc6, 0xdb:
		return d.rawN(4)
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := d.uint(1 << (c - 0xcc))
		if err != nil {
			return nil, err
		}
		if v > 1<<62 {
			return nil, errors.New("msgpack: integer out of range")
		}
		return int64(v), nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (c - 0xd0)
		v, err := d.uint(n)
		if err != nil {
			return nil, err
		}
		shift := 64 - 8*n
		return int64(v<<shift) >> shift, nil
	case 0xde:
		n, err := d.uint(2)
		if err != nil {
			return nil, err
		}
		return d.mapOf(int(n), depth)
	case 0xdf:
		n, err := d.uint(4)
		if err != nil {
			return nil, err
		}
		return d.mapOf(int(n), depth)
	case 0xdc:
		n, err := d.uint(2)
		if err != nil {
			return nil, err
		}
		return d.array(int(n), depth)
	}
	return nil, fmt.Errorf("msgpack: type byte %#x not expected in a borg key", c)
}

func (d *mpDecoder) rawN(lenBytes int) (any, error) {
	n, err := d.uint(lenBytes)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.b)) {
		return nil, errShort
	}
	return d.raw(int(n))
}

func (d *mpDecoder) raw(n int) (any, error) {
	s, err := d.take(n)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), s...), nil
}

func (d *mpDecoder) mapOf(n, depth int) (any, error) {
	if n > len(d.b) {
		return nil, errShort
	}
	m := make(map[string]any, n)
	for range n {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[asString(k)] = v
	}
	return m, nil
}

func (d *mpDecoder) array(n, depth int) (any, error) {
	if n > len(d.b) {
		return nil, errShort
	}
	out := make([]any, 0, n)
	for range n {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
