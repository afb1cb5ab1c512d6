package jobs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
)

func TestServeKey(t *testing.T) {
	dir := t.TempDir()
	keyfile := filepath.Join(dir, "pi.key")
	os.WriteFile(keyfile, []byte("0123456789abcdef"), 0o400)
	src := strings.Replace(string(config.Example()), "        luks:\n          key_host: john-ai\n",
		"        luks:\n          key_host: john-ai\n          keyfile: "+keyfile+"\n", 1)
	cfg, err := config.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	revoked := filepath.Join(dir, "revoked")
	os.Mkdir(revoked, 0o755)
	tests := []struct {
		name, self, host string
		revoke           bool
		want, err        string
	}{
		{"the Pi's key", "john-ai", "pi", false, "0123456789abcdef", ""},
		{"not an offsite host", "john-ai", "archive", false, "", "not an offsite host"},
		{"unknown host", "john-ai", "nope", false, "", "not an offsite host"},
		{"served by another server", "archive", "pi", false, "", "not an offsite host unlocked by archive"},
		{"revoked", "john-ai", "pi", true, "", "unlock revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.revoke {
				os.WriteFile(filepath.Join(revoked, tt.host), []byte("x"), 0o644)
				defer os.Remove(filepath.Join(revoked, tt.host))
			}
			var out bytes.Buffer
			err := jobs.ServeKey(context.Background(), cfg, tt.self, tt.host, revoked, &out)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || out.Len() != 0 {
					t.Fatalf("err %v, out %q", err, out.String())
				}
				return
			}
			if err != nil || out.String() != tt.want {
				t.Fatalf("err %v, out %q", err, out.String())
			}
		})
	}
}
