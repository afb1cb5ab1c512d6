package kit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deadMirror refuses connections: a machine with no network.
const deadMirror = "http://127.0.0.1:9/debian"

func TestParsePlan(t *testing.T) {
	out := []byte(`Reading package lists...
Inst libssl3 (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])
Conf libssl3 (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])
Inst dmsetup (2:1.02.185-2 Debian:12.15/oldstable [amd64]) []
Inst libc6 [2.36-9] (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])
Inst media-types (10.0.0 Debian:12.15/oldstable [all])
`)
	got, err := ParsePlan(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []Planned{{"libssl3", "3.0.22-1~deb12u2", "amd64"}, {"dmsetup", "2:1.02.185-2", "amd64"},
		{"libc6", "2.36-9+deb12u14", "amd64"}, {"media-types", "10.0.0", "all"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := ParsePlan([]byte("Inst broken line\n")); err == nil {
		t.Error("a malformed Inst line was accepted")
	}
}

const stanza = `Package: cryptsetup-bin
Source: cryptsetup
Version: 2:2.6.1-4~deb12u2
Architecture: amd64
Depends: libc6 (>= 2.34),
 libcryptsetup12 (>= 2:2.6.1)
Filename: pool/main/c/cryptsetup/cryptsetup-bin_2.6.1-4~deb12u2_amd64.deb
Size: 5
SHA256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
`

func TestIndex(t *testing.T) {
	d, err := debFromStanza(stanza)
	if err != nil {
		t.Fatal(err)
	}
	if d.File != "cryptsetup-bin_2.6.1-4~deb12u2_amd64.deb" || d.Version != "2:2.6.1-4~deb12u2" || d.Size != 5 {
		t.Fatalf("pin: %+v", d)
	}
	r := &Repo{Arch: "amd64", Debs: []Deb{d}, Stanzas: map[string]string{d.Name: stanza}}
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(idx), "Filename: ./cryptsetup-bin_2.6.1-4~deb12u2_amd64.deb\n") || !strings.Contains(string(idx), "\n libcryptsetup12") {
		t.Fatalf("index:\n%s", idx)
	}
	rel := string(ReleaseFile("amd64", time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), idx))
	if !strings.Contains(rel, " "+sha256Hex(idx)+" ") || !strings.Contains(rel, "Architectures: amd64\n") {
		t.Fatalf("Release:\n%s", rel)
	}
	// A record that is not the pin's is refused, not indexed.
	d.SHA256 = strings.Repeat("0", 64)
	r.Debs[0] = d
	if _, err := r.Index(); err == nil {
		t.Fatal("a record with another checksum than the pin was indexed")
	}
	for _, bad := range []string{
		strings.Replace(stanza, "SHA256: 2cf2", "SHA256: 2c", 1),
		strings.Replace(stanza, "/cryptsetup-bin_2.6.1", "/crypt setup_2.6.1", 1),
		strings.Replace(stanza, "Size: 5\n", "", 1),
	} {
		if _, err := debFromStanza(bad); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

// With no network and nothing in the cache, the fetch fails and says why.
func TestFetchOffline(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get is not installed: the kit is fetched with Debian's apt")
	}
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := Fetch(ctx, Options{Cache: cache, Arch: "arm64", Mirror: deadMirror, Security: deadMirror})
	if err == nil || !strings.Contains(err.Error(), "could not be fetched") || !strings.Contains(err.Error(), "has none from before") {
		t.Fatalf("offline, empty cache: %v", err)
	}
	// A cache whose file does not match its pin is no fallback.
	dir := filepath.Join(cache, Release+"-arm64")
	d, _ := debFromStanza(stanza)
	if err := os.WriteFile(filepath.Join(dir, "archives", d.File), []byte("hellO"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, repoFile), []byte(`{"arch":"arm64","debs":[{"name":"cryptsetup-bin","file":"`+d.File+`","sha256":"`+d.SHA256+`","size":5}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(ctx, Options{Cache: cache, Arch: "arm64", Mirror: deadMirror, Security: deadMirror})
	if err == nil || !strings.Contains(err.Error(), "the signed index says") {
		t.Fatalf("offline, damaged cache: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "archives", d.File), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Fetch(ctx, Options{Cache: cache, Arch: "arm64", Mirror: deadMirror, Security: deadMirror})
	if err != nil || r.Stale == "" {
		t.Fatalf("offline, good cache: %v %+v", err, r)
	}
	t.Logf("stale: %s", r.Stale)
}
