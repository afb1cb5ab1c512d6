package luks2

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Fixtures are built with the real cryptsetup at test time so the tests
// check compatibility with what cryptsetup writes, not with our reading of
// the spec. KDF costs are forced low to keep the whole file to seconds.

var (
	pbkdf2Fast  = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha256"}
	argon2iFast = []string{"--pbkdf", "argon2i", "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}
	argon2id    = []string{"--pbkdf", "argon2id", "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}
)

func cryptsetupPath(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("cryptsetup")
	if err != nil {
		tb.Skipf("cryptsetup not installed (apt-get install cryptsetup-bin); fixtures are generated with it: %v", err)
	}
	return p
}

func cryptsetup(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command(cryptsetupPath(tb), args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("cryptsetup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cryptsetupAccepts is the reference answer for "does this key open this header".
func cryptsetupAccepts(tb testing.TB, header, key string) bool {
	tb.Helper()
	cmd := exec.Command(cryptsetupPath(tb), "open", "--test-passphrase", "--key-file", key, "--header", header, header)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 { // 2: "no key available with this passphrase"
		return false
	}
	if err != nil {
		tb.Fatalf("cryptsetup open --test-passphrase: %v\n%s", err, out)
	}
	return true
}

type fixture struct {
	dir, img, hdr, key string
}

func writeFile(tb testing.TB, path string, data []byte) string {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// newFixture formats a sparse 20 MiB image and takes a header backup of it.
func newFixture(tb testing.TB, dir string, key []byte, formatArgs ...string) fixture {
	tb.Helper()
	cryptsetupPath(tb)
	f := fixture{
		dir: dir,
		img: filepath.Join(dir, "disk.img"),
		hdr: filepath.Join(dir, "header.luks"),
		key: writeFile(tb, filepath.Join(dir, "key"), key),
	}
	if err := os.WriteFile(f.img, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(f.img, 20<<20); err != nil {
		tb.Fatal(err)
	}
	args := append([]string{"luksFormat", "--batch-mode", "--key-file", f.key}, formatArgs...)
	cryptsetup(tb, append(args, f.img)...)
	cryptsetup(tb, "luksHeaderBackup", f.img, "--header-backup-file", f.hdr)
	return f
}

func randomKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, 64)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	// Force bytes a text-mode reader would mangle, so we prove raw handling.
	k[10], k[20], k[63] = '\n', 0, '\n'
	return k
}

func openHeader(tb testing.TB, path string) (*os.File, *Header) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	h, err := ReadHeader(f)
	if err != nil {
		tb.Fatalf("ReadHeader(%s): %v", path, err)
	}
	return f, h
}

func TestOpenKeyslotMatrix(t *testing.T) {
	cases := []struct {
		name, kdf, hash string
		keyBits         int
		args            []string
	}{
		{"pbkdf2-sha256-256", "pbkdf2", "sha256", 256, pbkdf2Fast},
		{"pbkdf2-sha256-512", "pbkdf2", "sha256", 512, pbkdf2Fast},
		// sha1's 20-byte digest does not divide a 64-byte key: exercises the
		// truncated last block of the AF diffuse step.
		{"pbkdf2-sha1-512", "pbkdf2", "sha1", 512, []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha1"}},
		{"pbkdf2-sha512-256", "pbkdf2", "sha512", 256, []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha512"}},
		{"argon2i-256", "argon2i", "sha256", 256, argon2iFast},
		{"argon2i-512", "argon2i", "sha256", 512, argon2iFast},
		{"argon2id-256", "argon2id", "sha256", 256, argon2id},
		{"argon2id-512", "argon2id", "sha256", 512, argon2id},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := randomKey(t)
			args := append([]string{"--type", "luks2", "--key-size", itoa(tc.keyBits), "--label", "borg-offsite", "--subsystem", "borgkit"}, tc.args...)
			fx := newFixture(t, t.TempDir(), key, args...)
			wantUUID := strings.TrimSpace(cryptsetup(t, "luksUUID", fx.img))

			// cryptsetup's own view of the volume key is the ground truth
			// for our KDF + XTS + AF-merge pipeline.
			vkFile := filepath.Join(fx.dir, "vk")
			cryptsetup(t, "luksDump", "--batch-mode", "--dump-volume-key", "--volume-key-file", vkFile, "--key-file", fx.key, fx.img)
			wantVK := readFile(t, vkFile)

			for _, target := range []string{fx.img, fx.hdr} {
				f, h := openHeader(t, target)
				if h.UUID != wantUUID {
					t.Errorf("%s: UUID %q, cryptsetup luksUUID says %q", target, h.UUID, wantUUID)
				}
				if h.Label != "borg-offsite" || h.Subsystem != "borgkit" || h.Copy != "primary" || h.Version != 2 {
					t.Errorf("%s: label %q subsystem %q copy %q version %d", target, h.Label, h.Subsystem, h.Copy, h.Version)
				}
				if h.PrimaryErr != nil || h.SecondaryErr != nil {
					t.Errorf("%s: fresh header reports damage: %v / %v", target, h.PrimaryErr, h.SecondaryErr)
				}
				if len(h.Keyslots) != 1 {
					t.Fatalf("%s: %d keyslots, want 1", target, len(h.Keyslots))
				}
				ks := h.Keyslots[0]
				if ks.KDF.Type != tc.kdf || ks.KeySize*8 != tc.keyBits || ks.AF.Stripes != 4000 || ks.AF.Hash != tc.hash ||
					ks.Area.Encryption != "aes-xts-plain64" || ks.Priority != 1 {
					t.Errorf("%s: keyslot %+v", target, ks)
				}
				if tc.kdf != "pbkdf2" && (ks.KDF.Memory != 32768 || ks.KDF.Time != 4 || ks.KDF.CPUs != 1) {
					t.Errorf("%s: argon2 params %s", target, ks.KDF)
				}
				seg, ok := h.DataSegment()
				if !ok || seg.Encryption != "aes-xts-plain64" || seg.Offset != 16<<20 || !seg.DynamicSize {
					t.Errorf("%s: data segment %+v (found %v)", target, seg, ok)
				}
				if len(h.Digests) != 1 || h.Digests[0].Type != "pbkdf2" || len(h.Digests[0].Keyslots) != 1 {
					t.Errorf("%s: digests %+v", target, h.Digests)
				}

				slot, vk, err := h.OpenKeyslot(f, key)
				if err != nil || slot != 0 {
					t.Fatalf("%s: OpenKeyslot = %d, %v", target, slot, err)
				}
				if !bytes.Equal(vk, wantVK) {
					t.Errorf("%s: volume key differs from cryptsetup --dump-volume-key", target)
				}

				if target != fx.hdr {
					continue
				}
				// The checks below do not depend on the target; running
				// them once keeps the Argon2 cases cheap.
				res, err := CheckKey(target, fx.key)
				if err != nil {
					t.Fatalf("%s: CheckKey: %v", target, err)
				}
				if res.Slot != 0 || res.KDF != tc.kdf || res.UUID != wantUUID || res.HeaderCopy != "primary" || res.Duration <= 0 {
					t.Errorf("%s: CheckKey = %+v", target, res)
				}
				wrong := bytes.Clone(key)
				wrong[0] ^= 1
				if _, _, err := h.OpenKeyslot(f, wrong); !errors.Is(err, ErrNoKeyslot) {
					t.Errorf("%s: wrong key: %v, want ErrNoKeyslot", target, err)
				}
			}
		})
	}
}

func itoa(n int) string { return idList([]int{n}) }

func TestSecondKeyslotAndPriority(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, t.TempDir(), []byte("first key"), append([]string{"--type", "luks2"}, pbkdf2Fast...)...)
	key2 := writeFile(t, filepath.Join(fx.dir, "key2"), []byte("second key"))
	bad := writeFile(t, filepath.Join(fx.dir, "bad"), []byte("not a key"))
	cryptsetup(t, append(append([]string{"luksAddKey", "--batch-mode", "--key-file", fx.key}, pbkdf2Fast...), fx.img, key2)...)
	cryptsetup(t, "luksHeaderBackup", fx.img, "--header-backup-file", fx.hdr+".2")

	for _, target := range []string{fx.img, fx.hdr + ".2"} {
		if res, err := CheckKey(target, key2); err != nil || res.Slot != 1 {
			t.Errorf("%s: key2: %+v, %v; want slot 1", target, res, err)
		}
		if res, err := CheckKey(target, fx.key); err != nil || res.Slot != 0 {
			t.Errorf("%s: key1: %+v, %v; want slot 0", target, res, err)
		}
		_, err := CheckKey(target, bad)
		if !errors.Is(err, ErrNoKeyslot) || !strings.Contains(err.Error(), "tried keyslots 0, 1") {
			t.Errorf("%s: bad key: %v; want ErrNoKeyslot naming slots 0, 1", target, err)
		}
	}

	// "prefer" moves slot 1 to the front, as cryptsetup tries it first.
	cryptsetup(t, "config", "--priority", "prefer", "--key-slot", "1", fx.img)
	_, h := openHeader(t, fx.img)
	if order, _ := h.keyslotOrder(); len(order) != 2 || order[0].ID != 1 || order[1].ID != 0 {
		t.Errorf("order with slot 1 preferred: %+v", order)
	}
	if _, err := CheckKey(fx.img, bad); err == nil || !strings.Contains(err.Error(), "tried keyslots 1, 0") {
		t.Errorf("bad key with prefer: %v", err)
	}

	// "ignore" hides the slot from an unqualified open, in cryptsetup too.
	cryptsetup(t, "config", "--priority", "ignore", "--key-slot", "1", fx.img)
	_, err := CheckKey(fx.img, key2)
	if !errors.Is(err, ErrNoKeyslot) || !strings.Contains(err.Error(), "priority ignore: 1") {
		t.Errorf("key2 with slot 1 ignored: %v; want ErrNoKeyslot mentioning the ignored slot", err)
	}
	if cryptsetupAccepts(t, fx.img, key2) {
		t.Errorf("cryptsetup accepts key2 for an ignored slot; test assumption broken")
	}
}

func TestKeyfileUsedRaw(t *testing.T) {
	t.Parallel()
	// cryptsetup --key-file keeps the trailing newline; so must we.
	fx := newFixture(t, t.TempDir(), []byte("hunter2\n"), append([]string{"--type", "luks2"}, pbkdf2Fast...)...)
	noNL := writeFile(t, filepath.Join(fx.dir, "key-no-newline"), []byte("hunter2"))
	empty := writeFile(t, filepath.Join(fx.dir, "empty"), nil)

	if _, err := CheckKey(fx.hdr, fx.key); err != nil {
		t.Errorf("key with newline: %v", err)
	}
	if !cryptsetupAccepts(t, fx.hdr, fx.key) || cryptsetupAccepts(t, fx.hdr, noNL) {
		t.Fatal("cryptsetup disagrees with the raw-keyfile assumption")
	}
	if _, err := CheckKey(fx.hdr, noNL); !errors.Is(err, ErrNoKeyslot) {
		t.Errorf("key without newline: %v, want ErrNoKeyslot", err)
	}
	if _, err := CheckKey(fx.hdr, empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty key file: %v", err)
	}
	if _, err := CheckKey(fx.hdr, filepath.Join(fx.dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing key file: %v", err)
	}
}

// sharedDir holds fixtures reused across tests and benchmarks; TestMain
// removes it because t.TempDir cannot outlive a single test.
var sharedDir string

func TestMain(m *testing.M) {
	if os.Getenv(oneShotEnv) != "" {
		runOneShotCheck()
	}
	flag.Parse()
	// Fuzz inputs here are ~32 KiB header images, and Go minimizes each new
	// interesting input for 60s by default, trying byte-by-byte deletions:
	// a plain "-fuzz FuzzReadHeader -fuzztime 60s" then spends nearly the
	// whole run minimizing instead of fuzzing. Cap it unless set explicitly.
	minimizeSet := false
	flag.Visit(func(f *flag.Flag) { minimizeSet = minimizeSet || f.Name == "test.fuzzminimizetime" })
	if !minimizeSet {
		if err := flag.Set("test.fuzzminimizetime", "500x"); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

var shared struct {
	sync.Mutex
	fixtures map[string]fixture
}

// sharedFixture builds a fixture once per test binary; callers must treat
// its files as read-only (copy before corrupting).
func sharedFixture(tb testing.TB, name string, key []byte, formatArgs ...string) fixture {
	tb.Helper()
	shared.Lock()
	defer shared.Unlock()
	if fx, ok := shared.fixtures[name]; ok {
		return fx
	}
	if sharedDir == "" {
		d, err := os.MkdirTemp("", "luks2-test-")
		if err != nil {
			tb.Fatal(err)
		}
		sharedDir = d
	}
	dir := filepath.Join(sharedDir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	fx := newFixture(tb, dir, key, formatArgs...)
	if shared.fixtures == nil {
		shared.fixtures = map[string]fixture{}
	}
	shared.fixtures[name] = fx
	return fx
}

// pbkdf2Header returns the bytes of a cheap header backup and its fixture.
func pbkdf2Header(t *testing.T) (hdr []byte, fx fixture) {
	t.Helper()
	fx = sharedFixture(t, "pbkdf2", []byte("pass"), append([]string{"--type", "luks2"}, pbkdf2Fast...)...)
	return readFile(t, fx.hdr), fx
}

func TestFallbackToSecondary(t *testing.T) {
	t.Parallel()
	orig, fx := pbkdf2Header(t)
	hdrSize := binary.BigEndian.Uint64(orig[8:16])
	if hdrSize != 0x4000 {
		t.Fatalf("hdr_size %#x; cryptsetup default changed?", hdrSize)
	}
	cases := map[string]func(b []byte){
		"json byte flipped":  func(b []byte) { b[binHeaderSize+20] ^= 0x01 },
		"label byte flipped": func(b []byte) { b[30] ^= 0x01 },
		"magic wiped":        func(b []byte) { clear(b[:magicLen]) },
		"hdr_size garbage":   func(b []byte) { b[8] = 0xff },
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(orig)
			corrupt(b)
			path := writeFile(t, filepath.Join(t.TempDir(), "hdr"), b)
			_, h := openHeader(t, path)
			if h.Copy != "secondary at 0x4000" || h.Offset != 0x4000 || h.PrimaryErr == nil {
				t.Errorf("copy %q offset %#x primaryErr %v; want the secondary", h.Copy, h.Offset, h.PrimaryErr)
			}
			res, err := CheckKey(path, fx.key)
			if err != nil || res.HeaderCopy != "secondary at 0x4000" {
				t.Errorf("CheckKey = %+v, %v", res, err)
			}
		})
	}

	// A JSON flip must be caught by the checksum specifically.
	b := bytes.Clone(orig)
	b[binHeaderSize+20] ^= 0x01
	h, err := ReadHeader(bytes.NewReader(b))
	if err != nil || !errors.Is(h.PrimaryErr, ErrChecksum) {
		t.Errorf("PrimaryErr = %v (err %v), want ErrChecksum", h.PrimaryErr, err)
	}

	// A damaged secondary is reported while the primary stays in use.
	b = bytes.Clone(orig)
	b[hdrSize+binHeaderSize+20] ^= 0x01
	h, err = ReadHeader(bytes.NewReader(b))
	if err != nil || h.Copy != "primary" || !errors.Is(h.SecondaryErr, ErrChecksum) {
		t.Errorf("secondary damaged: copy %q secondaryErr %v err %v", h.Copy, h.SecondaryErr, err)
	}
}

func TestBothCopiesCorrupt(t *testing.T) {
	t.Parallel()
	orig, fx := pbkdf2Header(t)
	b := bytes.Clone(orig)
	b[binHeaderSize+20] ^= 0x01
	b[0x4000+binHeaderSize+20] ^= 0x01
	path := writeFile(t, filepath.Join(t.TempDir(), "both-bad"), b)
	_, err := ReadHeader(bytes.NewReader(b))
	if !errors.Is(err, ErrChecksum) || errors.Is(err, ErrNotLUKS) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), "primary") || !strings.Contains(err.Error(), "secondary at 0x4000") {
		t.Errorf("error does not say which copies failed: %v", err)
	}
	if _, err := CheckKey(path, fx.key); !errors.Is(err, ErrChecksum) {
		t.Errorf("CheckKey: %v, want ErrChecksum", err)
	}
}

func TestLUKS1Unsupported(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, t.TempDir(), []byte("old"), "--type", "luks1", "--pbkdf-force-iterations", "1000", "--hash", "sha256")
	for _, target := range []string{fx.img, fx.hdr} {
		_, err := CheckKey(target, fx.key)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "cryptsetup convert") {
			t.Errorf("%s: %v, want ErrUnsupported suggesting cryptsetup convert", target, err)
		}
	}
}

func TestNotLUKS(t *testing.T) {
	t.Parallel()
	random := make([]byte, 64<<10)
	rand.Read(random)
	for name, data := range map[string][]byte{
		"random": random,
		"zeros":  make([]byte, 64<<10),
		"empty":  nil,
		"tiny":   []byte("LUK"),
	} {
		if _, err := ReadHeader(bytes.NewReader(data)); !errors.Is(err, ErrNotLUKS) {
			t.Errorf("%s: %v, want ErrNotLUKS", name, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	t.Parallel()
	orig, _ := pbkdf2Header(t)
	key := []byte("pass")
	for _, n := range []int{6, 100, 4095, 4096, 8192, 16383} {
		_, err := ReadHeader(bytes.NewReader(orig[:n]))
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: %v, want ErrTruncated", n, err)
		}
	}
	// Primary intact, secondary cut: usable, with the damage reported.
	for _, n := range []int{16384, 16385, 20000, 32767} {
		h, err := ReadHeader(bytes.NewReader(orig[:n]))
		if err != nil || h.Copy != "primary" || !errors.Is(h.SecondaryErr, ErrTruncated) {
			t.Errorf("cut at %d: err %v, SecondaryErr %v", n, err, h.SecondaryErr)
		}
	}
	// Metadata intact but keyslot area missing: the key cannot be judged,
	// which must not be reported as a wrong key.
	for _, n := range []int{32768, 40000, 200000} {
		r := bytes.NewReader(orig[:n])
		h, err := ReadHeader(r)
		if err != nil {
			t.Fatalf("cut at %d: %v", n, err)
		}
		_, _, err = h.OpenKeyslot(r, key)
		if !errors.Is(err, ErrTruncated) || errors.Is(err, ErrNoKeyslot) {
			t.Errorf("cut at %d: OpenKeyslot: %v, want ErrTruncated", n, err)
		}
	}
}

func TestSeedHeaderCutAfterMetadata(t *testing.T) {
	t.Parallel()
	data := readFile(t, filepath.Join("testdata", "luks2-header-32k.bin"))
	h, err := ReadHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if h.UUID != "5637dd47-f540-4fdb-b56e-099985f8ef20" || h.Label != "borg-offsite" || len(h.Keyslots) != 2 ||
		h.Keyslots[0].KDF.Type != "argon2id" || h.Keyslots[1].KDF.Type != "pbkdf2" ||
		len(h.Tokens) != 1 || h.Tokens[0].Type != "borgkit-note" || h.SecondaryErr != nil {
		t.Errorf("seed header parsed as %+v", h)
	}
	_, _, err = h.OpenKeyslot(bytes.NewReader(data), []byte("seed-key-2"))
	if !errors.Is(err, ErrTruncated) {
		t.Errorf("OpenKeyslot on cut header: %v, want ErrTruncated", err)
	}
}

// rewriteJSON edits the metadata of both header copies and re-seals their
// checksums, to build headers cryptsetup itself would never write.
func rewriteJSON(t testing.TB, b []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	b = bytes.Clone(b)
	hdrSize := binary.BigEndian.Uint64(b[8:16])
	for _, off := range []uint64{0, hdrSize} {
		area := b[off : off+hdrSize]
		js := area[binHeaderSize:]
		dec := json.NewDecoder(bytes.NewReader(bytes.TrimRight(js, "\x00")))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		clear(js)
		copy(js, out)
		reseal(area)
	}
	return b
}

func reseal(area []byte) {
	csum := area[offChecksum : offChecksum+csumFieldLen]
	clear(csum)
	sum := sha256.Sum256(area)
	copy(csum, sum[:])
}

func TestUnsupportedNamed(t *testing.T) {
	t.Parallel()
	orig, fx := pbkdf2Header(t)
	slot0 := func(m map[string]any) map[string]any {
		return m["keyslots"].(map[string]any)["0"].(map[string]any)
	}
	cases := []struct {
		name, want string
		edit       func(m map[string]any)
	}{
		{"kdf", `KDF "scrypt"`, func(m map[string]any) { slot0(m)["kdf"].(map[string]any)["type"] = "scrypt" }},
		{"cipher", `"serpent-xts-plain64"`, func(m map[string]any) { slot0(m)["area"].(map[string]any)["encryption"] = "serpent-xts-plain64" }},
		{"pbkdf2 hash", `hash "whirlpool"`, func(m map[string]any) { slot0(m)["kdf"].(map[string]any)["hash"] = "whirlpool" }},
		{"af hash", `hash "ripemd160"`, func(m map[string]any) { slot0(m)["af"].(map[string]any)["hash"] = "ripemd160" }},
		{"digest type", `type "hmac"`, func(m map[string]any) {
			m["digests"].(map[string]any)["0"].(map[string]any)["type"] = "hmac"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := rewriteJSON(t, orig, tc.edit)
			h, err := ReadHeader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = h.OpenKeyslot(bytes.NewReader(b), readFile(t, fx.key))
			if !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrNoKeyslot) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want ErrUnsupported naming %s", err, tc.want)
			}
		})
	}

	// Sanity: an untouched round trip through rewriteJSON still opens,
	// so the failures above are due to the edits alone.
	b := rewriteJSON(t, orig, func(map[string]any) {})
	h, err := ReadHeader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.OpenKeyslot(bytes.NewReader(b), readFile(t, fx.key)); err != nil {
		t.Errorf("round trip: %v", err)
	}
}

func TestMalformedJSON(t *testing.T) {
	t.Parallel()
	orig, _ := pbkdf2Header(t)
	cases := map[string]func(m map[string]any){
		"numeric offset": func(m map[string]any) {
			m["keyslots"].(map[string]any)["0"].(map[string]any)["area"].(map[string]any)["offset"] = 32768
		},
		"missing config": func(m map[string]any) { delete(m, "config") },
		"bad keyslot id": func(m map[string]any) {
			ks := m["keyslots"].(map[string]any)
			ks["99"] = ks["0"]
		},
		"area outside keyslots area": func(m map[string]any) {
			m["keyslots"].(map[string]any)["0"].(map[string]any)["area"].(map[string]any)["offset"] = "4096"
		},
		"json_size mismatch": func(m map[string]any) { m["config"].(map[string]any)["json_size"] = "4096" },
	}
	for name, edit := range cases {
		b := rewriteJSON(t, orig, edit)
		_, err := ReadHeader(bytes.NewReader(b))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestNewerSecondaryWins(t *testing.T) {
	t.Parallel()
	orig, _ := pbkdf2Header(t)
	b := bytes.Clone(orig)
	// An interrupted metadata update leaves the secondary one seqid ahead.
	sec := b[0x4000 : 0x4000+0x4000]
	binary.BigEndian.PutUint64(sec[16:24], binary.BigEndian.Uint64(sec[16:24])+1)
	reseal(sec)
	h, err := ReadHeader(bytes.NewReader(b))
	if err != nil || !strings.HasPrefix(h.Copy, "secondary at 0x4000") {
		t.Errorf("copy %q err %v; want the newer secondary", h.Copy, err)
	}
}
