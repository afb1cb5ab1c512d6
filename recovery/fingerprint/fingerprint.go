// Package fingerprint is the record a recovery bundle leaves behind on
// each host whose secrets it packed: a keyed digest of every key export,
// passphrase, LUKS keyfile and header backup, ZFS key and share credential
// — never the secrets themselves — so the dashboard and the stale check can
// tell, long after the stick went into a drawer, that a secret changed and
// the bundle no longer opens what it claims to ("RECOVERY BUNDLE OUT OF
// DATE"). The bundle writes it; roles/jobs reads it: one type for both.
package fingerprint

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
)

// Name is the record's file in borgkit's state directory (0600: the
// digests are keyed, but no reader but root needs them). The leading dot
// keeps it out of the job records the state store lists (as the last good
// config is).
const Name = ".recovery-bundle.json"

// File is where a host keeps the record of the last bundle.
var File = path.Join(layout.StateDir, Name)

// Format names the record's layout; a reader refuses any other.
const Format = "borgkit-bundle-fingerprint/1"

// Kinds of secret, with the words the warning uses.
const (
	KindLUKSKeyfile = "LUKS keyfile"
	KindLUKSHeader  = "LUKS header backup"
	KindBorgKey     = "borg key export"
	KindPassphrase  = "borg passphrase"
	KindZFSKey      = "ZFS key"
	KindCredentials = "share credentials"
)

// Record is what the bundle leaves on one host: when it was written, the
// digest of its MANIFEST.sha256 (to match a stick to its record), and the
// secrets kept on this host that it packed.
type Record struct {
	Format  string    `json:"format"`
	Host    string    `json:"host"`
	Written time.Time `json:"written"`
	// Manifest is the SHA-256 of the bundle's MANIFEST.sha256.
	Manifest string `json:"manifest_sha256"`
	// Key keys the digests (hex): a plain SHA-256 of a short passphrase
	// could be reversed by guessing; a random key per record makes every
	// guess cost a record of its own and no table is reusable.
	Key     string   `json:"hmac_key"`
	Secrets []Secret `json:"secrets"`
}

// Secret is one secret as the bundle packed it.
type Secret struct {
	Kind string `json:"kind"`
	// For is what it unlocks (HOST/DISK, HOST/REPO, HOST/POOL/DATASET).
	For  string `json:"for"`
	Path string `json:"path"` // on the host
	// Digest is HMAC-SHA256(Key, content), hex.
	Digest string `json:"hmac_sha256"`
}

// Name is how a warning names the secret.
func (s Secret) Name() string { return fmt.Sprintf("the %s of %s (%s)", s.Kind, s.For, s.Path) }

// New starts the record of host with a fresh random key.
func New(host string, written time.Time, manifest string) (*Record, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("fingerprint key: %w", err)
	}
	return &Record{Format: Format, Host: host, Written: written.UTC(), Manifest: manifest, Key: hex.EncodeToString(k)}, nil
}

// Add records one secret's content.
func (r *Record) Add(kind, forID, p string, content []byte) {
	r.Secrets = append(r.Secrets, Secret{Kind: kind, For: forID, Path: p, Digest: r.digest(content)})
}

func (r *Record) digest(content []byte) string {
	k, _ := hex.DecodeString(r.Key)
	m := hmac.New(sha256.New, k)
	m.Write(content)
	return hex.EncodeToString(m.Sum(nil))
}

// Encode is the record as the file holds it.
func (r *Record) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode bundle fingerprint: %w", err)
	}
	return append(b, '\n'), nil
}

// Decode reads a record; name is for the error.
func Decode(name string, b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bundle fingerprint %s is damaged: %w", name, err)
	}
	if r.Format != Format {
		return nil, fmt.Errorf("bundle fingerprint %s has format %q, this borgkit reads %q", name, r.Format, Format)
	}
	if k, err := hex.DecodeString(r.Key); err != nil || len(k) < 16 {
		return nil, fmt.Errorf("bundle fingerprint %s: hmac_key is not a hex key of at least 16 bytes", name)
	}
	return &r, nil
}

// Change is a secret that no longer is what the bundle holds.
type Change struct {
	Secret
	// Gone is true when the file is no longer there; Err when it could not
	// be read (then the bundle cannot be called up to date either).
	Gone bool
	Err  error
}

// String is the change in a sentence's words.
func (c Change) String() string {
	switch {
	case c.Gone:
		return c.Name() + " is gone"
	case c.Err != nil:
		return fmt.Sprintf("%s cannot be read: %v", c.Name(), c.Err)
	}
	return c.Name() + " changed"
}

// Reader reads a file of the host the record belongs to.
type Reader func(ctx context.Context, p string) ([]byte, error)

// Compare reads every recorded secret as it is now and returns those that
// differ from what the bundle packed (none: the bundle is up to date).
func (r *Record) Compare(ctx context.Context, read Reader) []Change {
	var out []Change
	for _, s := range r.Secrets {
		b, err := read(ctx, s.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, Change{Secret: s, Gone: true})
		case err != nil:
			out = append(out, Change{Secret: s, Err: err})
		case !hmac.Equal([]byte(r.digest(b)), []byte(s.Digest)):
			out = append(out, Change{Secret: s})
		}
	}
	return out
}

// Status is what the dashboard and the stale check know of the bundle:
// nil Record when no bundle was ever written from this host's secrets.
type Status struct {
	Written time.Time `json:"written"`
	Changes []string  `json:"changes,omitempty"`
	// Err is a record that could not be read: the bundle's state is unknown.
	Err string `json:"error,omitempty"`
}

// OutOfDate is the headline the dashboard and the mail use.
const OutOfDate = "RECOVERY BUNDLE OUT OF DATE"

// Check loads the record at recordPath (a local file: the state
// directory) and compares it with the host's secrets as read reads them; a
// host without a record gets nil (no bundle holds its secrets, or none was
// written).
func Check(ctx context.Context, recordPath string, read Reader) *Status {
	b, err := os.ReadFile(recordPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &Status{Err: err.Error()}
	}
	r, err := Decode(recordPath, b)
	if err != nil {
		return &Status{Err: err.Error()}
	}
	st := &Status{Written: r.Written}
	for _, c := range r.Compare(ctx, read) {
		st.Changes = append(st.Changes, c.String())
	}
	return st
}

// Stale reports whether the bundle no longer matches (or cannot be
// checked against) the host's secrets.
func (s *Status) Stale() bool { return s != nil && (len(s.Changes) > 0 || s.Err != "") }
