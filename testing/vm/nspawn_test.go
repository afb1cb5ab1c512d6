package vm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// The container of the nspawn scenario: an application container (no init
// of its own; nspawn's stub init as PID 1 and sleep as PID 2), started by
// machinectl through systemd-nspawn@.service, with settings borgkit backs
// up beside its tree.
const (
	machine      = "web"
	machineDir   = layout.MachinesDir + "/" + machine
	nspawnFile   = layout.NspawnDir + "/" + machine + ".nspawn"
	containerDir = "/mnt/backup/containers"
	nspawnConfig = "[Exec]\nBoot=no\nProcessTwo=yes\nParameters=/usr/bin/sleep infinity\n\n[Network]\nVirtualEthernet=no\n"
)

// makeMachineTree is a machine's tree made from the guest's own files:
// sleep with the libraries ldd names, and an os-release. Argument $1 is
// the tree.
const makeMachineTree = `set -e
r=$1
mkdir -p "$r/etc" "$r/srv/www"
cp -L --parents /usr/bin/sleep "$r"
for lib in $(ldd /usr/bin/sleep | grep -o '/[^ ]*'); do cp -L --parents "$lib" "$r"; done
cp -L /etc/os-release "$r/etc/os-release"
echo web > "$r/etc/hostname"
`

var nspawnImageOnce onceImage

// nspawnImage is the lab's image with systemd-container.
func nspawnImage(t *testing.T) *Image {
	t.Helper()
	return nspawnImageOnce.get(t, "image build (nspawn layer)", 30*time.Minute, func(ctx context.Context, log io.Writer) (*Image, error) {
		l := NspawnLayer()
		l.Base = labRecipe()
		return BuildPackageLayer(ctx, cacheDir(), l, log)
	})
}

// withContainers adds john-ai's repo of containers to the lab's config.
func withContainers(site []byte) []byte {
	const after = "        canary: /srv/data/canary\n"
	repo := after + `      - name: containers
        path: ` + containerDir + `
        containers: [` + machine + `]
        encryption: repokey-blake2
`
	return []byte(strings.Replace(string(site), after, repo, 1))
}

