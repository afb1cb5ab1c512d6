package copies

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
)

// TestMain lets the test binary serve as the far side of Remote: with
// BORGKIT_TEST_SERVE set it runs Serve on stdin and stdout, as the forced
// command does over ssh.
func TestMain(m *testing.M) {
	if v := os.Getenv("BORGKIT_TEST_SERVE"); v != "" {
		roots, err := ParseRoots(strings.Fields(v))
		if err == nil {
			err = Serve(context.Background(), roots, os.Stdin, os.Stdout)
		}
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tree makes a repo-like tree and, beside it, a secret the server must
// never reach.
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "mirror")
	outside = filepath.Join(base, "secret")
	for p, data := range map[string]string{
		"system/config":    "[repository]\n",
		"system/nonce":     "0123456789abcdef",
		"system/data/0/1":  "one",
		"system/data/0/17": strings.Repeat("x", 1000),
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o700)
		os.WriteFile(filepath.Join(root, p), []byte(data), 0o600)
	}
	os.WriteFile(outside, []byte("do not read"), 0o600)
	os.Symlink(outside, filepath.Join(root, "system/escape"))
	os.Symlink("../../secret", filepath.Join(root, "system/data/rel-escape"))
	syscall.Mkfifo(filepath.Join(root, "system/fifo"), 0o600)
	return root, outside
}

func remote(t *testing.T, root string) Remote {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Remote{Label: "offsite", Root: "mirror", Dir: func(r string) string { return r },
		Shell: []string{"env", "BORGKIT_TEST_SERVE=mirror=" + root, exe}, Exec: host.NewLocal("t")}
}

// TestDirAndRemoteAgree: the local copy and the remote one (the real Serve
// in another process) list and hash the same tree alike, and leave out
// what is not a regular file.
func TestDirAndRemoteAgree(t *testing.T) {
	root, _ := tree(t)
	ctx := context.Background()
	for _, c := range []Copy{
		Dir{Label: "nas", Path: func(r string) string { return filepath.Join(root, r) }},
		remote(t, root),
	} {
		files, err := c.List(ctx, "system")
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		var got []string
		for _, f := range files {
			got = append(got, f.Path)
		}
		if strings.Join(got, " ") != "config data/0/1 data/0/17 nonce" {
			t.Fatalf("%s lists %v", c.Name(), got)
		}
		hashed, err := c.Hash(ctx, "system", []string{"data/0/1", "escape", "data/rel-escape", "../secret", "/etc/passwd", "fifo", "gone"})
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		// sha256sum of "one"
		if hashed[0].SHA256 != "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed" || hashed[0].Size != 3 {
			t.Fatalf("%s: %+v", c.Name(), hashed[0])
		}
		for _, f := range hashed[1:] {
			if f.SHA256 != "" || f.Err == "" {
				t.Errorf("%s hashed %+v", c.Name(), f)
			}
		}
		if _, err := c.List(ctx, "absent"); !errors.Is(err, ErrNoRepo) {
			t.Errorf("%s: absent repo: %v", c.Name(), err)
		}
	}
}

// TestServeRefuses: requests naming another root, a directory outside
// the root, or an unknown operation fail without an answer about files.
func TestServeRefuses(t *testing.T) {
	root, _ := tree(t)
	roots := map[string]string{"mirror": root}
	for _, req := range []string{
		`{"op":"list","root":"etc","dir":"system"}`,
		`{"op":"list","root":"mirror","dir":"../"}`,
		`{"op":"list","root":"mirror","dir":"/etc"}`,
		`{"op":"list","root":"mirror","dir":"system/escape"}`,
		`{"op":"read","root":"mirror","dir":"system"}`,
		`{"op":"hash","root":"mirror","dir":"system","paths":["../../secret"]}`,
	} {
		var out bytes.Buffer
		if err := Serve(context.Background(), roots, strings.NewReader(req+"\n"), &out); err != nil {
			t.Fatalf("%s: %v", req, err)
		}
		if strings.Contains(out.String(), "sha256") && strings.Contains(out.String(), `"sha256":"`) || strings.Contains(out.String(), "do not read") {
			t.Errorf("%s answered %s", req, out.String())
		}
		if !strings.Contains(out.String(), `"end":true`) {
			t.Errorf("%s: no end line: %s", req, out.String())
		}
	}
	// Unknown fields and garbage end the session.
	for _, req := range []string{`{"op":"list","root":"mirror","dir":"system","x":1}`, `not json`} {
		if err := Serve(context.Background(), roots, strings.NewReader(req+"\n"), &bytes.Buffer{}); err == nil {
			t.Errorf("%s accepted", req)
		}
	}
}

