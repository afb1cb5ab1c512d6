package config

import (
	"slices"
	"strings"
	"testing"
)

// testHostKey is a real ed25519 public key, for host_key.
const testHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1ng9zpMTlcnu2h7OJdqBaCh3GmknPhO+Mmc5czoopO"

// otherHostKey is another one.
const otherHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyY26aYcRmIprtcpNqWSYykVB+WFxRh+N6IRAjYiifD"

// remoteRepo is server with repo sys at path p (line 12, value at column
// 15) and extra lines after its sources.
func remoteRepo(p string, extra ...string) string {
	ls := slices.Clone(server)
	ls[5] = "        path: " + p
	return withHeader(append(ls, extra...)...)
}

func TestParseRepoLocation(t *testing.T) {
	tests := []struct {
		in, want string
		remote   bool
	}{
		{"/srv/borg/sys", "/srv/borg/sys", false},
		{"ssh://borg@backup.example.com/srv/borg/john-ai", "ssh://borg@backup.example.com:22/srv/borg/john-ai", true},
		{"ssh://u123@u123.your-storagebox.de:23/./backups/srv", "ssh://u123@u123.your-storagebox.de:23/./backups/srv", true},
		{"ssh://a1b2@a1b2.repo.borgbase.com/~/repo", "ssh://a1b2@a1b2.repo.borgbase.com:22/./repo", true},
		{"ssh://borg@[fd00::1]:2222/srv/r", "ssh://borg@[fd00::1]:2222/srv/r", true},
		{"ssh://borg@10.0.0.2:65535/srv/r", "ssh://borg@10.0.0.2:65535/srv/r", true},
		{"zh1234@zh1234.rsync.net:borg/john-ai", "ssh://zh1234@zh1234.rsync.net:22/./borg/john-ai", true},
		{"borg@nas.lan:/volume1/borg", "ssh://borg@nas.lan:22/volume1/borg", true},
	}
	for _, tt := range tests {
		l, err := ParseRepoLocation(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if l.String() != tt.want || l.Remote() != tt.remote {
			t.Errorf("%s: %q (remote %v), want %q (remote %v)", tt.in, l.String(), l.Remote(), tt.want, tt.remote)
		}
		// What String gives parses to itself: the form borg and the
		// records get is stable.
		if again, err := ParseRepoLocation(l.String()); err != nil || again.String() != l.String() || again.Path != l.Path {
			t.Errorf("%s: %q parses to %+v, %v; want %+v", tt.in, l.String(), again, err, l)
		}
	}
}

func TestRepoURLProblems(t *testing.T) {
	key := "        host_key: " + testHostKey
	tests := []struct {
		name      string
		src       string
		sentinel  error
		line, col int
		msg       string
	}{
		{"bad scheme", remoteRepo("sftp://borg@h/srv/r", key), ErrBadPath, 12, 15, `scheme "sftp"`},
		{"no user in ssh url", remoteRepo("ssh://backup.example.com/srv/r", key), ErrBadPath, 12, 21, "has no user"},
		{"no user in scp form", remoteRepo("nas.lan:/srv/r", key), ErrBadPath, 12, 15, "has no user"},
		{"empty user", remoteRepo("ssh://@h.example/srv/r", key), ErrBadPath, 12, 21, "user before @ is empty"},
		{"user with a dash first", remoteRepo("ssh://-oProxyCommand=x@h/srv/r", key), ErrBadPath, 12, 21, `user "-oProxyCommand=x"`},
		{"missing host", remoteRepo("ssh://borg@/srv/r", key), ErrBadPath, 12, 26, "host after @ is empty"},
		{"missing host before port", remoteRepo("ssh://borg@:22/srv/r", key), ErrBadPath, 12, 26, "host after @ is empty"},
		{"host with a pattern character", remoteRepo("ssh://borg@ba*ck/srv/r", key), ErrBadPath, 12, 26, `host "ba*ck"`},
		{"port out of range", remoteRepo("ssh://borg@h.example:70000/srv/r", key), ErrBadPath, 12, 36, "port 70000 is out of range 1-65535"},
		{"port zero", remoteRepo("ssh://borg@h.example:0/srv/r", key), ErrBadPath, 12, 36, "port 0 is out of range"},
		{"port not a number", remoteRepo("ssh://borg@h.example:ssh/srv/r", key), ErrBadPath, 12, 36, `port "ssh" is not a number`},
		{"empty port", remoteRepo("ssh://borg@h.example:/srv/r", key), ErrBadPath, 12, 36, "port after"},
		{"no path", remoteRepo("ssh://borg@h.example:22", key), ErrBadPath, 12, 38, "has no path"},
		{"root as repo", remoteRepo("ssh://borg@h.example/", key), ErrBadPath, 12, 35, "names no directory"},
		{"port in the scp form", remoteRepo("borg@h.example:2222/srv/r", key), ErrBadPath, 12, 30, "has no port"},
		{"dotdot", remoteRepo("ssh://borg@h.example/srv/../etc", key), ErrBadPath, 12, 35, `must not contain ".."`},
		{"tilde user", remoteRepo("borg@h.example:~other/r", key), ErrBadPath, 12, 30, "does not expand ~USER"},
		{"archive separator", remoteRepo("ssh://borg@h.example/srv/r::x", key), ErrBadPath, 12, 35, `contains "::"`},
		{"placeholder", remoteRepo("ssh://borg@h.example/srv/{hostname}", key), ErrBadPath, 12, 35, "placeholders"},
		{"quote in the path", remoteRepo(`'ssh://borg@h.example/srv/a"b'`, key), ErrBadPath, 12, 15, `contains "\""`},
		{"space in the path, plain", remoteRepo("ssh://borg@h.example/srv/a b", key), ErrBadPath, 12, 41, `contains " "`},
		{"unclean path", remoteRepo("ssh://borg@h.example/srv//r", key), ErrBadPath, 12, 35, "not clean"},
		{"relative local path", remoteRepo("srv/borg/sys"), ErrBadPath, 12, 15, "must be an absolute path"},
		{"no host key", remoteRepo("ssh://borg@h.example/srv/r"), ErrRequired, 11, 9, "host_key is required"},
		{"host key with a marker", remoteRepo("ssh://borg@h.example/srv/r", "        host_key: '@revoked "+testHostKey+"'"), ErrBadValue, 14, 19, "options and markers"},
		{"host key on a local repo", remoteRepo("/srv/borg/sys", key), ErrBadValue, 14, 19, "host_key is for a repo on a borg server"},
		{"same remote repo twice", remoteRepo("ssh://borg@h.example/srv/r", key,
			"      - name: two", "        path: ssh://borg@h.example:22/srv/r", "        sources: [/var]", key),
			ErrDuplicateName, 16, 15, `repo path "ssh://borg@h.example:22/srv/r" is already used`},
		{"one server, two host keys", remoteRepo("ssh://borg@h.example/srv/r", key,
			"      - name: two", "        path: borg@h.example:/srv/other", "        sources: [/var]", "        host_key: "+otherHostKey),
			ErrBadValue, 18, 19, "differs from the one hosts[0].repos[0].host_key pins for the same server h.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("parsed without error:\n%s", tt.src)
			}
			p := problemFor(t, err, tt.sentinel)
			if p.Line != tt.line || p.Col != tt.col || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("got %d:%d %q\nwant %d:%d containing %q", p.Line, p.Col, p.Msg, tt.line, tt.col, tt.msg)
			}
			if !strings.Contains(p.Error(), "bad.yaml:") || !strings.Contains(p.Path, "repos[") {
				t.Errorf("problem does not name the file and field: %v (path %s)", p, p.Path)
			}
		})
	}
}

func TestRemoteRepoValid(t *testing.T) {
	c, err := Parse("ok.yaml", []byte(remoteRepo("ssh://borg@backup.example.com:2222/srv/borg/john-ai", "        host_key: "+testHostKey)))
	if err != nil {
		t.Fatal(err)
	}
	r := &c.Hosts[0].Repos[0]
	if !r.Remote() || r.BorgLocation() != "ssh://borg@backup.example.com:2222/srv/borg/john-ai" || r.Location().KnownHostsName() != "[backup.example.com]:2222" {
		t.Errorf("location %+v, borg %q", r.Location(), r.BorgLocation())
	}
}
