package luks2

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/xts"
)

// Our XTS with the plain64 IV must equal x/crypto's sector-numbered XTS;
// the other IV generators are checked against cryptsetup-made keyslots.
func TestXTSMatchesXCrypto(t *testing.T) {
	for _, keyLen := range []int{32, 64} {
		key := make([]byte, keyLen)
		rand.Read(key)
		plain := make([]byte, 8*areaSectorSize)
		rand.Read(plain)
		ref, err := xts.NewCipher(aes.NewCipher, key)
		if err != nil {
			t.Fatal(err)
		}
		enc := make([]byte, len(plain))
		for s := 0; s < len(plain)/areaSectorSize; s++ {
			ref.Encrypt(enc[s*areaSectorSize:(s+1)*areaSectorSize], plain[s*areaSectorSize:(s+1)*areaSectorSize], uint64(s))
		}
		c, err := parseAreaEncryption("aes-xts-plain64")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.decrypt(key, enc); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, plain) {
			t.Errorf("%d-byte key: decryption differs from x/crypto/xts", keyLen)
		}
	}
}

func TestParseAreaEncryption(t *testing.T) {
	for _, tc := range []struct {
		spec, mode, iv string
		ok             bool
	}{
		{"aes-xts-plain64", "xts", "plain64", true},
		{"aes-cbc-essiv:sha256", "cbc", "essiv:sha256", true},
		{"aes", "cbc", "plain", true},
		{"aes-plain", "cbc", "plain", true},
		{"aes-cbc", "", "", false},
		{"aes-ecb", "", "", false},
		{"serpent-xts-plain64", "", "", false},
		{"aes-cbc-essiv:sha1", "", "", false},
		{"aes-xts-plain64 ", "", "", false},
	} {
		c, err := parseAreaEncryption(tc.spec)
		if (err == nil) != tc.ok || tc.ok && (c.mode != tc.mode || c.iv != tc.iv) {
			t.Errorf("%q: %+v, %v", tc.spec, c, err)
		}
	}
}
