// Package luks2 is a small read-only LUKS2 header parser and keyslot verifier, written so the
// offline recovery bundle can prove a keyfile opens a header backup without root or device-mapper.
package luks2
