package bundle

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
)

// seedSite is the example config cut to one seed's hosts (all of them for
// "example"), and the host the bundle is written on.
type seedSite struct {
	name, server string
	hosts        []string
}

var seedSites = []seedSite{
	{"example", "john-ai", nil},
	{"seed1", "john-ai", []string{"john-ai", "pi"}},
	{"seed2", "archive", []string{"archive"}},
}

func seedConfig(t *testing.T, s seedSite) (*config.Config, *config.Host) {
	t.Helper()
	cfg, err := config.Parse("example.yaml", config.Example())
	if err != nil {
		t.Fatal(err)
	}
	if s.hosts != nil {
		cfg.Hosts = slices.DeleteFunc(cfg.Hosts, func(h config.Host) bool { return !slices.Contains(s.hosts, h.Name) })
	}
	server, ok := cfg.Host(s.server)
	if !ok {
		t.Fatalf("no host %s", s.server)
	}
	return cfg, server
}

// seedManifest is Layout of a seed with what Write reads from the header
// backup filled in, as a written bundle has it.
func seedManifest(t *testing.T, s seedSite) (*Manifest, *config.Config) {
	t.Helper()
	cfg, server := seedConfig(t, s)
	m, err := Layout(cfg, server, time.Date(2026, 6, 12, 6, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	m.Version = "v1.0.0"
	for i := range m.Disks {
		m.Disks[i].LUKSUUID, m.Disks[i].Keyslot, m.Disks[i].KDF = "0f4c2a1e-6b7d-4e3f-9a8b-1c2d3e4f5a6b", 0, "argon2id"
	}
	return m, cfg
}

// The runbook of each seed's config, rendered from the config alone, is
// reviewed as a golden file.
func TestRunbookSeedsGolden(t *testing.T) {
	for _, s := range seedSites {
		t.Run(s.name, func(t *testing.T) {
			m, _ := seedManifest(t, s)
			md, _, err := RenderRunbook(m)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "runbook-"+s.name+".md.golden"), md)
		})
	}
}

func golden(t *testing.T, p string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update after checking the change):\n%s", p, firstDiff(string(want), string(got)))
	}
}

// Every host of a seed's config gets real values: each repo a real REPO
// and, when encrypted, its key and passphrase from the bundle; each
// encrypted dataset its key; each VM a virsh define from its saved XML;
// and no placeholder or empty argument anywhere.
func TestRunbookCoversEveryHost(t *testing.T) {
	for _, s := range seedSites {
		t.Run(s.name, func(t *testing.T) {
			m, cfg := seedManifest(t, s)
			mdb, _, err := RenderRunbook(m)
			if err != nil {
				t.Fatal(err)
			}
			md := string(mdb)
			for _, p := range runbookDefects(md) {
				t.Error(p)
			}
			for _, h := range cfg.Hosts {
				for _, r := range h.Repos {
					br, ok := m.Repo(r.Name)
					if !ok {
						t.Errorf("repo %s/%s is not in the bundle", h.Name, r.Name)
						continue
					}
					if r.Encrypted() {
						if br.KeyExport == "" || br.Passphrase == "" {
							t.Errorf("repo %s/%s: key export %q, passphrase %q in the bundle", h.Name, r.Name, br.KeyExport, br.Passphrase)
						} else if !strings.Contains(md, `cat '$B/`+br.Passphrase+`'`) || !strings.Contains(md, `borg key import /srv/recovery/`+r.Name+` "$B/`+br.KeyExport+`"`) {
							t.Errorf("repo %s/%s: the runbook does not use its passphrase and key export", h.Name, r.Name)
						}
					}
					if !regexp.MustCompile(`(?m)^REPO=\S*/` + regexp.QuoteMeta(r.Name) + `$`).MatchString(md) {
						t.Errorf("repo %s/%s: no REPO= line with its path", h.Name, r.Name)
					}
					for _, vm := range r.VMs {
						if !strings.Contains(md, "--glob-archives 'vm:"+vm+":*'") || !strings.Contains(md, "virsh define /var/lib/borgkit/vm-xml/"+vm+".xml") {
							t.Errorf("VM %s: no extract of its own archive and virsh define from its saved XML", vm)
						}
					}
					for _, c := range r.Containers {
						if !strings.Contains(md, "--glob-archives 'container:"+c+":*'") || !strings.Contains(md, "machinectl start "+c) {
							t.Errorf("container %s: no extract of its own archive and machinectl start", c)
						}
					}
				}
				for _, d := range h.Datasets {
					if d.KeyFile() == "" {
						continue
					}
					want := `zfs load-key -L file://"$B/zfs/` + h.Name + "-" + bundleName(d.Name) + `.key" ` + d.Name
					if !strings.Contains(md, want) {
						t.Errorf("dataset %s/%s: runbook lacks %q", h.Name, d.Name, want)
					}
					if !strings.Contains(md, " "+d.KeyFile()+"\n") {
						t.Errorf("dataset %s/%s: the rebuild does not put its key back at %s", h.Name, d.Name, d.KeyFile())
					}
				}
				for _, d := range h.Disks {
					if d.LUKS != nil && !strings.Contains(md, "luks/"+h.Name+"-"+d.Name+".key") {
						t.Errorf("disk %s/%s: no keyfile in the runbook", h.Name, d.Name)
					}
				}
			}
		})
	}
}

