package vm

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/builds"
	"github.com/borgkit/borgkit/provision/host"
)

// debFor is make deb's package for arch (BORGKIT_VM_DEBS, which make vm
// sets to bin/deb); the test is skipped, saying why, without it.
func debFor(t *testing.T, arch string) (name string, data []byte) {
	t.Helper()
	dir := os.Getenv("BORGKIT_VM_DEBS")
	if dir == "" {
		t.Skip("BORGKIT_VM_DEBS is not set: make vm builds the packages (make deb) and sets it")
	}
	m, _ := filepath.Glob(filepath.Join(dir, "borgkit_*_"+arch+".deb"))
	if len(m) != 1 {
		t.Fatalf("want one borgkit_*_%s.deb in %s, found %v", arch, dir, m)
	}
	b, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(m[0]), b
}

// installDeb installs the package on g as a user would, with apt from the
// file (its dependencies are in the image: the guest has no network), and
// checks what it put there. No --no-download: bookworm's apt fails a local
// file under it ("Internal Error, Pathname to install is not absolute"),
// and the guest has no route out anyway.
func installDeb(ctx context.Context, t *testing.T, g *Guest, arch string) {
	t.Helper()
	name, deb := debFor(t, arch)
	p := "/root/" + name
	if err := g.WriteFile(ctx, p, deb, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := g.RunCmd(ctx, host.Cmd{Argv: []string{"apt-get", "install", "-y", "./" + name}, Dir: "/root",
		Env: []string{"DEBIAN_FRONTEND=noninteractive"}})
	if err != nil {
		t.Fatalf("apt-get install ./%s on %s: %v\n%s%s", name, g.Name(), err, res.Stdout, res.Stderr)
	}
	t.Logf("%s: %s", g.Name(), must(ctx, t, g, "borgkit", "version"))
	var v struct{ Platform string }
	if err := json.Unmarshal([]byte(must(ctx, t, g, builds.PackageBinary, "version", "--json")), &v); err != nil || v.Platform != builds.Platform(arch) {
		t.Fatalf("%s version --json: %+v %v", builds.PackageBinary, v, err)
	}
	files := must(ctx, t, g, "dpkg", "-L", "borgkit")
	for _, want := range []string{"/usr/share/man/man8/borgkit.8.gz", "/usr/share/doc/borgkit/examples/borgkit.yaml",
		"/usr/share/bash-completion/completions/borgkit"} {
		if !strings.Contains(files, want) {
			t.Errorf("the package has no %s", want)
		}
	}
	for _, other := range builds.Arches() {
		if other == arch {
			continue
		}
		if !strings.Contains(files, filepath.Join(builds.PackageDir, other, "borgkit")) {
			t.Errorf("the %s package lacks the %s build", arch, other)
		}
	}
	must(ctx, t, g, "borgkit", "config", "validate", "/usr/share/doc/borgkit/examples/borgkit.yaml")
}

// TestVMDebInstall installs the amd64 package on a fresh Debian 12 guest.
// (TestVMPiArm64 installs the arm64 one on its pi.)
func TestVMDebInstall(t *testing.T) {
	skipUnlessVM(t)
	debFor(t, "amd64")
	t.Parallel()
	img := labImage(t) // before the scenario's clock starts: a cold build has its own timeout
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	key, err := NewKey("borgkit-vm-lab")
	if err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, Config{Name: "fresh", Image: img, Dir: filepath.Join(runDir(t), "fresh"), Index: 9, LoginKey: key,
		LabAddress: "10.232.0.9/24"})
	step(t, "boot a fresh guest", func() {
		if err := g.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := g.WaitSSH(ctx, bootTimeout); err != nil {
			t.Fatal(err)
		}
	})
	step(t, "apt-get install ./borgkit_*_amd64.deb", func() { installDeb(ctx, t, g, "amd64") })
}
