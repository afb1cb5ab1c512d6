package copies

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"

	"github.com/borgkit/borgkit/provision/digest"
)

// Dir is a copy in a directory of this machine: the USB repos, a mounted
// NAS share. Path maps a repo's name to its directory.
type Dir struct {
	Label string
	Path  func(repo string) string
}

func (d Dir) Name() string { return d.Label }

func (d Dir) List(ctx context.Context, repo string) ([]File, error) {
	root, err := openRoot(d.Path(repo))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return list(ctx, root, ".")
}

func (d Dir) Hash(ctx context.Context, repo string, paths []string) ([]File, error) {
	root, err := openRoot(d.Path(repo))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return hash(ctx, root, ".", paths, nil)
}

// openRoot opens dir as a root no path can leave, symlinks included.
func openRoot(dir string) (*os.Root, error) {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoRepo)
	}
	if err != nil {
		return nil, err
	}
	return root, nil
}

// list walks dir below root: every regular file, by its path relative to
// dir, sorted.
func list(ctx context.Context, root *os.Root, dir string) ([]File, error) {
	var out []File
	err := walk(ctx, root, dir, func(rel string, fi fs.FileInfo) error {
		if len(out) >= MaxPaths {
			return fmt.Errorf("more than %d files", MaxPaths)
		}
		out = append(out, File{Path: rel, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// walk calls each with every regular file below dir in root, by its path
// relative to dir; a dir that is not there wraps ErrNoRepo.
func walk(ctx context.Context, root *os.Root, dir string, each func(rel string, fi fs.FileInfo) error) error {
	if _, err := root.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", dir, ErrNoRepo)
	}
	err := fs.WalkDir(root.FS(), dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rel := p
		if dir != "." {
			rel = p[len(dir)+1:]
		}
		return each(rel, fi)
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	return nil
}

// hash digests each of paths (relative to dir below root), calling each,
// when set, with every result as it is made.
func hash(ctx context.Context, root *os.Root, dir string, paths []string, each func(File) error) ([]File, error) {
	if len(paths) > MaxPaths {
		return nil, fmt.Errorf("%d paths in one request, more than %d", len(paths), MaxPaths)
	}
	var out []File
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f := hashOne(ctx, root, dir, p)
		if each != nil {
			if err := each(f); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, f)
	}
	return out, nil
}

func hashOne(ctx context.Context, root *os.Root, dir, p string) File {
	f := File{Path: p}
	if err := checkRel(p); err != nil {
		f.Err = err.Error()
		return f
	}
	name := p
	if dir != "." {
		name = dir + "/" + p
	}
	fi, err := root.Lstat(name)
	if err != nil {
		f.Err = errText(err)
		return f
	}
	if !fi.Mode().IsRegular() {
		f.Err = "not a regular file"
		return f
	}
	r, err := root.Open(name)
	if err != nil {
		f.Err = errText(err)
		return f
	}
	defer r.Close()
	sum, n, err := digest.Reader(ctxReader{ctx, r})
	if err != nil {
		f.Err = errText(err)
		return f
	}
	f.Size, f.SHA256 = n, sum
	return f
}

// errText is an error without the path the caller already names.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// ctxReader stops a long read when the job is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
