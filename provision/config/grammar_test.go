package config

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// borgPython is the interpreter borg runs under, from its #! line: the
// grammar test asks borg's own code, not a copy of its rules.
func borgPython(t *testing.T) string {
	t.Helper()
	borg, err := exec.LookPath("borg")
	if err != nil {
		if os.Getenv("BORGKIT_REQUIRE_BORG") != "" {
			t.Fatalf("borg is required: %v", err)
		}
		t.Skip("borg is not installed (make deps installs it): this test asks borg's own parsers")
	}
	f, err := os.Open(borg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	py := strings.TrimSpace(strings.TrimPrefix(line, "#!"))
	if !strings.HasPrefix(line, "#!") || strings.ContainsAny(py, " \t") {
		t.Skipf("%s does not start with a plain #!interpreter line (%q)", borg, line)
	}
	return py
}

// askBorg returns, for each [kind, value], whether borg accepts it and
// what it says.
func askBorg(t *testing.T, items [][2]string) [][2]any {
	t.Helper()
	var in strings.Builder
	for _, it := range items {
		b, _ := json.Marshal(it)
		in.Write(append(b, '\n'))
	}
	cmd := exec.Command(borgPython(t), "testdata/borg_grammar.py")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("borg_grammar.py: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(items) {
		t.Fatalf("%d answers for %d values:\n%s", len(lines), len(items), out)
	}
	res := make([][2]any, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &res[i]); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
	}
	return res
}

var (
	compressionCorpus = []string{
		"none", "lz4", "zstd", "zstd,1", "zstd,3", "zstd,22", "zstd,0", "zstd,23", "zstd,03", "zstd,+3", "zstd, 3",
		"zstd,", "zstd,3,", "zstd,0x3", "zstd,-1", "zlib", "zlib,0", "zlib,9", "zlib,10", "lzma", "lzma,0", "lzma,9",
		"lzma,10", "auto", "auto,lz4", "auto,zstd,3", "auto,none", "auto,auto,lz4", "auto,obfuscate,1,lz4",
		"obfuscate,1,lz4", "obfuscate,6,zstd,3", "obfuscate,7,lz4", "obfuscate,50,lz4", "obfuscate,109,lz4",
		"obfuscate,110,lz4", "obfuscate,123,zstd,22", "obfuscate,124,lz4", "obfuscate,250,lz4", "obfuscate,0,lz4",
		"obfuscate,1,auto,lz4", "obfuscate,1", "obfuscate,01,lz4", "obfuscate,1,obfuscate,1,lz4", "lz4,1",
		"none,1", "ZSTD", " zstd", "zstd,1,2", "brotli", "",
	}
	excludeCorpus = []string{
		"/home/*/.cache", "-weird", "--exclude", "fm:/tmp", "sh:/home/**/.cache", "pp:/var/cache", "pf:/etc/shadow",
		"re:^home/[^/]+/\\.cache/", "re:\\.tmp$", "re:(", "re:[", "re:a**", "re:(?<=a)b", "re:(?=a)", "re:(?!a)",
		"re:(\\w)\\1", "re:(?P<n>a)(?P=n)", "re:(?P<n>a)", "re:(?<n>a)", "re:(?i)tmp", "re:a(?i)b", "re:(?i:a)b",
		"re:(?U)a*", "re:(?x)a b", "re:(?#c)a", "re:\\z", "re:\\Z", "re:\\pL", "re:\\p{Greek}", "re:[[:alpha:]]",
		"re:\\Qa.b\\E", "re:\\x41", "re:\\x{41}", "re:\\u0041", "re:\\0", "re:a{,3}", "re:a{2,3}", "re:a{3,2}",
		"re:a{1001}", "re:[\\b]", "re:\\bword\\b", "re:\\Astart", "re:[]a]", "re:[^]a]", "re:a|", "re:",
		"re:^/home", "re:\\C", "re:\\N{DIGIT ONE}", "re:\\é", "re:é", "re:\\a", "re:\\/", "re:x*?", "re:x*+",
		"xx:foo", "Ab:foo", "a:b", "fm:", "sh:", "pp:", "pf:", "12:x", "é1:x",
	}
	repoCorpus = []string{
		"/mnt/backup/a", "/mnt/backup/a::b", "/mnt/backup/a:", "/mnt/backup/a:b", "/mnt/backup/{hostname}",
		"/mnt/backup/{now}", "/mnt/backup/a}", "/mnt/backup/a b", "/mnt/backup/::", "/mnt/a:::b", "/mnt/ä",
	}
)

