// Package borghome keeps borg's own state out of the real home while tests
// run borg: borg keeps a cache, a security and a keys directory per
// repository under $HOME, and a test suite that creates hundreds of
// throwaway repos must not leave them in /root.
package borghome

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Isolate points HOME at a fresh temporary directory and drops the XDG
// directories borg would prefer, so every borg this process starts keeps
// its state there. The returned function removes it.
func Isolate() (func(), error) {
	dir, err := os.MkdirTemp("", "borgkit-test-home-")
	if err != nil {
		return nil, fmt.Errorf("test home: %w", err)
	}
	// A test that builds borgkit (go build) keeps the go command's caches
	// where they were: they hang off HOME too.
	if os.Getenv("GOCACHE") == "" {
		if c, err := os.UserCacheDir(); err == nil {
			os.Setenv("GOCACHE", filepath.Join(c, "go-build"))
		}
	}
	if h, err := os.UserHomeDir(); err == nil && os.Getenv("GOPATH") == "" {
		os.Setenv("GOPATH", filepath.Join(h, "go"))
	}
	for _, v := range []string{"XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "BORG_BASE_DIR"} {
		os.Unsetenv(v)
	}
	os.Setenv("HOME", dir)
	return func() { os.RemoveAll(dir) }, nil
}

// Main runs a test binary's tests inside Isolate, then the cleanups:
// `func TestMain(m *testing.M) { borghome.Main(m) }`.
func Main(m *testing.M, cleanups ...func()) {
	done, err := Isolate()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	done()
	os.Exit(code)
}
