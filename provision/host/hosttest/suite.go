// Package hosttest is the contract of host.Host as tests: every
// implementation runs the same suite, so local, rooted and SSH hosts cannot
// drift apart.
package hosttest

import (
	"context"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
)

// NewHost returns a fresh host for one subtest and a scratch directory on it,
// as the host sees it. The directory exists and is empty; the host is closed
// by the caller's t.Cleanup.
type NewHost func(t *testing.T) (h host.Host, root string)

// Run runs the whole suite against the hosts newHost makes.
func Run(t *testing.T, newHost NewHost) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h host.Host, root string)
	}{
		{"RunArgvExact", testRunArgvExact},
		{"RunStdin", testRunStdin},
		{"RunNilStdin", testRunNilStdin},
		{"RunEnv", testRunEnv},
		{"RunDir", testRunDir},
		{"RunExitError", testRunExitError},
		{"RunMissingProgram", testRunMissingProgram},
		{"RunContextTimeout", testRunContextTimeout},
		{"RunLargeOutput", testRunLargeOutput},
		{"WriteFileModes", testWriteFileModes},
		{"WriteFileOverwrite", testWriteFileOverwrite},
		{"WriteFileNoTempLeft", testWriteFileNoTempLeft},
		{"WriteFileSymlinkRefused", testWriteFileSymlinkRefused},
		{"WriteFileNotADirectory", testWriteFileNotADirectory},
		{"RelativePathRefused", testRelativePathRefused},
		{"ReadFileMissing", testReadFileMissing},
		{"Digest", testDigest},
		{"Lstat", testLstat},
		{"ReadDir", testReadDir},
		{"MkdirAll", testMkdirAll},
		{"Chmod", testChmod},
		{"Chown", testChown},
		{"ChmodSymlinkRefused", testChmodSymlinkRefused},
		{"Remove", testRemove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, root := newHost(t)
			tt.fn(t, h, root)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// run runs argv and fails the test on any error.
func run(t *testing.T, h host.Host, argv ...string) string {
	t.Helper()
	res, err := h.Run(ctx(t), host.Cmd{Argv: argv})
	if err != nil {
		t.Fatalf("%s: %v", host.QuoteArgv(argv), err)
	}
	return string(res.Stdout)
}

func write(t *testing.T, h host.Host, path, data string, mode fs.FileMode) {
	t.Helper()
	if err := h.WriteFile(ctx(t), path, []byte(data), mode, host.Owner{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, h host.Host, path string) string {
	t.Helper()
	b, err := h.ReadFile(ctx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lstat(t *testing.T, h host.Host, path string) host.FileInfo {
	t.Helper()
	fi, err := h.Lstat(ctx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// ids returns the uid and gid the host's programs and file operations run as.
func ids(t *testing.T, h host.Host) (uid, gid int) {
	t.Helper()
	parse := func(s string) int {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("id: %q", s)
		}
		return n
	}
	return parse(run(t, h, "id", "-u")), parse(run(t, h, "id", "-g"))
}

// otherOwner is an owner the files can be given: arbitrary ids when the host
// acts as root, its own ids otherwise (and then chown is not really tested).
func otherOwner(t *testing.T, h host.Host) host.Owner {
	uid, gid := ids(t, h)
	if uid == 0 {
		return host.Owner{UID: 4242, GID: 4343}
	}
	return host.Owner{UID: uid, GID: gid}
}

// ls lists a directory's entries, dot files included, through the host.
func ls(t *testing.T, h host.Host, dir string) []string {
	t.Helper()
	out := strings.TrimSpace(run(t, h, "ls", "-A", h.Path(dir)))
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}
