package config

import (
	"strings"
	"testing"
)

const (
	laptopKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGeTQYu/LqF8jFYA52rJNKbdtjkPlPkORMQhA5BtmWq8 borgkit@laptop"
	deskKey   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICfWI77xfq9JO+sCxjnjgLKHXHPWSLHeZ/qcvpwo2w+P x"
)

// vault is a borg-server host with two clients: lines 7-19 after header,
// with the fields of the second client (line 16 on) given by the caller.
func vault(second ...string) string {
	ls := []string{
		"  - name: vault",                    // 7
		"    role: borg-server",              // 8
		"    address: 100.64.0.9",            // 9
		"    borg_server:",                   // 10
		"      root: /srv/borg",              // 11
		"      clients:",                     // 12
		"        - name: laptop",             // 13
		"          public_key: " + laptopKey, // 14
		"          quota: 500G",              // 15
		"        - name: desk",               // 16
	}
	return withHeader(append(ls, second...)...)
}

func TestBorgServerValid(t *testing.T) {
	c, err := Parse("ok.yaml", []byte(vault("          public_key: "+deskKey, "          quota: 1.5T", "          from: 10.0.0.0/8,desk.lan")))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := c.Host("vault")
	b := h.BorgServer
	if b.UserOrDefault() != "borg" || b.Dir(b.Clients[1]) != "/srv/borg/desk" {
		t.Errorf("user %s, dir %s", b.UserOrDefault(), b.Dir(b.Clients[1]))
	}
	for i, want := range []string{
		`restrict,command="borg serve --restrict-to-path /srv/borg/laptop --append-only --storage-quota 500G" ` + laptopKey,
		`restrict,from="10.0.0.0/8,desk.lan",command="borg serve --restrict-to-path /srv/borg/desk --append-only --storage-quota 1.5T" ` + deskKey,
	} {
		got, err := b.AuthorizedKeysLine(b.Clients[i])
		if err != nil || got != want {
			t.Errorf("line %d:\n got %s (%v)\nwant %s", i, got, err, want)
		}
	}
}

func TestBorgServerProblems(t *testing.T) {
	for _, tc := range []struct {
		name      string
		src       string
		sentinel  error
		line, col int
		msg       string
	}{
		{"quota missing", vault("          public_key: " + deskKey), ErrRequired, 16, 11, "quota is required"},
		{"quota with a unit borg does not read", vault("          public_key: "+deskKey, "          quota: 500GB"), ErrBadValue, 18, 18, `quota "500GB"`},
		{"quota under borg's 10M", vault("          public_key: "+deskKey, "          quota: 9.9M"), ErrBadValue, 18, 18, "under 10M"},
		{"quota negative", vault("          public_key: "+deskKey, "          quota: -1G"), ErrBadValue, 18, 18, `quota "-1G"`},
		{"same key twice", vault("          public_key: "+laptopKey, "          quota: 1G"), ErrBadValue, 17, 23, "client laptop's too"},
		{"key with options", vault(`          public_key: command="sh" `+deskKey, "          quota: 1G"), ErrBadValue, 17, 23, "without options"},
		{"not a key", vault("          public_key: ssh-ed25519 AAAA", "          quota: 1G"), ErrBadValue, 17, 23, "public_key"},
		{"bad from", vault("          public_key: "+deskKey, "          quota: 1G", `          from: "a b"`), ErrBadValue, 19, 17, `from "a b"`},
		{"client name", vault("          public_key: "+deskKey, "          quota: 1G", "        - name: Bad/Name", "          public_key: "+deskKey, "          quota: 1G"), ErrBadName, 19, 17, "client name"},
		{"root with a space", strings.Replace(vault("          public_key: "+deskKey, "          quota: 1G"), "root: /srv/borg", `root: "/srv/my borg"`, 1), ErrBadPath, 11, 13, "forced command"},
		{"no borg_server", withHeader("  - name: vault", "    role: borg-server", "    address: 100.64.0.9"), ErrRequired, 7, 5, "borg_server"},
		{"borg_server on a server", withHeader(append(server, "    borg_server: {root: /srv/borg}")...), ErrRoleMismatch, 14, 5, "only for a borg-server host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("parsed:\n%s", tc.src)
			}
			p := problemFor(t, err, tc.sentinel)
			if p.Line != tc.line || p.Col != tc.col || !strings.Contains(p.Error(), tc.msg) {
				t.Errorf("got %d:%d %v\nwant %d:%d containing %q", p.Line, p.Col, p, tc.line, tc.col, tc.msg)
			}
		})
	}
}
