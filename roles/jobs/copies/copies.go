package copies

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
)

// File is one regular file of a repo in a copy, by its path relative to
// the repo's directory ("data/0/17", "nonce").
type File struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// SHA256 is set by Hash; Err says why a file could not be hashed
	// (gone, not a regular file).
	SHA256 string `json:"sha256,omitempty"`
	Err    string `json:"error,omitempty"`
}

// Copy is one place holding copies of a host's repos.
type Copy interface {
	// Name is the copy in mails and on the dashboard: "nas", "offsite".
	Name() string
	// List returns every regular file below repo's directory in the
	// copy, sorted by path. A copy that does not hold the repo yet
	// returns an error wrapping ErrNoRepo; symlinks and other non-regular
	// files are left out.
	List(ctx context.Context, repo string) ([]File, error)
	// Hash returns the named files of repo with their SHA-256 (or Err),
	// in the order asked.
	Hash(ctx context.Context, repo string, paths []string) ([]File, error)
}

// ErrNoRepo is a copy without the repo's directory.
var ErrNoRepo = errors.New("the copy does not hold this repo")

// MaxPaths bounds the paths of one Hash request, and of one listing: a
// repo of that many files is beyond what borgkit is built for.
const MaxPaths = 1 << 20

// checkRel refuses a path that is not plainly below a repo's directory:
// absolute, with "..", ".", empty parts or control characters.
func checkRel(p string) error {
	if p == "" || len(p) > 4096 || path.IsAbs(p) || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("path %q is not a plain relative path", p)
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("path %q has a control character", p)
		}
	}
	return nil
}

// Index maps a listing by path.
func Index(files []File) map[string]File {
	m := make(map[string]File, len(files))
	for _, f := range files {
		m[f.Path] = f
	}
	return m
}
