// Package digest is the one SHA-256 of a file that borgkit compares: the
// restore test against the live file, the recovery bundle against its
// manifest, the labs against their source trees.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
)

// File returns the lowercase hex SHA-256 of the file at p (as sha256sum
// prints it) and the number of bytes read.
func File(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return Reader(f)
}

// Reader digests r to its end.
func Reader(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
