package luks2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// maxKeyfileSize matches cryptsetup's default --keyfile-size limit (8 MiB);
// a bigger file would be rejected by cryptsetup too, so we refuse it rather
// than "verify" a key cryptsetup could never use.
const maxKeyfileSize = 8 << 20

// Result is what CheckKey proved. It deliberately carries no key material.
type Result struct {
	UUID       string
	Slot       int
	KDF        string // KDF type of the slot that opened: pbkdf2, argon2i, argon2id
	HeaderCopy string // "primary" or "secondary at 0x..."
	Duration   time.Duration
}

// CheckKey is CheckKeyContext without cancellation.
func CheckKey(headerPath, keyPath string) (*Result, error) {
	return CheckKeyContext(context.Background(), headerPath, keyPath)
}

// CheckKeyContext proves that the keyfile at keyPath opens the LUKS2 header
// at headerPath (a luksHeaderBackup file or the encrypted image itself) the
// way `cryptsetup open --test-passphrase --key-file` would. The keyfile is
// used byte for byte, like cryptsetup --key-file: a trailing newline is part
// of the key. The recovered volume key is wiped before return. Cancelling
// ctx stops the key derivation; the error then wraps ctx.Err().
func CheckKeyContext(ctx context.Context, headerPath, keyPath string) (*Result, error) {
	start := time.Now()
	key, err := readKeyfile(keyPath)
	if err != nil {
		return nil, err
	}
	defer clear(key)

	f, err := os.Open(headerPath)
	if err != nil {
		return nil, fmt.Errorf("luks2: opening header: %w", err)
	}
	defer f.Close()

	h, err := ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", headerPath, err)
	}
	slot, mk, err := h.OpenKeyslot(ctx, f, key)
	clear(mk)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", headerPath, err)
	}
	return &Result{
		UUID:       h.UUID,
		Slot:       slot,
		KDF:        h.keyslotKDF(slot),
		HeaderCopy: h.Copy,
		Duration:   time.Since(start),
	}, nil
}

func (h *Header) keyslotKDF(id int) string {
	for _, ks := range h.Keyslots {
		if ks.ID == id {
			return ks.KDF.Type
		}
	}
	return ""
}

func readKeyfile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("luks2: opening key file: %w", err)
	}
	defer f.Close()
	// Size the buffer up front when we can: io.ReadAll's regrowth would
	// leave stale copies of the key in memory that we could not wipe.
	size := int64(512)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = min(fi.Size(), maxKeyfileSize) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err = buf.ReadFrom(io.LimitReader(f, maxKeyfileSize+1))
	key := buf.Bytes()
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("luks2: reading key file %s: %w", path, err)
	}
	switch {
	case len(key) == 0:
		return nil, fmt.Errorf("luks2: key file %s: %w", path, errEmptyKey)
	case len(key) > maxKeyfileSize:
		clear(key)
		return nil, fmt.Errorf("luks2: key file %s is larger than cryptsetup's %d-byte keyfile limit", path, maxKeyfileSize)
	}
	return key, nil
}

var errEmptyKey = errors.New("key file is empty")