// Every value borgkit accepts, borg accepts the same way: sound, if not
// complete (a few spellings borg tolerates are refused here, listed in
// the log). The values the issue found slipping through are refused.
func TestGrammarsAgreeWithBorg(t *testing.T) {
	var items [][2]string
	var ours []string
	for _, c := range compressionCorpus {
		items = append(items, [2]string{"compression", c})
		ours = append(ours, compression(c))
	}
	for _, e := range excludeCorpus {
		items = append(items, [2]string{"exclude", e})
		ours = append(ours, excludePattern(e))
	}
	for _, r := range repoCorpus {
		items = append(items, [2]string{"repo", r})
		why := borgLocation(r)
		if why == "" && !cleanAbs(r) {
			why = "not a clean absolute path"
		}
		ours = append(ours, why)
	}
	answers := askBorg(t, items)
	stricter := 0
	for i, it := range items {
		borgOK, detail := answers[i][0].(bool), answers[i][1]
		switch {
		case ours[i] == "" && !borgOK:
			t.Errorf("%s %q: borgkit accepts it, borg refuses it: %v", it[0], it[1], detail)
		case ours[i] != "" && borgOK:
			stricter++
			t.Logf("%s %q: borg takes it, borgkit refuses it: %s", it[0], it[1], ours[i])
		}
	}
	t.Logf("%d values, %d refused here though borg would take them", len(items), stricter)
	for _, bad := range []string{"obfuscate,7,lz4", "auto,obfuscate,1,lz4", "zstd,23"} {
		if compression(bad) == "" {
			t.Errorf("compression %q accepted", bad)
		}
	}
	if borgLocation("/mnt/backup/a::b") == "" {
		t.Error(`repo path with "::" accepted`)
	}
}

func TestHostAddress(t *testing.T) {
	for _, ok := range []string{"100.64.0.1", "fd7a:115c:a1e0::1", "::1", "pi", "pi.lan", "john-ai", "nas_1.home.arpa", "a.b-c.d"} {
		if why := hostAddress(ok); why != "" {
			t.Errorf("%q: %s", ok, why)
		}
	}
	for bad, want := range map[string]string{
		"100.64.0.1:22":   "has a port",
		"pi.lan:2222":     "has a port",
		"[::1]:22":        "has a port",
		"fe80::1%eth0":    "zone",
		"-oProxyCommand":  "not a host name",
		"a b":             "not a host name",
		"a,b":             "not a host name",
		"*.lan":           "not a host name",
		"root@pi":         "not a host name",
		"pi.":             "not a host name",
		"1.2.3":           "neither an IPv4",
		"a..b":            "not a host name",
		"-pi":             "not a host name",
		"pi-":             "not a host name",
		"x\nHostName y":   "not a host name",
		"[fd7a::1]":       "not a host name",
		"999.1.1.1":       "neither an IPv4",
		"a.b/c":           "not a host name",
		"pi!":             "not a host name",
		"pi?":             "not a host name",
		"pi#":             "not a host name",
		"\"pi\"":          "not a host name",
		"pi\"":            "not a host name",
		"100.64.0.1:port": "not a host name",
	} {
		if why := hostAddress(bad); !strings.Contains(why, want) {
			t.Errorf("%q: %q, want %q", bad, why, want)
		}
	}
}

func TestHostPublicKey(t *testing.T) {
	const ed = "AAAAC3NzaC1lZDI1NTE5AAAAIA7bldKckG+fFtN2BV7jz0eSQLFQCXoTePrGqWw7UVem"
	for _, ok := range []string{"ssh-ed25519 " + ed, "ssh-ed25519 " + ed + " root@john-ai", "ssh-ed25519 " + ed + " two words"} {
		if why := hostPublicKey(ok); why != "" {
			t.Errorf("%q: %s", ok, why)
		}
	}
	for bad, want := range map[string]string{
		`command="rm -rf /" ssh-ed25519 ` + ed:      "not a key type",
		"@cert-authority * ssh-ed25519 " + ed:       "not a key type",
		"* ssh-ed25519 " + ed:                       "not a key type",
		"ssh-rsa " + ed:                             "the key is ssh-ed25519, but the line says ssh-rsa",
		"ssh-ed25519 !!!!":                          "not base64",
		"ssh-ed25519 AAAA":                          "does not parse",
		"ssh-dss " + ed:                             "not a key type",
		"ssh-ed25519":                               "want one public key line",
		"ssh-ed25519 " + ed + "\nssh-ed25519 " + ed: "line break",
	} {
		if why := hostPublicKey(bad); !strings.Contains(why, want) {
			t.Errorf("%q: %q, want %q", bad, why, want)
		}
	}
}