// The defect check itself must catch what the runbook used to print.
func TestRunbookDefectsCatchPlaceholders(t *testing.T) {
	for _, bad := range []string{
		"```sh\nREPO=/path/to/backup-repo\n```\n",
		"```sh\nborg key import /srv/recovery/backup-repo \n```\n",
		"```sh\nB=/media/USER/STICK/bundle\n```\n",
		"```sh\ncryptsetup open --key-file  \"$DEV\" backup\n```\n",
		"```sh\nzfs load-key -L file://\"$B/\" tank/Secure\n```\n",
		"```sh\nmount -t cifs -o ro,username=USER //nas/b /mnt\n```\n",
		"```sh\nREPO=\n```\n",
		"```sh\nborg key import \"$REPO\" \"\"\n```\n",
		"- Device: ``\n",
		"```sh\ncryptsetup open --header\n```\n",
	} {
		if len(runbookDefects(bad)) == 0 {
			t.Errorf("no defect found in %q", bad)
		}
	}
	if p := runbookDefects("```sh\nB=$(pwd)\nREPO=/mnt/x\nDEV=/dev/sda\nzfs mount -a\nborg list \"$REPO::$ARCHIVE\"\n```\n"); len(p) != 0 {
		t.Errorf("defects in a good runbook: %v", p)
	}
}

var (
	placeholderWords = regexp.MustCompile(`/path/to|<[a-z][a-z -]*>|\b(TODO|XXX|CHANGEME|FIXME)\b`)
	upperWord        = regexp.MustCompile(`(^|[^A-Za-z0-9_$])([A-Z][A-Z0-9_]{2,})([^A-Za-z0-9_.]|$)`)
	assigned         = regexp.MustCompile(`(?m)(?:^|\s)([A-Z_][A-Z0-9_]*)=|\bread\b.*\s([A-Z_][A-Z0-9_]*)$`)
	emptyInline      = regexp.MustCompile("(^|[^`])``([^`]|$)")
	needsValue       = regexp.MustCompile(`(?:^|\s)(--key-file|--header|--header-backup-file|-o|-L|-m|--bundle|--disk|--mirror)(\s+-|\s*$)`)
)

// runbookDefects lists every placeholder and empty argument of a rendered
// runbook: in its commands an upper-case word no command sets, an empty
// quoted argument, a doubled or trailing blank, an option without its
// value, a bundle path with no file, an empty assignment; anywhere, an
// empty inline code span or a /path/to.
func runbookDefects(md string) []string {
	var out []string
	add := func(n int, line, why string) {
		out = append(out, fmt.Sprintf("runbook line %d: %s: %q", n, why, line))
	}
	set := map[string]bool{}
	for _, m := range assigned.FindAllStringSubmatch(md, -1) {
		set[m[1]+m[2]] = true
	}
	code := false
	for i, line := range strings.Split(md, "\n") {
		n := i + 1
		if strings.HasPrefix(line, "```") {
			// Only shell blocks are commands; a bare block is quoted text
			// (a host key).
			code = !code && line == "```sh"
			continue
		}
		if placeholderWords.MatchString(line) {
			add(n, line, "placeholder")
		}
		if !code {
			if emptyInline.MatchString(line) {
				add(n, line, "empty inline code")
			}
			continue
		}
		body := strings.TrimLeft(line, " ")
		for _, m := range upperWord.FindAllStringSubmatchIndex(body, -1) {
			w := body[m[4]:m[5]]
			if !set[w] && !strings.HasPrefix(body[m[5]:], "=") {
				add(n, line, "upper-case placeholder "+w)
			}
		}
		switch {
		case strings.Contains(body, `""`) || strings.Contains(body, `''`):
			add(n, line, "empty argument")
		case strings.Contains(body, "  ") || strings.HasSuffix(body, " "):
			add(n, line, "empty argument (doubled or trailing blank)")
		case needsValue.MatchString(body):
			add(n, line, "option without its value")
		case strings.Contains(body, `"$B/"`) || strings.Contains(body, `$B/'`):
			add(n, line, "bundle path without a file")
		case regexp.MustCompile(`(?:^|\s)[A-Z_][A-Z0-9_]*=(\s|$)`).MatchString(body):
			add(n, line, "empty assignment")
		}
	}
	return out
}
