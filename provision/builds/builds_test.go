package builds

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// realBuilds compiles the real borgkit for this machine and for another
// architecture once: the install step runs them.
func realBuilds(t *testing.T) (native, foreign string, foreignArch string) {
	t.Helper()
	foreignArch = "arm64"
	if SelfArch() == "arm64" {
		foreignArch = "amd64"
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "borgkit-builds-test-")
		if buildErr != nil {
			return
		}
		for _, arch := range []string{SelfArch(), foreignArch} {
			goarch, goarm, _ := GoTarget(arch)
			cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(buildDir, arch, "borgkit"), "github.com/borgkit/borgkit/cmd/borgkit")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = errors.New(string(out))
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("go build borgkit: %v", buildErr)
	}
	return filepath.Join(buildDir, SelfArch(), "borgkit"), filepath.Join(buildDir, foreignArch, "borgkit"), foreignArch
}

func TestFind(t *testing.T) {
	native, foreign, farch := realBuilds(t)
	dir := t.TempDir()
	// A Set reads each build once (TestFindOnce): each state of dir is
	// looked at by a Set of its own, as by a run of its own.
	set := func() *Set { return &Set{Dir: dir, Self: native, From: "--builds"} }
	s := set()

	// Its own architecture is the running program.
	b, err := s.Find(SelfArch())
	if err != nil || b.Path != native {
		t.Fatalf("own arch: %v, %v", b, err)
	}
	// Another architecture's build that is not there: the error names the
	// file and how to get it.
	_, err = s.Find(farch)
	want := filepath.Join(dir, farch, "borgkit") + " is missing"
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("missing build: %v", err)
	}
	// A build in the wrong place is refused, never installed.
	copyFile(t, native, filepath.Join(dir, farch, "borgkit"))
	if _, err := set().Find(farch); err == nil || !strings.Contains(err.Error(), "is not a build for "+farch) {
		t.Fatalf("native binary as %s: %v", farch, err)
	}
	copyFile(t, foreign, filepath.Join(dir, farch, "borgkit"))
	if b, err := set().Find(farch); err != nil || b.Arch != farch {
		t.Fatalf("foreign build: %v, %v", b, err)
	}
	if _, err := s.Find("riscv64"); !errors.Is(err, ErrMissing) {
		t.Fatalf("riscv64: %v", err)
	}
}

// TestFindOnce: a fleet run asks one Set for the same architecture's
// build twice per host; the file is read and hashed once, and every asker
// gets that one Build, also when they ask at once.
func TestFindOnce(t *testing.T) {
	native, foreign, farch := realBuilds(t)
	dir := t.TempDir()
	p := filepath.Join(dir, farch, "borgkit")
	copyFile(t, foreign, p)
	s := &Set{Dir: dir, Self: native, From: "--builds"}
	got := make([]*Build, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			b, err := s.Find(farch)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = b
		})
	}
	wg.Wait()
	for i, b := range got {
		if b != got[0] {
			t.Fatalf("asker %d got another Build than asker 0", i)
		}
	}
	// Read once: the file gone, the Set still has it.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Find(farch); err != nil || b != got[0] {
		t.Fatalf("after the file went: %v, %v", b, err)
	}
	if d := got[0].Digest(); len(d) != 64 {
		t.Fatalf("digest %q", d)
	}
}

func TestLocate(t *testing.T) {
	s, err := Locate("/some/dir")
	if err != nil || s.Dir != "/some/dir" {
		t.Fatalf("--builds: %+v %v", s, err)
	}
	s, err = Locate("")
	if err != nil {
		t.Fatal(err)
	}
	// The test binary has no builds/ beside it: the package's directory.
	if s.Dir != PackageDir {
		t.Errorf("dir %s, want %s", s.Dir, PackageDir)
	}
}

// TestInstall installs into a directory tree, through the engine, and
// checks that the re-check ran the installed program.
func TestInstall(t *testing.T) {
	native, foreign, farch := realBuilds(t)
	ctx := context.Background()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const path = "/usr/local/bin/borgkit"

	t.Run("missing build is a conflict", func(t *testing.T) {
		h := host.NewRooted("pi", t.TempDir())
		_, err := (&Set{Dir: "/nonexistent", Self: native, From: "--builds"}).Find(farch)
		r, runErr := plan.Run(ctx, h, []plan.Step{&Install{Path: path, Arch: farch, Missing: err}}, plan.Options{})
		if !errors.Is(runErr, plan.ErrConflict) || r.Conflict != 1 || !strings.Contains(r.Steps[0].Check.Reason, "/nonexistent/"+farch+"/borgkit is missing") {
			t.Fatalf("%v: %+v", runErr, r.Steps)
		}
	})
	t.Run("native build installs and runs", func(t *testing.T) {
		root := t.TempDir()
		h := host.NewRooted("here", root)
		step := &Install{Path: path, Arch: SelfArch(), Build: &Build{Arch: SelfArch(), Data: read(native)}}
		if _, err := plan.Run(ctx, h, []plan.Step{step}, plan.Options{}); err != nil {
			t.Fatal(err)
		}
		if c, err := step.Check(ctx, h); err != nil || c.Action != plan.OK {
			t.Fatalf("second check: %+v %v", c, err)
		}
		// The same file, made unable to run: the check says so.
		if err := os.Chmod(filepath.Join(root, path), 0o644); err != nil {
			t.Fatal(err)
		}
		c, _ := (&Install{Path: path, Arch: SelfArch(), Build: step.Build}).runs(ctx, h, "")
		if c.Action != plan.Conflict || !strings.Contains(c.Reason, "does not run on here") {
			t.Fatalf("a program that cannot run: %+v", c)
		}
	})
	t.Run("a build of another architecture fails the run", func(t *testing.T) {
		// The foreign build labelled as this machine's: whether it fails to
		// execute or runs under binfmt emulation and names its platform,
		// the re-check must not pass it.
		h := host.NewRooted("here", t.TempDir())
		step := &Install{Path: path, Arch: SelfArch(), Build: &Build{Arch: SelfArch(), Data: read(foreign)}}
		_, err := plan.Run(ctx, h, []plan.Step{step}, plan.Options{})
		if !errors.Is(err, plan.ErrNotSettled) {
			t.Fatalf("want the re-check to fail, got %v", err)
		}
		t.Logf("re-check: %v", err)
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
