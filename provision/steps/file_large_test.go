package steps_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
)

// reads counts what a host was asked to read whole and to digest.
type reads struct {
	host.Host
	read, digest int
	noDigest     bool // the host has no sha256sum
}

func (r *reads) ReadFile(ctx context.Context, p string) ([]byte, error) {
	r.read++
	return r.Host.ReadFile(ctx, p)
}

func (r *reads) Digest(ctx context.Context, p string) (string, error) {
	r.digest++
	if r.noDigest {
		return "", errors.New("sha256sum: not found")
	}
	return r.Host.Digest(ctx, p)
}

// TestFileLargeUnchangedIsNotRead: a large file that already holds its
// content is recognised by its size and digest; it is read only when it
// may differ, for the diff and the marker.
func TestFileLargeUnchangedIsNotRead(t *testing.T) {
	const marker = "github.com/borgkit/borgkit"
	want := append([]byte("\x7fELF"), bytes.Repeat([]byte("borgkit binary "+marker+"\n"), 2<<20/42)...)
	sameSize := bytes.Clone(want)
	sameSize[len(sameSize)/2] ^= 1
	foreign := bytes.ReplaceAll(want, []byte(marker), []byte(strings.Repeat("x", len(marker))))
	tests := []struct {
		name         string
		existing     []byte
		action       plan.Action
		read, digest int // during Check
		noDigest     bool
	}{
		{"same", want, plan.OK, 0, 1, false},
		{"same, on a host that cannot digest", want, plan.OK, 1, 1, true},
		{"same size, one bit differs", sameSize, plan.Modify, 1, 1, false},
		{"other size", want[:len(want)-1], plan.Modify, 1, 0, false},
		{"same size, not ours", foreign, plan.Conflict, 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, dir := rooted(t)
			p := filepath.Join(dir, "usr/local/bin/borgkit")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, tt.existing, 0o755); err != nil {
				t.Fatal(err)
			}
			r := &reads{Host: h, noDigest: tt.noDigest}
			f := &steps.File{Path: "/usr/local/bin/borgkit", Content: want, Mode: 0o755, Owner: host.Root, Foreign: steps.ForeignUnlessBuiltFrom(marker)}
			c := check(t, r, f)
			if c.Action != tt.action || r.read != tt.read || r.digest != tt.digest {
				t.Fatalf("check: %v %q after %d reads and %d digests; want %v after %d and %d",
					c.Action, c.Reason, r.read, r.digest, tt.action, tt.read, tt.digest)
			}
			if c.Action == plan.Conflict {
				return
			}
			converge(t, r, f)
			if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
				t.Fatal("the file does not hold the content after apply")
			}
		})
	}
}
