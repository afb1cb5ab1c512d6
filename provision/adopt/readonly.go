package adopt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/tools"
)

// ErrWrite is what a read-only host answers to anything that would
// change it.
var ErrWrite = errors.New("adopt reads a host and never changes it")

// readOnly lets adopt read a host and run only programs that read: every
// file call that writes fails, and a program outside the list below is
// refused before it starts. borg gets a private scratch directory (its
// cache and security state) in /tmp, made and removed here, and reads the
// repos with --bypass-lock, so not even a lock file is written into them.
type readOnly struct {
	host.Host
	scratch string
}

// reads are the programs adopt may run, with the first arguments that
// keep them reading.
var reads = map[string][][]string{
	tools.Find:       {nil},
	tools.Findmnt:    {nil},
	tools.Blkid:      {nil},
	tools.Printenv:   {nil},
	tools.Cryptsetup: {{"luksUUID"}, {"isLuks"}, {"status"}, {"open", "--test-passphrase"}},
	tools.Borg:       {{"list", "--json", "--bypass-lock"}},
	tools.Mktemp:     {{"-d", "/tmp/borgkit-adopt.XXXXXX"}},
}

func (r *readOnly) Run(ctx context.Context, c host.Cmd) (host.Result, error) {
	if err := r.allowed(c.Argv); err != nil {
		return host.Result{ExitCode: -1}, err
	}
	return r.Host.Run(ctx, c)
}

func (r *readOnly) allowed(argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("%w: empty command", ErrWrite)
	}
	prog := path.Base(argv[0])
	if prog == tools.Rm && r.scratch != "" && slices.Equal(argv[1:], []string{"-rf", "--", r.scratch}) {
		return nil
	}
	for name, prefixes := range reads {
		if path.Base(tools.Argv(name)[0]) != prog {
			continue
		}
		for _, p := range prefixes {
			if len(argv)-1 >= len(p) && slices.Equal(argv[1:1+len(p)], p) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %s is not a program adopt runs", ErrWrite, strings.Join(argv, " "))
}

func (r *readOnly) WriteFile(context.Context, string, []byte, fs.FileMode, host.Owner) error {
	return ErrWrite
}
func (r *readOnly) MkdirAll(context.Context, string, fs.FileMode, host.Owner) error { return ErrWrite }
func (r *readOnly) Chmod(context.Context, string, fs.FileMode) error                { return ErrWrite }
func (r *readOnly) Chown(context.Context, string, host.Owner) error                 { return ErrWrite }
func (r *readOnly) Remove(context.Context, string) error                            { return ErrWrite }

// Scratch makes borg's private directory on the host.
func (r *readOnly) makeScratch(ctx context.Context) (string, error) {
	res, err := r.Host.Run(ctx, host.Command(tools.Mktemp, "-d", "/tmp/borgkit-adopt.XXXXXX"))
	if err != nil {
		return "", fmt.Errorf("scratch directory for borg: %w", err)
	}
	r.scratch = strings.TrimSpace(string(res.Stdout))
	return r.scratch, nil
}

func (r *readOnly) removeScratch(ctx context.Context) {
	if r.scratch != "" {
		_, _ = r.Host.Run(context.WithoutCancel(ctx), host.Command(tools.Rm, "-rf", "--", r.scratch))
		r.scratch = ""
	}
}
