package copies

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
)

// Remote is a copy on another host, reached through Shell: an ssh argv
// whose key the far side authorized for Serve only (`borgkit job
// serve-hashes NAME=DIR`), so whatever the argv asks, Serve answers.
type Remote struct {
	Label string
	Shell []string
	// Root is the name of the far side's tree ("mirror"); Dir maps a
	// repo's name to its directory below it.
	Root string
	Dir  func(repo string) string
	Exec host.Host
	// Versions is a root of versions of the tree (the offsite snapshots):
	// List names each file VERSION/PATH, once per inode, leaving out the
	// inodes of the root named Beside (the mirror).
	Versions bool
	Beside   string
}

func (r Remote) Name() string { return r.Label }

func (r Remote) List(ctx context.Context, repo string) ([]File, error) {
	return r.ask(ctx, request{Op: "list", Root: r.Root, Dir: r.Dir(repo), Versions: r.Versions, Beside: r.Beside})
}

func (r Remote) Hash(ctx context.Context, repo string, paths []string) ([]File, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	return r.ask(ctx, request{Op: "hash", Root: r.Root, Dir: r.Dir(repo), Paths: paths, Versions: r.Versions})
}

func (r Remote) ask(ctx context.Context, req request) ([]File, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	res, err := r.Exec.Run(ctx, host.Cmd{Argv: r.Shell, Stdin: bytes.NewReader(append(b, '\n'))})
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", r.Label, req.Op, req.Dir, err)
	}
	return readReplies(bytes.NewReader(res.Stdout), req)
}

// readReplies reads one request's answer; a session cut short (no end
// line) is an error, never a shorter listing.
func readReplies(in io.Reader, req request) ([]File, error) {
	dec := json.NewDecoder(in)
	var out []File
	for {
		var rp reply
		if err := dec.Decode(&rp); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the answer ended early")
			}
			return nil, fmt.Errorf("%s %s: %w", req.Op, req.Dir, err)
		}
		switch {
		case rp.End && rp.NoRepo:
			return nil, fmt.Errorf("%s: %w", req.Dir, ErrNoRepo)
		case rp.End && rp.Fail != "":
			return nil, fmt.Errorf("%s %s: %s", req.Op, req.Dir, rp.Fail)
		case rp.End && req.Op == "hash" && len(out) != len(req.Paths):
			return nil, fmt.Errorf("hash %s: %d answers to %d paths", req.Dir, len(out), len(req.Paths))
		case rp.End:
			return out, nil
		}
		if len(out) >= MaxPaths {
			return nil, fmt.Errorf("%s %s: more than %d files", req.Op, req.Dir, MaxPaths)
		}
		// A listing names plain paths; a hash answers the paths asked, in
		// order, whatever they were.
		if req.Op == "hash" {
			if len(out) >= len(req.Paths) || rp.Path != req.Paths[len(out)] {
				return nil, fmt.Errorf("hash %s: answer %q out of order", req.Dir, rp.Path)
			}
		} else if err := checkRel(rp.Path); err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Op, req.Dir, err)
		}
		out = append(out, rp.File)
	}
}

// ShellArgv splits an ssh command line as rsync's -e does (on spaces, no
// quoting) and appends the destination.
func ShellArgv(ssh, dest string) []string {
	return append(strings.Fields(ssh), dest)
}
