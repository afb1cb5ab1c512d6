package recipe_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/tools"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/recipe"
	"github.com/borgkit/borgkit/testing/sshd"
)

// fakeZFS stands in for zfs on both ends of the pull: there is no ZFS on
// this machine (the real one is the VM lab's). It logs which side ran it
// (sshd sets SSH_CONNECTION on the live server's) and its argv, answers
// as zfs would for a live tank/data with two snapshots and an archive
// without the target yet, writes a stand-in stream for zfs send, and keeps
// what zfs receive reads.
const fakeZFS = `#!/bin/sh
side=archive; [ -n "$SSH_CONNECTION" ] && side=live
printf '%s %s\n' "$side" "$*" >> DIR/zfs.log
case "$*" in
"get -H syncoid:sync tank/data") printf 'tank/data\tsyncoid:sync\t-\t-\n' ;;
"get -Hpd 1 -t snapshot guid,creation tank/data")
	printf 'tank/data@snap1\tguid\t111\t-\ntank/data@snap1\tcreation\t1700000000\t-\n'
	printf 'tank/data@snap2\tguid\t222\t-\ntank/data@snap2\tcreation\t1700000100\t-\n' ;;
"get -H name tank/Secure/backup") echo "cannot open 'tank/Secure/backup': dataset does not exist" >&2; exit 1 ;;
"send -nvP "*) printf 'size\t4096\n' ;;
"send "*) printf 'STREAM %s\n' "$*" ;;
"receive "*) cat >> DIR/received ;;
*) echo "fake zfs: unexpected $*" >&2; exit 2 ;;
esac
`

type guardLab struct {
	dir, key, cfgPath string
	cfg               *config.Config
	srv               *sshd.Server
}

