package steps

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
)

// Secret is a file whose content borgkit generates once and never shows or
// regenerates: a repo passphrase, a LUKS keyfile. Losing it would make data
// unreadable, so an existing one is always kept.
type Secret struct {
	Path     string
	Mode     fs.FileMode
	Owner    host.Owner
	What     string // "borg passphrase of repo john-ai", for the plan
	Generate func() ([]byte, error)
	// Placeholder, when set, is what Generate writes for a secret only the
	// user can supply (an SMTP password): while the file still holds it,
	// the check carries Warn, which says what to put there.
	Placeholder []byte
	Warn        string
	// Import, when set, is where a missing secret comes from instead: a
	// hand-built setup's file, read on the host and checked there (a
	// passphrase against its repo). Its error is the plan's conflict.
	// ImportWhat says what the plan does ("copy from /root/.borg_env").
	Import     func(ctx context.Context, h host.Host) ([]byte, error)
	ImportWhat string
	// MustExist, when set, says why a new secret would be useless (an
	// existing encrypted repo's passphrase opens only that repo): a
	// missing secret is then a conflict, never generated. "" lets it be.
	MustExist func(ctx context.Context, h host.Host) (string, error)
}

func (s *Secret) ID() string { return "secret." + s.Path }

// Reads is the metadata only: a secret's content never needs to travel.
func (s *Secret) Reads() []host.Want { return []host.Want{{Path: s.Path}} }

func (s *Secret) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	fi, err := h.Lstat(ctx, s.Path)
	if host.IsNotExist(err) {
		c, err := s.missing(ctx, h)
		if err == nil && s.Import == nil && s.Placeholder != nil && c.Action == plan.Create {
			c.Warnings = append(c.Warnings, s.Warn)
		}
		return c, err
	}
	if err != nil {
		return plan.Check{}, err
	}
	if !fi.Mode.IsRegular() {
		return plan.Conflicts(fmt.Sprintf("%s is %s, not a file", s.Path, kind(fi.Mode))), nil
	}
	if fi.Size == 0 {
		return plan.Conflicts(fmt.Sprintf("%s is empty; borgkit will not use an empty secret nor replace it", s.Path)), nil
	}
	c := plan.Satisfied()
	if drift := metaDrift(h, fi, s.Mode, s.Owner); drift != "" {
		c = plan.Modifies(drift)
	}
	if s.Placeholder != nil && fi.Size == int64(len(s.Placeholder)) {
		// Read only a file of the placeholder's size, and compare it
		// here: its content is never shown.
		b, err := h.ReadFile(ctx, s.Path)
		if err != nil {
			return plan.Check{}, err
		}
		if bytes.Equal(b, s.Placeholder) {
			c.Warnings = append(c.Warnings, s.Warn)
		}
	}
	return c, nil
}

// missing is the verdict on a secret that is not there yet.
func (s *Secret) missing(ctx context.Context, h host.Host) (plan.Check, error) {
	if s.Import != nil {
		if _, err := s.Import(ctx, h); err != nil {
			return plan.Conflicts(fmt.Sprintf("%s: %v", s.What, err)), nil
		}
		return plan.Creates(fmt.Sprintf("take over %s: %s into %s, mode %04o", s.What, s.ImportWhat, s.Path, s.Mode.Perm())), nil
	}
	if s.MustExist != nil {
		why, err := s.MustExist(ctx, h)
		if err != nil {
			return plan.Check{}, err
		}
		if why != "" {
			return plan.Conflicts(why), nil
		}
	}
	return plan.Creates(fmt.Sprintf("generate %s, mode %04o", s.What, s.Mode.Perm())), nil
}

func (s *Secret) Apply(ctx context.Context, h host.Host) error {
	if _, err := h.Lstat(ctx, s.Path); err == nil {
		return fixMeta(ctx, h, s.Path, s.Mode, s.Owner)
	}
	if s.Import == nil && s.MustExist != nil {
		// The check ran before this run mounted the disk: ask again.
		if why, err := s.MustExist(ctx, h); err != nil || why != "" {
			return fmt.Errorf("%s: %s%v", s.Path, why, err)
		}
	}
	produce, what := s.Generate, "generate"
	if s.Import != nil {
		produce, what = func() ([]byte, error) { return s.Import(ctx, h) }, "take over"
	}
	data, err := produce()
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, s.What, err)
	}
	return writeFile(ctx, h, s.Path, data, s.Mode, s.Owner)
}

// Passphrase makes a 256-bit random passphrase as printable text, newline
// terminated the way `cat` hands it to borg's BORG_PASSCOMMAND.
func Passphrase() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return []byte(base64.RawURLEncoding.EncodeToString(b) + "\n"), nil
}

// Keyfile makes n random bytes, for a LUKS keyfile.
func Keyfile(n int) func() ([]byte, error) {
	return func() ([]byte, error) {
		b := make([]byte, n)
		_, err := rand.Read(b)
		return b, err
	}
}
