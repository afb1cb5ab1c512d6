package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildSaysWhatItCompiles builds a fresh module for real: the first
// build names what it compiled, the second is up to date, a broken one
// passes go's error through with its exit status.
func TestBuildSaysWhatItCompiles(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/hello\n\ngo 1.22\n"), 0o644)
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\n\nfunc main() { println(\""+t.Name()+"\") }\n"), 0o644)
	t.Chdir(dir)
	out := filepath.Join(dir, "hello")

	var log bytes.Buffer
	if code := run([]string{"-o", out, "."}, &log); code != 0 {
		t.Fatalf("exit %d\n%s", code, log.String())
	}
	if !strings.Contains(log.String(), "building "+out+" (go build: ") || !strings.Contains(log.String(), "built "+out+": 1 package(s) compiled") {
		t.Fatalf("first build:\n%s", log.String())
	}
	log.Reset()
	if code := run([]string{"-o", out, "."}, &log); code != 0 || !strings.Contains(log.String(), "up to date, nothing to compile") {
		t.Fatalf("second build: exit %d\n%s", code, log.String())
	}
	os.WriteFile(src, []byte("package main\n\nfunc main() { undefined() }\n"), 0o644)
	log.Reset()
	if code := run([]string{"-o", out, "."}, &log); code != 1 || !strings.Contains(log.String(), "undefined: undefined") || !strings.Contains(log.String(), "go build failed") {
		t.Fatalf("broken build: exit %d\n%s", code, log.String())
	}
}
