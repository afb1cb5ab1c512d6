package release

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
)

// RrsyncStep installs rrsync where r's authorized_keys line runs it, on a
// release that ships it only as documentation (Ubuntu 22.04); nil where
// the rsync package installs it.
func (r Release) RrsyncStep() plan.Step {
	if len(r.RrsyncFrom) == 0 {
		return nil
	}
	return &rrsyncInstall{release: r.Name, path: r.Rrsync, from: r.RrsyncFrom}
}

// rrsyncInstall copies the documentation's rrsync to path, executable.
type rrsyncInstall struct {
	release, path string
	from          []string
}

func (s *rrsyncInstall) ID() string { return "file." + s.path }

// file is the step that writes the first source found on h; a host
// without any (a minimized image drops /usr/share/doc) is a conflict.
func (s *rrsyncInstall) file(ctx context.Context, h host.Host) (*steps.File, string, error) {
	for _, src := range s.from {
		b, err := h.ReadFile(ctx, src)
		if host.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if strings.HasSuffix(src, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", src, err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				return nil, "", fmt.Errorf("%s: %w", src, err)
			}
		}
		// Marker: an rrsync someone put there already may be replaced by
		// the packaged one, anything else may not.
		return &steps.File{Path: s.path, Content: b, Mode: 0o755, Owner: host.Root, Marker: "rrsync"}, src, nil
	}
	return nil, "", nil
}

func (s *rrsyncInstall) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	f, src, err := s.file(ctx, h)
	if err != nil {
		return plan.Check{}, err
	}
	if f == nil {
		return plan.Conflicts(fmt.Sprintf("%s ships rrsync only as documentation, and none of %s is on %s: install rsync's rrsync as %s (executable)",
			s.release, strings.Join(s.from, ", "), h.Name(), s.path)), nil
	}
	c, err := f.Check(ctx, h)
	if c.Action.Pending() {
		c.Summary += " from " + src
		c.Diff = "" // a script of a few hundred lines, not ours to review
	}
	return c, err
}

func (s *rrsyncInstall) Apply(ctx context.Context, h host.Host) error {
	f, _, err := s.file(ctx, h)
	if err != nil {
		return err
	}
	if f == nil {
		return fmt.Errorf("no rrsync to install on %s", h.Name())
	}
	return f.Apply(ctx, h)
}
