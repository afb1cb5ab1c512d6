package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular says the config path names something other than a regular
// file: a named pipe would block the read forever, a device (/dev/zero)
// would never end it.
var ErrNotRegular = errors.New("a config must be a regular file")

// ReadFile reads a config file: a regular file of at most MaxSize bytes.
// It returns as soon as ctx is done, even while the read itself hangs (a
// file on a stalled network mount), so SIGINT and SIGTERM stop a load.
func ReadFile(ctx context.Context, path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading would wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is %s: %w", path, kindOf(fi.Mode()), ErrNotRegular)
	}
	if fi.Size() > MaxSize {
		f.Close()
		return nil, tooLarge(path, fi.Size())
	}
	data, err := readContext(ctx, f, MaxSize)
	switch {
	case errors.Is(err, errTooLarge):
		return nil, tooLarge(path, -1)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// readContext reads r to its end and closes it, giving up when ctx is done:
// the blocked read is left to end with the process, as a load is never
// retried.
func readContext(ctx context.Context, r io.ReadCloser, limit int64) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer r.Close()
		data, err := readAtMost(r, limit)
		done <- result{data, err}
	}()
	select {
	case res := <-done:
		return res.data, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var errTooLarge = errors.New("too large")

// readAtMost reads r to its end, or fails with errTooLarge once it has
// given more than limit bytes: a file that grows after the size check,
// or one that reports no size (/proc), is still bounded.
func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

func tooLarge(path string, size int64) *Problem {
	msg := fmt.Sprintf("config is over the limit of %d bytes (1 MiB): a site's config is a few kilobytes", MaxSize)
	if size >= 0 {
		msg = fmt.Sprintf("config is %d bytes, over the limit of %d (1 MiB): a site's config is a few kilobytes", size, MaxSize)
	}
	return &Problem{File: path, Err: ErrLimit, Msg: msg}
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// LoadContext reads and parses the config at path, giving up when ctx is
// done. data is the file as read, for callers that install it.
func LoadContext(ctx context.Context, path string) (cfg *Config, data []byte, err error) {
	data, err = ReadFile(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	// Parsing a file within the limits takes at most a second or two;
	// a signal still ends the wait at once.
	type result struct {
		cfg *Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := Parse(path, data)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.cfg, data, r.err
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("parse %s: %w", path, ctx.Err())
	}
}
