package luks2

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
)

// The ISO/IEC 10118-3 test vectors for the final Whirlpool (the ones
// NESSIE and OpenSSL publish).
func TestWhirlpoolVectors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "19fa61d75522a4669b44e39c1d2e1726c530232130d407f89afee0964997f7a73e83be698b288febcf88e3e03c4f0757ea8964e59b63d93708b138cc42a66eb3"},
		{"a", "8aca2602792aec6f11a67206531fb7d7f0dff59413145e6973c45001d0087b42d11bc645413aeff63a42391a39145a591a92200d560195e53b478584fdae231a"},
		{"abc", "4e2448a4c6f486bb16b6562c73b4020bf3043e3a731bce721ae1b303d97e6d4c7181eebdb6c57e277d0e34957114cbd6c797fc9d95d8b582d225292076d4eef5"},
		{"message digest", "378c84a4126e2dc6e56dcc7458377aac838d00032230f53ce1f5700c0ffb4d3b8421557659ef55c106b4b52ac5a4aaa692ed920052838f3362e86dbd37a8903e"},
		{"abcdefghijklmnopqrstuvwxyz", "f1d754662636ffe92c82ebb9212a484a8d38631ead4238f5442ee13b8054e41b08bf2a9251c30b6a0b8aae86177ab4a6f68f673e7207865d5d9819a3dba4eb3b"},
		{"The quick brown fox jumps over the lazy dog", "b97de512e91e3828b40d2b0fdce9ceb3c4a71f9bea8d88e75c4fa854df36725fd2b52eb6544edcacd6f8beddfea403cb55ae31f03ad62a5ef54e42ee82c3fb35"},
		{strings.Repeat("1234567890", 8), "466ef18babb0154d25b9d38a6414f5c08784372bccb204d6549c4afadb6014294d5bd8df2a6c44e538cd047b2681a51a2c60481e88c5a20b2c2a80cf3a9a083b"},
	} {
		h := newWhirlpool()
		h.Write([]byte(tc.in))
		if got := hex.EncodeToString(h.Sum(nil)); got != tc.want {
			t.Errorf("whirlpool(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// Split writes and Sum in the middle must not change the result.
func TestWhirlpoolStreaming(t *testing.T) {
	msg := make([]byte, 1000)
	rand.Read(msg)
	one := newWhirlpool()
	one.Write(msg)
	want := one.Sum(nil)
	for _, split := range []int{1, 31, 32, 33, 63, 64, 65, 500} {
		h := newWhirlpool()
		for p := msg; len(p) > 0; {
			n := min(split, len(p))
			h.Write(p[:n])
			h.Sum(nil)
			p = p[n:]
		}
		if got := h.Sum(nil); !bytes.Equal(got, want) {
			t.Errorf("writes of %d bytes: %x, want %x", split, got, want)
		}
	}
}

// OpenSSL's whirlpool (the one cryptsetup uses) on every length around the
// padding boundaries.
func TestWhirlpoolMatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skipf("openssl not installed: %v", err)
	}
	msg := make([]byte, 200)
	rand.Read(msg)
	for _, n := range []int{0, 1, 31, 32, 33, 55, 56, 63, 64, 65, 95, 96, 127, 128, 129, 200} {
		cmd := exec.Command(openssl, "dgst", "-whirlpool", "-provider", "legacy", "-provider", "default", "-r")
		cmd.Stdin = bytes.NewReader(msg[:n])
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl dgst -whirlpool: %v", err)
		}
		h := newWhirlpool()
		h.Write(msg[:n])
		if got, want := hex.EncodeToString(h.Sum(nil)), strings.Fields(string(out))[0]; got != want {
			t.Errorf("%d bytes: %s, openssl says %s", n, got, want)
		}
	}
}