// The repo-inside-a-source check waives a repo only for an exclude that
// certainly covers it; one unrelated glob used to switch it off.
func TestExcludeCover(t *testing.T) {
	for e, want := range map[string]string{
		"/mnt":              "/mnt all",
		"mnt/backup/":       "/mnt/backup below",
		"fm:/mnt/backup/*":  "/mnt/backup below",
		"sh:/mnt/backup/**": "/mnt/backup below",
		"pp:/mnt/backup":    "/mnt/backup all",
		"pf:/mnt/backup":    "/mnt/backup all",
		"pp:/mnt/b*":        "/mnt/b* all",
		"/mnt/../srv":       "/srv all",
		"/":                 "/ all",
		"/tmp/*.tmp":        "uncertain",
		"/home/*/backup":    "uncertain",
		"re:^mnt/backup":    "uncertain",
		"sh:/mnt/[ab]":      "uncertain",
		"fm:":               "uncertain",
	} {
		got := "uncertain"
		if d, below, ok := excludeCover(e); ok {
			got = d + map[bool]string{true: " below", false: " all"}[below]
		}
		if got != want {
			t.Errorf("%q: %s, want %s", e, got, want)
		}
	}
}

// The inputs that escaped their field, now each refused at its line and
// column before anything is planned.
func TestParseRefusesValuesThatEscapeTheirField(t *testing.T) {
	srv := func(extra ...string) string {
		return withHeader(append([]string{
			"  - name: srv",           // 7
			"    role: server",        // 8
			"    address: 100.64.0.1", // 9
		}, extra...)...)
	}
	repo := func(extra ...string) string {
		return srv(append([]string{
			"    repos:",                  // 10
			"      - name: sys",           // 11
			"        path: /srv/borg/sys", // 12
			"        sources: [/home]",    // 13
		}, extra...)...)
	}
	share := func(creds string) string {
		return srv("    shares:", "      - name: nas", "        source: //nas/b", "        mountpoint: /mnt/nas", "        credentials: '"+creds+"'")
	}
	for _, tc := range []struct {
		name, src string
		line, col int
		msg       string
	}{
		{"credentials with a comma", share("/etc/nas,uid=0,file_mode=0777"), 14, 22, "would end the mount option"},
		{"credentials with a space", share("/etc/nas creds"), 14, 22, "whitespace"},
		{"credentials with a quote", share(`/etc/nas"x`), 14, 22, "quote"},
		{"mountpoint with a backslash", srv("    disks:", "      - name: d", "        uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f", `        mountpoint: '/mnt/a\040b'`), 13, 21, "backslash"},
		{"mountpoint a shell splits", srv("    disks:", "      - name: d", "        uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f", `        mountpoint: '/mnt/a;b'`), 13, 21, "read by a shell"},
		{"repo path with ::", srv("    repos:", "      - name: sys", "        path: /srv/borg/a::b", "        sources: [/home]"), 12, 15, `contains "::"`},
		{"repo path ending in :", srv("    repos:", "      - name: sys", "        path: '/srv/borg/a:'", "        sources: [/home]"), 12, 15, `ends with ":"`},
		{"repo path with a placeholder", srv("    repos:", "      - name: sys", "        path: '/srv/borg/{hostname}'", "        sources: [/home]"), 12, 15, "placeholders"},
		{"exclude with an unknown style", repo("        excludes: ['xx:/tmp']"), 14, 20, "does not know"},
		{"exclude regex that does not compile", repo("        excludes: ['re:(']"), 14, 20, "not a regular expression"},
		{"exclude regex Go and Python read apart", repo("        excludes: ['re:a(?i)b']"), 14, 20, "must start the expression"},
		{"exclude regex with a leading /", repo("        excludes: ['re:^/home/x']"), 14, 20, "can never match"},
		{"compression borg refuses", repo("        compression: obfuscate,7,lz4"), 14, 22, "1 to 6 or 110 to 123"},
		{"auto around obfuscate", repo("        compression: auto,obfuscate,1,lz4"), 14, 22, "not a compression borg knows"},
		{"host key with options", srv(`    ssh: {host_public_key: 'command="x" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA7bldKckG+fFtN2BV7jz0eSQLFQCXoTePrGqWw7UVem'}`), 10, 28, "not a key type"},
		{"address with a port", withHeader("  - name: srv", "    role: server", "    address: 100.64.0.1:2222"), 9, 14, "has a port"},
		{"host name with a port", withHeader("  - name: srv", "    role: server", "    address: srv.lan:2222"), 9, 14, "write the host name srv.lan here"},
		{"smtp host with a port", srv("    alerts: {smtp: {host: 'smtp.b.c:587'}}"), 10, 27, "has a port"},
		{"glob exclude does not waive the check", withHeader("  - name: srv", "    role: server", "    address: 100.64.0.1", "    repos:", "      - name: sys", "        path: /srv/borg/sys", "        sources: [/srv]", "        excludes: ['/tmp/*.tmp']"), 13, 19, "no exclude certainly covers it"},
		{"regex exclude does not waive the check", withHeader("  - name: srv", "    role: server", "    address: 100.64.0.1", "    repos:", "      - name: sys", "        path: /srv/borg/sys", "        sources: [/srv]", "        excludes: ['re:^srv/borg']"), 13, 19, "no exclude certainly covers it"},
		{"from with a quoted local part", srv("    alerts: {from: '\"john doe\"@b.c'}"), 10, 20, "must be plain"},
		{"smtp user with a quote", srv("    alerts: {smtp: {host: smtp.b.c, user: 'a\"b'}}"), 10, 43, "unquoted"},
		{"password file a shell splits", srv("    alerts: {smtp: {host: smtp.b.c, password_file: '/etc/a b'}}"), 10, 52, "read by a shell"},
		{"VM name ..", repo("        vms: ['..']"), 14, 15, "starting with a letter, digit or '_'"},
		{"VM name like an option", repo("        vms: ['-c']"), 14, 15, "starting with a letter, digit or '_'"},
		{"VM name with a glob", repo("        vms: ['web*']"), 14, 15, "letters, digits and . _ + -"},
		{"VM name with the archive separator", repo("        vms: ['a:b']"), 14, 15, "letters, digits and . _ + -"},
		{"VM name that virsh reads as an ID", repo("        vms: ['102']"), 14, 15, "domain ID"},
		{"VM name that virsh reads as a UUID", repo("        vms: ['3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f']"), 14, 15, "domain UUID"},
		{"VM name too long", repo("        vms: ['" + strings.Repeat("v", 65) + "']"), 14, 15, "longer than 64"},
		{"VM listed twice", repo("        vms: [web, web]"), 14, 20, `VM "web" is already used`},
		{"container name with an underscore", repo("        containers: ['my_box']"), 14, 22, "machine name grammar"},
		{"container name with an empty label", repo("        containers: ['a..b']"), 14, 22, "machine name grammar"},
		{"container name .host", repo("        containers: ['.host']"), 14, 22, "machine name grammar"},
		{"container name like an option", repo("        containers: ['-x']"), 14, 22, "starts with '-'"},
		{"container in two repos", srv("    repos:", "      - {name: a, path: /srv/borg/a, containers: [dns]}", "      - {name: b, path: /srv/borg/b, containers: [dns]}"), 12, 51, `container "dns" is already used`},
		{"archive prefix that takes guest archives", repo("        vms: [web]", "        archive_prefix: vm"), 15, 25, "prune of the repo's own archives"},
		{"repo without sources or guests", srv("    repos:", "      - {name: a, path: /srv/borg/a}"), 11, 9, "sources is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("escape.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("no %q in:\n%v", tc.msg, err)
			}
			if tc.line == 0 {
				return
			}
			var ps Problems
			var p *Problem
			found := false
			if errorsAs(err, &ps) {
				for _, q := range ps {
					if strings.Contains(q.Msg, tc.msg) {
						p, found = q, true
					}
				}
			}
			if !found || p.Line != tc.line || p.Col != tc.col {
				t.Errorf("want line %d col %d:\n%v", tc.line, tc.col, err)
			}
		})
	}
}

