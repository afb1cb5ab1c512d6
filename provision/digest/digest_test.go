package digest_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/digest"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, data, sum string
	}{
		// sha256sum's own output for each input.
		{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"big", strings.Repeat("a", 1000000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.data), 0o600); err != nil {
			t.Fatal(err)
		}
		sum, n, err := digest.File(p)
		if err != nil || sum != tc.sum || n != int64(len(tc.data)) {
			t.Errorf("%s: got %s %d %v, want %s %d", tc.name, sum, n, err, tc.sum, len(tc.data))
		}
	}
	if _, _, err := digest.File(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want not-exist", err)
	}
	if _, _, err := digest.File(dir); err == nil {
		t.Error("a directory digested without error")
	}
}
