package copies

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The protocol between Remote and Serve: the client writes requests, one
// JSON object a line, and closes its side; for each, the server writes
// one JSON object a line per file, then an end line.
type request struct {
	Op    string   `json:"op"`   // list | hash
	Root  string   `json:"root"` // a root the server was started with
	Dir   string   `json:"dir"`  // a repo's directory, relative to it
	Paths []string `json:"paths,omitempty"`
	// Versions asks for Dir in every version of the root's tree (its
	// top-level directories, the offsite snapshots): a listing names each
	// file VERSION/PATH, once per inode, and a hash takes such names.
	Versions bool `json:"versions,omitempty"`
	// Beside names another root whose Dir's inodes a versions listing
	// leaves out (the mirror, whose files the snapshots share).
	Beside string `json:"beside,omitempty"`
}

type reply struct {
	File
	End bool `json:"end,omitempty"`
	// Fail says why the request as a whole failed; NoRepo that Dir is not there.
	Fail   string `json:"fail,omitempty"`
	NoRepo bool   `json:"no_repo,omitempty"`
}

// Bounds on one session: a request line (1 Mi paths of a few dozen bytes)
// and how many requests it may make.
const (
	maxRequest  = 64 << 20
	maxRequests = 4096
)

var rootNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ParseRoots reads the server's roots from its argv, NAME=DIR each
// ("mirror=/mnt/backup/borgkit"): authorized_keys fixes them, so the
// client can only name them.
func ParseRoots(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, errors.New("no root to serve (NAME=DIR)")
	}
	roots := map[string]string{}
	for _, a := range args {
		name, dir, ok := strings.Cut(a, "=")
		if !ok || !rootNameRE.MatchString(name) || !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			return nil, fmt.Errorf("root %q: want NAME=/ABSOLUTE/DIR", a)
		}
		if _, dup := roots[name]; dup {
			return nil, fmt.Errorf("root %q named twice", name)
		}
		roots[name] = dir
	}
	return roots, nil
}

// Serve answers a session's requests from in on out: names, sizes and
// SHA-256 sums of regular files below the roots, nothing else. No request
// can leave a root (os.Root refuses "..", absolute paths and symlinks out
// of it), read a file's content, or change anything.
func Serve(ctx context.Context, roots map[string]string, in io.Reader, out io.Writer) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxRequest)
	for n := 0; sc.Scan(); n++ {
		if n >= maxRequests {
			return fmt.Errorf("more than %d requests in one session", maxRequests)
		}
		var req request
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return fmt.Errorf("request %d: %w", n+1, err)
		}
		if err := serveOne(ctx, roots, req, enc); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

func serveOne(ctx context.Context, roots map[string]string, req request, enc *json.Encoder) error {
	end := reply{End: true}
	dir, ok := roots[req.Root]
	switch {
	case !ok:
		end.Fail = fmt.Sprintf("no root %q", req.Root)
		return enc.Encode(end)
	case req.Op != "list" && req.Op != "hash":
		end.Fail = fmt.Sprintf("no operation %q", req.Op)
		return enc.Encode(end)
	case req.Beside != "" && (!req.Versions || req.Op != "list"):
		end.Fail = "beside is for a versions listing only"
		return enc.Encode(end)
	}
	if err := checkRel(req.Dir); err != nil {
		end.Fail = err.Error()
		return enc.Encode(end)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		// The root itself missing is an unmounted disk, never "no repo".
		end.Fail = fmt.Sprintf("root %s: %s", req.Root, errText(err))
		return enc.Encode(end)
	}
	defer root.Close()
	if req.Versions {
		if err := serveVersions(ctx, roots, root, req, &end, enc); err != nil {
			return err
		}
		return enc.Encode(end)
	}
	switch req.Op {
	case "list":
		files, err := list(ctx, root, req.Dir)
		if errors.Is(err, ErrNoRepo) {
			end.NoRepo = true
			break
		}
		if err != nil {
			end.Fail = err.Error()
			break
		}
		for _, f := range files {
			if err := enc.Encode(reply{File: f}); err != nil {
				return err
			}
		}
	case "hash":
		if _, err := root.Lstat(req.Dir); err != nil {
			end.NoRepo = true
			break
		}
		_, err := hash(ctx, root, req.Dir, req.Paths, func(f File) error { return enc.Encode(reply{File: f}) })
		if err != nil {
			end.Fail = err.Error()
		}
	}
	return enc.Encode(end)
}