// The forms that are fine stay accepted.
func TestParseAcceptsWhatFitsEveryField(t *testing.T) {
	src := withHeader(
		"  - name: srv",
		"    role: server",
		"    address: fd7a:115c:a1e0::1",
		"    ssh: {host_public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA7bldKckG+fFtN2BV7jz0eSQLFQCXoTePrGqWw7UVem root@srv'}",
		"    shares: [{name: nas, source: //nas.lan/b, mountpoint: /mnt/nas, credentials: /etc/borgkit/nas.cred}]",
		"    repos:",
		"      - name: sys",
		"        path: /srv/borg/sys:1",
		"        sources: [/, /srv]",
		"        excludes: ['/srv/borg/*', 're:^home/[^/]+/\\.cache/', 'sh:/home/**/*.tmp', '-rf']",
		"        compression: obfuscate,110,auto,zstd,19",
		"        vms: [home-assistant, claude_code.dev, vm+1]",
		"        containers: [adguard, mc-1.lan]",
		"      - name: guests",
		"        path: /srv/borg/guests",
		"        vms: [openclaw]",
		"    alerts: {to: 'Ops <a@b.c>, c@d.e', from: 'Backup <backup@b.c>'}",
	)
	if _, err := Parse("ok.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
}

func errorsAs(err error, ps *Problems) bool {
	e, ok := err.(Problems)
	if ok {
		*ps = e
	}
	return ok
}
