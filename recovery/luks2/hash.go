package luks2

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/blake2s"
	//lint:ignore SA1019 LUKS1 disks converted to LUKS2 may use RIPEMD-160; we only verify, never choose it
	"golang.org/x/crypto/ripemd160"
)

type hashDef struct {
	name string
	new  func() hash.Hash
}

// hashes maps the hash names cryptsetup accepts (through OpenSSL, which
// matches them case-insensitively) to Go implementations. Every name here
// was checked against cryptsetup 2.6.1: it formats and opens a LUKS2 header
// with it as the PBKDF2, AF and digest hash. Names cryptsetup takes that are
// missing here (sm3, OpenSSL's other aliases) make a header "unsupported",
// never "good": a name we accept that cryptsetup refused would let us call
// a key good for a header cryptsetup cannot open.
var hashes = func() map[string]hashDef {
	m := map[string]hashDef{}
	add := func(f func() hash.Hash, names ...string) {
		for _, n := range names {
			m[n] = hashDef{name: names[0], new: f}
		}
	}
	add(sha1.New, "sha1")
	add(sha256.New224, "sha224")
	add(sha256.New, "sha256", "sha2-256", "sha-256")
	add(sha512.New384, "sha384")
	add(sha512.New, "sha512")
	add(sha512.New512_224, "sha512-224")
	add(sha512.New512_256, "sha512-256")
	add(func() hash.Hash { return sha3.New224() }, "sha3-224")
	add(func() hash.Hash { return sha3.New256() }, "sha3-256")
	add(func() hash.Hash { return sha3.New384() }, "sha3-384")
	add(func() hash.Hash { return sha3.New512() }, "sha3-512")
	add(ripemd160.New, "ripemd160", "rmd160", "ripemd")
	add(newWhirlpool, "whirlpool")
	add(func() hash.Hash { h, _ := blake2b.New512(nil); return h }, "blake2b-512", "blake2b512")
	add(func() hash.Hash { h, _ := blake2s.New256(nil); return h }, "blake2s-256", "blake2s256")
	add(md5.New, "md5")
	return m
}()

func lookupHash(name string) (hashDef, error) {
	if d, ok := hashes[strings.ToLower(name)]; ok {
		return d, nil
	}
	return hashDef{}, fmt.Errorf("%w: hash %q", ErrUnsupported, name)
}