// TestVMNspawnContainer proves a container as a source where systemd is
// PID 1: a real nspawn machine under /var/lib/machines, running (started
// with machinectl) while nightly backs it up into an archive of its own
// with its .nspawn settings; the per-guest restore test extracts its files
// and finds them as they are; and `borgkit status` shows the container in
// its CONTAINER BACKUPS box, backed up minutes ago and healthy.
func TestVMNspawnContainer(t *testing.T) {
	skipUnlessVM(t)
	if os.Getenv("BORGKIT_VM_NSPAWN") != "1" {
		t.Skip("BORGKIT_VM_NSPAWN unset: the container scenario takes 3 to 9 minutes under TCG on two shared cores, and its image layer (1.5 min) and pair snapshot (2.5 min) once; make vm-nspawn runs it")
	}
	t.Parallel()
	img := nspawnImage(t) // before the scenario's clock starts: a cold build has its own timeout
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := newLabWith(ctx, t, labSpec{server: img, serverOnly: true, snapshots: snapshotCache(img), binaryEverywhere: true, site: withContainers})
	s := l.Server

	var data map[string]string
	step(t, "an nspawn machine under /var/lib/machines, started by machinectl", func() {
		must(ctx, t, s, "sh", "-c", makeMachineTree, "sh", machineDir)
		data = seedData(ctx, t, s, machineDir+"/srv/www", 4, 64<<10)
		must(ctx, t, s, "mkdir", "-p", layout.NspawnDir)
		if err := s.WriteFile(ctx, nspawnFile, []byte(nspawnConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		if images := must(ctx, t, s, "machinectl", "list-images", "--no-legend"); !strings.HasPrefix(images, machine+" ") {
			t.Fatalf("machinectl list-images does not show %s:\n%s", machine, images)
		}
		must(ctx, t, s, "machinectl", "start", machine)
		waitFor(ctx, t, "machine "+machine+" running", 2*time.Minute, time.Second, func() (bool, string) {
			st, err := s.Output(ctx, "machinectl", "show", machine, "--property=State", "--value")
			if err != nil {
				return false, err.Error() + "\n" + journal(ctx, s, "systemd-nspawn@"+machine+".service")
			}
			return st == "running", st
		})
		// The unit machinectl started, and under the container's stub
		// init its own sleep.
		must(ctx, t, s, "systemctl", "is-active", "systemd-nspawn@"+machine+".service")
		leader := must(ctx, t, s, "machinectl", "show", machine, "--property=Leader", "--value")
		if ps := must(ctx, t, s, "ps", "-o", "args=", "--ppid", leader); ps != "/usr/bin/sleep infinity" {
			t.Fatalf("machine %s runs %q under its init (PID %s), want the sleep of its .nspawn", machine, ps, leader)
		}
	})

	l.provisionServer(ctx, t)

	step(t, "job nightly: the running container in an archive of its own", func() {
		l.job(ctx, t, s, "nightly")
		archives := l.repoArchives(ctx, t, "containers")
		if len(archives) != 1 || !strings.HasPrefix(archives[0], "container:"+machine+":") {
			t.Fatalf("the containers repo holds %v, want one container:%s: archive", archives, machine)
		}
		files := l.repoFiles(ctx, t, "containers", archives[0])
		for _, want := range []string{machineDir + "/usr/bin/sleep", machineDir + "/etc/os-release", nspawnFile, machineDir + "/srv/www/file-00.bin"} {
			if !strings.Contains(files, "\n"+strings.TrimPrefix(want, "/")+"\n") {
				t.Errorf("archive %s lacks %s:\n%s", archives[0], want, files)
			}
		}
		var st state.NightlyStats
		if err := json.Unmarshal(record(ctx, t, s, "nightly").Stats, &st); err != nil {
			t.Fatal(err)
		}
		guests := 0
		for _, r := range st.Repos {
			for _, g := range r.Guests {
				guests++
				if g.Kind != "container" || g.Name != machine || g.Status != "ok" || g.Archive != archives[0] {
					t.Errorf("nightly record of repo %s: guest %+v, want container %s ok in %s", r.Name, g, machine, archives[0])
				}
			}
		}
		if guests != 1 {
			t.Errorf("nightly record: %d guests, want 1 (%+v)", guests, st.Repos)
		}
		// borg read its tree while it ran; it runs still.
		if st := must(ctx, t, s, "machinectl", "show", machine, "--property=State", "--value"); st != "running" {
			t.Errorf("machine %s is %s after the backup, want running", machine, st)
		}
	})

	step(t, "job restore-test: the container's files restored as they are", func() {
		l.job(ctx, t, s, "restore-test")
		var rs state.RestoreStats
		if err := json.Unmarshal(record(ctx, t, s, "restore_test").Stats, &rs); err != nil {
			t.Fatal(err)
		}
		var ours []string
		for _, f := range rs.Files {
			if f.Guest != "container "+machine {
				continue
			}
			ours = append(ours, f.Path)
			if f.Status != "match" || !strings.HasPrefix(f.Path, machineDir+"/") && f.Path != nspawnFile {
				t.Errorf("restored %+v", f)
			}
			if want, ok := data[filepath.Base(f.Path)]; ok && filepath.Dir(f.Path) == machineDir+"/srv/www" && f.SHA256 != want {
				t.Errorf("restored %s: sha256 %s, the seeded file's %s", f.Path, f.SHA256, want)
			}
		}
		if len(ours) == 0 {
			t.Fatalf("the restore test took no file of container %s: %+v", machine, rs.Files)
		}
		t.Logf("restore test of container %s: %s", machine, strings.Join(ours, " "))
	})

	step(t, "borgkit status: the CONTAINER BACKUPS box", func() {
		res, err := s.Run(ctx, layout.Binary, "status")
		var ee *host.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode == 1) {
			t.Fatalf("borgkit status: %v\n%s%s", err, res.Stdout, res.Stderr)
		}
		out := string(res.Stdout)
		l.saveOutput(t, "status.txt", out)
		for _, want := range []string{`(?m)^┌─ CONTAINER BACKUPS ─+┐$`, `(?m)^│ ` + machine + `: (\d+[smh] ?)+ \(healthy\)$`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("borgkit status lacks %q:\n%s", want, out)
			}
		}
		t.Logf("borgkit status (exit %v):%s", err, grepLines(out, "CONTAINER BACKUPS", "│ "+machine+":"))
		if strings.Contains(out, "VM BACKUPS") {
			t.Errorf("borgkit status shows a VM BACKUPS box with no VM configured:\n%s", out)
		}
	})
}

// repoArchives lists john-ai's repo name with borg itself.
func (l *labSetup) repoArchives(ctx context.Context, t *testing.T, name string) []string {
	t.Helper()
	return strings.Fields(l.borg(ctx, t, name, "list", "--short"))
}

// repoFiles lists the paths in an archive of john-ai's repo name, a line
// each, between newlines.
func (l *labSetup) repoFiles(ctx context.Context, t *testing.T, name, archive string) string {
	t.Helper()
	return "\n" + l.borg(ctx, t, name, "list", "--format", "{path}{NL}", "::"+archive) + "\n"
}

// borg runs borg on john-ai's repo name, the repo as the last argument
// (prefixed to one starting "::"), its passphrase read by borg from the
// file provisioning made.
func (l *labSetup) borg(ctx context.Context, t *testing.T, name string, args ...string) string {
	t.Helper()
	john := l.cfgHost(ServerName)
	r, ok := john.Repo(name)
	if !ok {
		t.Fatalf("no repo %s on %s", name, ServerName)
	}
	if last := len(args) - 1; strings.HasPrefix(args[last], "::") {
		args[last] = r.Path + args[last]
	} else {
		args = append(args, r.Path)
	}
	c := host.Cmd{Argv: append([]string{"borg"}, args...), Env: []string{"BORG_PASSCOMMAND=cat " + r.PassphrasePath()}}
	res, err := l.Server.RunCmd(ctx, c)
	if err != nil {
		t.Fatalf("borg %s: %v\n%s", strings.Join(args, " "), err, res.Stderr)
	}
	return strings.TrimSpace(string(res.Stdout))
}