func TestParseRoots(t *testing.T) {
	if r, err := ParseRoots([]string{"mirror=/mnt/backup/borgkit", "snapshots=/mnt/backup/snap"}); err != nil || r["snapshots"] != "/mnt/backup/snap" {
		t.Fatalf("%v %v", r, err)
	}
	for _, bad := range [][]string{nil, {"mirror"}, {"mirror=rel"}, {"Mirror=/x"}, {"m=/x/../y"}, {"m=/x", "m=/y"}} {
		if _, err := ParseRoots(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestRemoteCutShort: an answer without its end line is an error, never
// a shorter listing (a dropped connection must not look like a repo that
// lost files).
func TestRemoteCutShort(t *testing.T) {
	_, err := readReplies(strings.NewReader(`{"path":"config","size":3}`+"\n"), request{Op: "list", Dir: "system"})
	if err == nil {
		t.Fatal("a listing without its end was accepted")
	}
}

// TestVersionsOncePerInode: the snapshots root lists each inode once, in
// the oldest snapshot that holds it, leaves out those the mirror holds and
// a snapshot being made, and hashes VERSION/PATH names and nothing outside.
func TestVersionsOncePerInode(t *testing.T) {
	root, _ := tree(t)
	snaps := filepath.Join(filepath.Dir(root), "snapshots")
	mk := func(p, data string) {
		os.MkdirAll(filepath.Dir(filepath.Join(snaps, p)), 0o700)
		if err := os.WriteFile(filepath.Join(snaps, p), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := func(from, to string) {
		os.MkdirAll(filepath.Dir(to), 0o700)
		if err := os.Link(from, to); err != nil {
			t.Fatal(err)
		}
	}
	// v1 and v2 share the mirror's data/0/17 and a segment the mirror has
	// dropped (data/0/5); v2 also has one of its own; .partial-v3 is being
	// made.
	for _, v := range []string{"v1", "v2", ".partial-v3"} {
		link(filepath.Join(root, "system/data/0/17"), filepath.Join(snaps, v, "system/data/0/17"))
	}
	mk("v1/system/data/0/5", "five")
	link(filepath.Join(snaps, "v1/system/data/0/5"), filepath.Join(snaps, "v2/system/data/0/5"))
	mk("v2/system/data/0/9", "nine")
	mk(".partial-v3/system/data/0/12", "twelve")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := Remote{Label: "offsite-snapshots", Root: "snapshots", Versions: true, Beside: "mirror", Dir: func(r string) string { return r },
		Shell: []string{"env", "BORGKIT_TEST_SERVE=mirror=" + root + " snapshots=" + snaps, exe}, Exec: host.NewLocal("t")}
	ctx := context.Background()
	files, err := c.List(ctx, "system")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Path)
	}
	if strings.Join(got, " ") != "v1/data/0/5 v2/data/0/9" {
		t.Fatalf("listed %v, want each inode once, none of the mirror's", got)
	}
	hashed, err := c.Hash(ctx, "system", []string{"v2/data/0/5", "v1/data/0/17", ".partial-v3/data/0/12", "v1/../../mirror/system/nonce", "data/0/5", "v1/escape"})
	if err != nil {
		t.Fatal(err)
	}
	// sha256sum of "five"
	if hashed[0].SHA256 != "222b0bd51fcef7e65c2e62db2ed65457013bab56be6fafeb19ee11d453153c80" || hashed[0].Size != 4 || hashed[0].Path != "v2/data/0/5" {
		t.Fatalf("%+v", hashed[0])
	}
	if hashed[1].SHA256 == "" || hashed[1].Size != 1000 {
		t.Fatalf("a file the mirror shares is still hashed when asked: %+v", hashed[1])
	}
	for _, f := range hashed[2:] {
		if f.SHA256 != "" || f.Err == "" {
			t.Errorf("hashed %+v", f)
		}
	}
	if _, err := c.List(ctx, "absent"); !errors.Is(err, ErrNoRepo) {
		t.Errorf("absent repo: %v", err)
	}
	// A beside root on anything but a versions listing is refused.
	var out bytes.Buffer
	Serve(ctx, map[string]string{"mirror": root}, strings.NewReader(`{"op":"list","root":"mirror","dir":"system","beside":"mirror"}`+"\n"), &out)
	if !strings.Contains(out.String(), `"fail"`) || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("beside without versions answered %s", out.String())
	}
}
