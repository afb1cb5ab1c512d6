// Package builds finds the borgkit executable built for a host's
// architecture on the machine that provisions it, and installs it there:
// an amd64 server provisioning an arm64 Pi must copy the arm64 build, never
// itself.
package builds

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
)

// PackageDir is where the borgkit package keeps the other architectures'
// builds.
const PackageDir = "/usr/lib/borgkit/builds"

// target is how one Debian architecture is built and recognised.
type target struct {
	GOARCH, GOARM string
	Machine       elf.Machine
	Class         elf.Class
}

// targets are the architectures borgkit is built for, by Debian name.
// armhf is GOARM=6: it runs on every Raspberry Pi, the ARMv6 ones too,
// and on Debian's armhf (ARMv7).
var targets = map[string]target{
	"amd64": {GOARCH: "amd64", Machine: elf.EM_X86_64, Class: elf.ELFCLASS64},
	"arm64": {GOARCH: "arm64", Machine: elf.EM_AARCH64, Class: elf.ELFCLASS64},
	"armhf": {GOARCH: "arm", GOARM: "6", Machine: elf.EM_ARM, Class: elf.ELFCLASS32},
}

// Arches are the Debian architectures borgkit is built for, sorted.
func Arches() []string {
	var a []string
	for k := range targets {
		a = append(a, k)
	}
	slices.Sort(a)
	return a
}

// GoTarget is the GOARCH and GOARM (may be "") that build arch.
func GoTarget(arch string) (goarch, goarm string, ok bool) {
	t, ok := targets[arch]
	return t.GOARCH, t.GOARM, ok
}

// SelfArch is the Debian architecture of the running program.
func SelfArch() string {
	for name, t := range targets {
		if t.GOARCH == runtime.GOARCH {
			return name
		}
	}
	return runtime.GOARCH
}

// Platform is what `borgkit version --json` of arch's build says.
func Platform(arch string) string { return "linux/" + targets[arch].GOARCH }

// Set is where the builds are looked for.
type Set struct {
	// Dir holds ARCH/borgkit for each architecture.
	Dir string
	// Self is the running executable, the build of its own architecture.
	Self string
	// From says why Dir was chosen, for messages.
	From string

	// found memoizes Find: a fleet run plans many hosts of one
	// architecture, and each plan is made twice (guessed, then probed);
	// reading and hashing a 20 MB build each time was most of a no-change
	// run's own CPU.
	mu    sync.Mutex
	found map[string]*found
}

// found is one architecture's Find, done once.
type found struct {
	once  sync.Once
	build *Build
	err   error
}

// Locate picks the builds directory: flagDir (--builds) if given, else
// builds/ beside the running executable (bin/builds after make build),
// else the package's PackageDir.
func Locate(flagDir string) (*Set, error) {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	s := &Set{Self: self}
	beside := filepath.Join(filepath.Dir(self), "builds")
	switch {
	case flagDir != "":
		s.Dir, s.From = flagDir, "--builds"
	case isDir(beside):
		s.Dir, s.From = beside, "beside "+self
	default:
		s.Dir, s.From = PackageDir, "the borgkit package's"
	}
	return s, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// Build is one architecture's executable, read.
type Build struct {
	Arch string
	Path string
	Data []byte

	digest     string
	digestOnce sync.Once
}

// Digest is the SHA-256 of Data, lowercase hex, computed once: a build
// is some 15 MB, and every plan of a host asks for its digest.
func (b *Build) Digest() string {
	b.digestOnce.Do(func() {
		s := sha256.Sum256(b.Data)
		b.digest = hex.EncodeToString(s[:])
	})
	return b.digest
}

// ErrMissing is wrapped by the error of a build that is not there.
var ErrMissing = errors.New("no borgkit build")

// Find returns arch's build: the running executable for its own
// architecture, else Dir/ARCH/borgkit. The file must be an ELF executable
// of arch, so a misplaced build is refused rather than installed. The
// file is read once per Set: every caller gets the same Build (and its
// digest, computed once), and the same error.
func (s *Set) Find(arch string) (*Build, error) {
	s.mu.Lock()
	if s.found == nil {
		s.found = map[string]*found{}
	}
	f := s.found[arch]
	if f == nil {
		f = &found{}
		s.found[arch] = f
	}
	s.mu.Unlock()
	f.once.Do(func() { f.build, f.err = s.read(arch) })
	return f.build, f.err
}

// read is Find's work.
func (s *Set) read(arch string) (*Build, error) {
	t, ok := targets[arch]
	if !ok {
		return nil, fmt.Errorf("%w for %s: borgkit is built for %v only", ErrMissing, arch, Arches())
	}
	p := filepath.Join(s.Dir, arch, "borgkit")
	if arch == SelfArch() {
		p = s.Self
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w for %s: %s is missing (%s builds directory); `make build` writes every architecture's build to bin/builds, "+
			"the borgkit package installs them under %s, --builds DIR names another directory", ErrMissing, arch, p, s.From, PackageDir)
	}
	if err != nil {
		return nil, fmt.Errorf("read the %s build: %w", arch, err)
	}
	if err := checkELF(p, t); err != nil {
		return nil, fmt.Errorf("%s is not a build for %s: %w", p, arch, err)
	}
	return &Build{Arch: arch, Path: p, Data: b}, nil
}

// Check says whether the file at p is an executable for the Debian
// architecture arch (a bundle's kit checks its builds with it).
func Check(p, arch string) error {
	t, ok := targets[arch]
	if !ok {
		return fmt.Errorf("borgkit is built for %v only, not %s", Arches(), arch)
	}
	return checkELF(p, t)
}

// checkELF says whether the file at p is an executable for t.
func checkELF(p string, t target) error {
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Machine != t.Machine || f.Class != t.Class {
		return fmt.Errorf("it is a %s %s executable", f.Class, f.Machine)
	}
	return nil
}
