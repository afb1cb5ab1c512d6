package fingerprint_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/recovery/fingerprint"
)

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"pass": "correct horse\n", "key": "BORG_KEY abc\nblob\n", "hdr": "LUKS\xba\xbe"}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := fingerprint.New("john-ai", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), "00ff")
	if err != nil {
		t.Fatal(err)
	}
	r.Add(fingerprint.KindPassphrase, "john-ai/r", filepath.Join(dir, "pass"), []byte(files["pass"]))
	r.Add(fingerprint.KindBorgKey, "john-ai/r", filepath.Join(dir, "key"), []byte(files["key"]))
	r.Add(fingerprint.KindLUKSHeader, "pi/backup", filepath.Join(dir, "hdr"), []byte(files["hdr"]))
	data, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "correct horse") {
		t.Fatal("the record holds the passphrase")
	}
	recPath := filepath.Join(dir, fingerprint.Name)
	if err := os.WriteFile(recPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	read := func(_ context.Context, p string) ([]byte, error) { return os.ReadFile(p) }
	if st := fingerprint.Check(context.Background(), recPath, read); st == nil || st.Stale() {
		t.Fatalf("unchanged secrets: %+v", st)
	}

	tests := []struct {
		name string
		do   func(t *testing.T)
		want string
	}{
		{"passphrase changed", func(t *testing.T) { os.WriteFile(filepath.Join(dir, "pass"), []byte("new\n"), 0o600) },
			"the borg passphrase of john-ai/r (" + filepath.Join(dir, "pass") + ") changed"},
		{"export gone", func(t *testing.T) { os.Remove(filepath.Join(dir, "key")) },
			"the borg key export of john-ai/r (" + filepath.Join(dir, "key") + ") is gone"},
		{"header same content, new file", func(t *testing.T) {
			os.Remove(filepath.Join(dir, "hdr"))
			os.WriteFile(filepath.Join(dir, "hdr"), []byte(files["hdr"]), 0o600)
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.do(t)
			st := fingerprint.Check(context.Background(), recPath, read)
			if tc.want == "" {
				for _, c := range st.Changes {
					if strings.Contains(c, "header") {
						t.Errorf("unchanged content reported: %q", c)
					}
				}
				return
			}
			if !strings.Contains(strings.Join(st.Changes, "\n"), tc.want) {
				t.Errorf("changes %q, want %q", st.Changes, tc.want)
			}
		})
	}

	// An unreadable secret is not called up to date.
	deny := func(_ context.Context, p string) ([]byte, error) {
		if p == recPath {
			return os.ReadFile(p)
		}
		return nil, errors.New("permission denied")
	}
	if st := fingerprint.Check(context.Background(), recPath, deny); !st.Stale() || !strings.Contains(st.Changes[0], "cannot be read") {
		t.Errorf("unreadable: %+v", st)
	}
}

func TestCheckRecord(t *testing.T) {
	dir := t.TempDir()
	read := func(_ context.Context, p string) ([]byte, error) { return os.ReadFile(p) }
	if st := fingerprint.Check(context.Background(), filepath.Join(dir, "none.json"), read); st != nil {
		t.Errorf("no record: %+v", st)
	}
	for name, body := range map[string]string{
		"damaged":      `{"format":`,
		"wrong format": `{"format":"other/1","hmac_key":"00112233445566778899aabbccddeeff"}`,
		"short key":    `{"format":"` + fingerprint.Format + `","hmac_key":"00"}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, []byte(body), 0o600)
		if st := fingerprint.Check(context.Background(), p, read); !st.Stale() || st.Err == "" {
			t.Errorf("%s: %+v", name, st)
		}
	}
}
