package luks2

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Fixtures are built with the real cryptsetup at test time so the tests
// check compatibility with what cryptsetup writes, not with our reading of
// the spec, and cryptsetup itself is the oracle for every verdict. KDF
// costs are forced low and the keyslots area small to keep this fast.

var (
	pbkdf2Fast  = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha256"}
	argon2iFast = []string{"--pbkdf", "argon2i", "--pbkdf-memory", "8192", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}
	argon2id    = []string{"--pbkdf", "argon2id", "--pbkdf-memory", "8192", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "2"}
	// smallAreas keeps a header backup near 1 MiB instead of 16 MiB.
	smallAreas = []string{"--luks2-keyslots-size", "1m"}
)

// requireCryptsetup skips without cryptsetup unless CI demands it.
func cryptsetupPath(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("cryptsetup")
	if err != nil {
		if os.Getenv("BORGKIT_REQUIRE_CRYPTSETUP") != "" {
			tb.Fatalf("BORGKIT_REQUIRE_CRYPTSETUP is set but cryptsetup is missing: %v", err)
		}
		tb.Skipf("cryptsetup not installed (apt-get install cryptsetup-bin); fixtures are made and judged by it: %v", err)
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

// verdict is the answer to "does this key open this header", in the
// three classes both tools distinguish.
type verdict string

const (
	opens   verdict = "opens"   // cryptsetup exit 0; CheckKey no error
	noKey   verdict = "no key"  // wrong key or no usable keyslot; check-key exit 1
	refused verdict = "refused" // header rejected or keyslot unusable; check-key exit 2
)

func kitVerdict(err error) verdict {
	switch {
	case err == nil:
		return opens
	case errors.Is(err, ErrNoKeyslot):
		return noKey
	}
	return refused
}

// cryptsetupVerdict runs `cryptsetup open --test-passphrase` on a private
// copy (cryptsetup may repair a damaged copy in place).
func cryptsetupVerdict(tb testing.TB, header, key string) (verdict, string) {
	tb.Helper()
	cs := cryptsetupPath(tb)
	scratch := filepath.Join(tb.TempDir(), "oracle.img")
	copyFile(tb, header, scratch)
	out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", key, "--header", scratch, scratch).CombinedOutput()
	msg := strings.TrimSpace(string(out))
	var ee *exec.ExitError
	switch {
	case err == nil:
		return opens, msg
	case !errors.As(err, &ee):
		tb.Fatalf("running cryptsetup: %v", err)
	case ee.ExitCode() == 2, strings.Contains(msg, "No usable keyslot is available"):
		return noKey, msg
	}
	return refused, fmt.Sprintf("exit %d: %s", ee.ExitCode(), msg)
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	writeFile(tb, to, readFile(tb, from))
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

// newFixture formats a sparse image with cryptsetup (LUKS2 unless the
// arguments say otherwise) and takes a header backup of it.
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
	f.backup(tb)
	return f
}

// backup refreshes the header backup after the image changed.
func (f fixture) backup(tb testing.TB) {
	tb.Helper()
	os.Remove(f.hdr)
	cryptsetup(tb, "luksHeaderBackup", f.img, "--header-backup-file", f.hdr)
	if err := os.Chmod(f.hdr, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// addKey adds a keyslot for newKey (written to a file next to the image).
func (f fixture) addKey(tb testing.TB, name string, newKey []byte, args ...string) string {
	tb.Helper()
	path := writeFile(tb, filepath.Join(f.dir, name), newKey)
	all := append([]string{"luksAddKey", "--batch-mode", "--key-file", f.key}, args...)
	cryptsetup(tb, append(all, f.img, path)...)
	return path
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

func itoa(n int) string { return strconv.Itoa(n) }

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
func sharedFixture(tb testing.TB, name string, build func(dir string) fixture) fixture {
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
	fx := build(dir)
	if shared.fixtures == nil {
		shared.fixtures = map[string]fixture{}
	}
	shared.fixtures[name] = fx
	return fx
}

// pbkdf2Header returns the bytes of a cheap single-keyslot header backup.
func pbkdf2Header(t *testing.T) (hdr []byte, fx fixture) {
	t.Helper()
	fx = sharedFixture(t, "pbkdf2", func(dir string) fixture {
		return newFixture(t, dir, []byte("pass"), append([]string{"--type", "luks2"}, pbkdf2Fast...)...)
	})
	return readFile(t, fx.hdr), fx
}

// encodeJSON writes v compactly, members in order, as cryptsetup does.
func encodeJSON(v *jsonValue) []byte {
	var b bytes.Buffer
	var enc func(v *jsonValue)
	str := func(s string) {
		b.WriteByte('"')
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20:
				fmt.Fprintf(&b, `\u%04x`, c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
	}
	enc = func(v *jsonValue) {
		switch v.kind {
		case jsonString:
			str(v.str)
		case jsonInt, jsonDouble:
			b.WriteString(v.str)
		case jsonBool:
			b.WriteString(strconv.FormatBool(v.b))
		case jsonNull:
			b.WriteString("null")
		case jsonArray:
			b.WriteByte('[')
			for i, el := range v.arr {
				if i > 0 {
					b.WriteByte(',')
				}
				enc(el)
			}
			b.WriteByte(']')
		case jsonObject:
			b.WriteByte('{')
			for i, m := range v.obj {
				if i > 0 {
					b.WriteByte(',')
				}
				str(m.key)
				b.WriteByte(':')
				enc(m.val)
			}
			b.WriteByte('}')
		}
	}
	enc(v)
	return b.Bytes()
}

// jv parses a JSON value written in a test.
func jv(tb testing.TB, text string) *jsonValue {
	tb.Helper()
	v, _, err := parseJSONArea(area(`{"v":`+text+`}`, len(text)+16))
	if err != nil {
		tb.Fatalf("test JSON %s: %v", text, err)
	}
	return v.get("v")
}

// at walks object members and array indexes; it fails the test if the
// path does not exist.
func at(tb testing.TB, v *jsonValue, path ...string) *jsonValue {
	tb.Helper()
	for _, p := range path {
		var next *jsonValue
		if v.kind == jsonArray {
			i, err := strconv.Atoi(p)
			if err == nil && i < len(v.arr) {
				next = v.arr[i]
			}
		} else {
			next = v.get(p)
		}
		if next == nil {
			tb.Fatalf("test header has no %q in %s", p, strings.Join(path, "."))
		}
		v = next
	}
	return v
}

// set replaces or appends member key of object obj.
func set(obj *jsonValue, key string, val *jsonValue) {
	for i := range obj.obj {
		if obj.obj[i].key == key {
			obj.obj[i].val = val
			return
		}
	}
	obj.obj = append(obj.obj, jsonMember{key, val})
}

func del(obj *jsonValue, key string) {
	for i := range obj.obj {
		if obj.obj[i].key == key {
			obj.obj = append(obj.obj[:i], obj.obj[i+1:]...)
			return
		}
	}
}

func rename(obj *jsonValue, from, to string) {
	for i := range obj.obj {
		if obj.obj[i].key == from {
			obj.obj[i].key = to
		}
	}
}

// clone deep-copies a value.
func clone(v *jsonValue) *jsonValue {
	c := *v
	c.arr = nil
	for _, el := range v.arr {
		c.arr = append(c.arr, clone(el))
	}
	c.obj = nil
	for _, m := range v.obj {
		c.obj = append(c.obj, jsonMember{m.key, clone(m.val)})
	}
	return &c
}

// mutation builds a header cryptsetup would never write: edits of the
// metadata tree, then of its text, then of the raw bytes; checksums are
// resealed after the metadata edits so the header gets past them.
type mutation struct {
	json func(tb testing.TB, root *jsonValue)
	text func(js []byte) []byte
	// primaryOnly leaves the secondary copy alone (by default both copies
	// get the edit, or cryptsetup would just fall back to the other one).
	primaryOnly bool
	raw         func(b []byte)
}

func (m mutation) apply(tb testing.TB, orig []byte) []byte {
	tb.Helper()
	b := bytes.Clone(orig)
	hdrSize := binary.BigEndian.Uint64(b[8:16])
	copies := []uint64{0, hdrSize}
	if m.primaryOnly {
		copies = copies[:1]
	}
	for _, off := range copies {
		if m.json == nil && m.text == nil {
			break
		}
		areaBytes := b[off : off+hdrSize]
		js := areaBytes[binHeaderSize:]
		root, _, err := parseJSONArea(js)
		if err != nil {
			tb.Fatalf("test header copy at %#x: %v", off, err)
		}
		if m.json != nil {
			m.json(tb, root)
		}
		out := encodeJSON(root)
		if m.text != nil {
			out = m.text(out)
		}
		if len(out) > len(js) {
			tb.Fatalf("mutated JSON (%d bytes) does not fit the %d-byte area", len(out), len(js))
		}
		clear(js)
		copy(js, out)
		reseal(areaBytes)
	}
	if m.raw != nil {
		m.raw(b)
	}
	return b
}

// reseal recomputes a copy's sha256 checksum.
func reseal(areaBytes []byte) {
	csum := areaBytes[offChecksum : offChecksum+csumFieldLen]
	clear(csum)
	sum := sha256.Sum256(areaBytes)
	copy(csum, sum[:])
}