// newGuardLab installs the pull-guard line for a client key in a real
// sshd, the forced command being this tree's borgkit built for the test
// with the test's config, and puts the fake zfs first on the session PATH.
func newGuardLab(t *testing.T) *guardLab {
	t.Helper()
	l := &guardLab{dir: t.TempDir()}
	bin := filepath.Join(l.dir, "borgkit")
	if out, err := runOut(t, "go", "build", "-o", bin, "github.com/borgkit/borgkit/cmd/borgkit"); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	fake := filepath.Join(l.dir, "bin")
	os.MkdirAll(fake, 0o755)
	if err := os.WriteFile(filepath.Join(fake, "zfs"), []byte(strings.ReplaceAll(fakeZFS, "DIR", l.dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	l.cfgPath = filepath.Join(l.dir, "borgkit.yaml")
	key, pub := keyPair(t)
	l.key = key
	line, err := recipe.PullGuardLine("127.0.0.1",
		bin+" --config "+l.cfgPath+" job pull-guard archive --host john-ai --log-dir "+l.dir, pub)
	if err != nil {
		t.Fatal(err)
	}
	l.srv = sshd.Start(t, sshd.Options{AuthorizedKeys: []string{string(line)},
		Config: []string{"SetEnv PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin"}})
	// The live server john-ai is this sshd; the archive pulls from it.
	src := strings.NewReplacer("      host: 100.64.0.10\n", "      host: john-ai\n",
		"    address: 100.64.0.1 ", "    address: 127.0.0.1 ",
		"    ssh:\n      # john-ai's host key", "    ssh:\n      port: "+strconv.Itoa(l.srv.Port)+"\n      # john-ai's host key",
	).Replace(string(config.Example()))
	if err := os.WriteFile(l.cfgPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if l.cfg, err = config.Parse(l.cfgPath, []byte(src)); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *guardLab) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.dir, name))
	return string(b)
}

// ssh runs the OpenSSH client with the pull key and extra arguments.
func (l *guardLab) ssh(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	argv := append(sshArgv(l.srv, l.key), args...)
	c := exec.Command(argv[0], argv[1:]...)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err = c.Run()
	return o.String(), e.String(), err
}

func TestPullGuardOverSSH(t *testing.T) {
	l := newGuardLab(t)
	snapshots := "tank/data@snap1\tguid\t111\t-\ntank/data@snap1\tcreation\t1700000000\t-\n" +
		"tank/data@snap2\tguid\t222\t-\ntank/data@snap2\tcreation\t1700000100\t-\n"
	tests := []struct {
		name    string
		args    []string // ssh arguments after the options
		stdout  string
		zfs     string // what the fake zfs logs; "" when it must not run
		refused string // part of stderr when the session must fail
	}{
		{"allowed snapshot listing", []string{"root@127.0.0.1", "zfs get -Hpd 1 -t snapshot guid,creation 'tank/data'"},
			snapshots, "live get -Hpd 1 -t snapshot guid,creation tank/data\n", ""},
		{"allowed send", []string{"root@127.0.0.1", " zfs send  -I 'tank/data'@'snap1' 'tank/data'@'snap2'"},
			"STREAM send -I tank/data@snap1 tank/data@snap2\n", "live send -I tank/data@snap1 tank/data@snap2\n", ""},
		{"a shell", []string{"root@127.0.0.1"}, "", "", "a shell is not offered"},
		{"a command of the shell", []string{"root@127.0.0.1", "id"}, "", "", `"id" is not a command the pull needs`},
		{"another dataset", []string{"root@127.0.0.1", "zfs send 'pool/other'@'a'"}, "", "", `dataset "pool/other" is not the pulled dataset`},
		{"injection", []string{"root@127.0.0.1", "zfs send tank/data@snap1; rm -rf /"}, "", "", `character ';' is not allowed`},
		{"destroy", []string{"root@127.0.0.1", "zfs destroy tank/data@snap1"}, "", "", "not a command the pull needs"},
		// restrict: no forwarding of any kind.
		{"stdio forwarding", []string{"-W", "127.0.0.1:" + strconv.Itoa(l.srv.Port), "root@127.0.0.1"}, "", "", "administratively prohibited"},
		{"remote forwarding", []string{"-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:" + strconv.Itoa(l.srv.Port), "root@127.0.0.1", "exit"},
			"", "", "remote port forwarding failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(filepath.Join(l.dir, "zfs.log"))
			stdout, stderr, err := l.ssh(t, tt.args...)
			if tt.refused == "" && err != nil {
				t.Fatalf("%v\n%s\nsshd:\n%s", err, stderr, l.srv.Log())
			}
			if tt.refused != "" && (err == nil || !strings.Contains(stderr, tt.refused)) {
				t.Fatalf("not refused with %q: %v\nstderr: %s", tt.refused, err, stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if got := l.read("zfs.log"); got != tt.zfs {
				t.Errorf("zfs ran %q, want %q", got, tt.zfs)
			}
		})
	}
	// Every session's decision is in the guard's log, on one line each.
	log := l.read("pull-guard.log")
	for _, want := range []string{
		`pull-guard archive from 127.0.0.1: "zfs get -Hpd 1 -t snapshot guid,creation 'tank/data'" allowed: zfs get -Hpd 1 -t snapshot guid,creation tank/data`,
		`pull-guard archive from 127.0.0.1: "" REFUSED: refused: no command`,
		`"zfs send tank/data@snap1; rm -rf /" REFUSED: refused: character ';'`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("guard log lacks %q:\n%s", want, log)
		}
	}
}

// The pull job runs Debian 12's syncoid (2.1.0) against the guard: every
// command it sends to the live server must be allowed, and it must carry
// both snapshots over (a full send of the oldest, an incremental to the
// newest) without creating or destroying anything there.
func TestPullJobThroughTheGuard(t *testing.T) {
	// make deps unpacks Debian's sanoid without installing it: the package
	// depends on a ZFS implementation, and the script needs only perl.
	syncoid := os.Getenv("BORGKIT_SYNCOID")
	if syncoid == "" {
		var err error
		if syncoid, err = exec.LookPath("syncoid"); err != nil {
			if os.Getenv("BORGKIT_REQUIRE_SYNCOID") != "" {
				t.Fatalf("syncoid required: %v", err)
			}
			t.Skip("syncoid is not installed: run make deps, or install sanoid")
		}
	}
	l := newGuardLab(t)
	// syncoid takes ssh options only on its command line; the test's
	// known_hosts is one of them, and its local zfs is the fake too.
	wrapper := filepath.Join(l.dir, "syncoid")
	script := fmt.Sprintf("#!/bin/sh\nPATH=%s:$PATH exec %s --sshoption=UserKnownHostsFile=%s --sshoption=StrictHostKeyChecking=yes --sshoption=IdentitiesOnly=yes \"$@\"\n",
		filepath.Join(l.dir, "bin"), syncoid, l.srv.KnownHostsPath)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	old, had := tools.Paths[tools.Syncoid]
	tools.Paths[tools.Syncoid] = wrapper
	t.Cleanup(func() {
		if had {
			tools.Paths[tools.Syncoid] = old
		} else {
			delete(tools.Paths, tools.Syncoid)
		}
	})

	a, _ := l.cfg.Host("archive")
	var log bytes.Buffer
	e := &jobs.Env{Cfg: l.cfg, Host: a, Exec: host.NewLocal("archive"), Log: &log,
		Store: &state.Store{Dir: t.TempDir(), Host: "archive"}, LockPath: filepath.Join(t.TempDir(), "lock")}
	e.Defaults()
	e.Mailer.Sendmail = []string{"/bin/true"}
	if err := jobs.Pull(context.Background(), e, l.key); err != nil {
		t.Fatalf("pull: %v\njob log:\n%s\nguard log:\n%s\nzfs:\n%s", err, log.String(), l.read("pull-guard.log"), l.read("zfs.log"))
	}
	if got, want := l.read("received"), "STREAM send tank/data@snap1\nSTREAM send -I tank/data@snap1 tank/data@snap2\n"; got != want {
		t.Errorf("received %q, want %q", got, want)
	}
	var live []string
	for _, c := range strings.Split(strings.TrimSpace(l.read("zfs.log")), "\n") {
		if side, argv, _ := strings.Cut(c, " "); side == "live" {
			live = append(live, argv)
		}
	}
	want := []string{
		"get -H syncoid:sync tank/data",
		"get -Hpd 1 -t snapshot guid,creation tank/data",
		"send -nvP tank/data@snap1",
		"send tank/data@snap1",
		"send -nvP -I tank/data@snap1 tank/data@snap2",
		"send -I tank/data@snap1 tank/data@snap2",
	}
	if strings.Join(live, "\n") != strings.Join(want, "\n") {
		t.Errorf("on the live server zfs ran\n%s\nwant\n%s", strings.Join(live, "\n"), strings.Join(want, "\n"))
	}
	if g := l.read("pull-guard.log"); strings.Contains(g, "REFUSED") || !strings.Contains(g, `"command -v mbuffer" answered (mbuffer)`) {
		t.Errorf("guard log:\n%s", g)
	}
}
