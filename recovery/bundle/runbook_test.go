package bundle

import (
	"flag"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// goldenManifest is a site with fixed values: the example config's
// john-ai, its Pi and the archive host, two repo kinds and a NAS share.
func goldenManifest() *Manifest {
	return &Manifest{
		Format: Format, Site: "home", Server: "john-ai", Version: "v1.0.0",
		Created: time.Date(2026, 6, 12, 6, 0, 0, 0, time.UTC),
		Hosts: []Host{
			{Name: "john-ai", Role: "server", Address: "100.64.0.1", SSHUser: "root", SSHPort: 22},
			{Name: "pi", Role: "offsite", Address: "100.64.0.2", SSHUser: "root", SSHPort: 22,
				HostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzB8p8XUUE01L47t1DtndLr54zuWJJ48RXaK+q1ZzNX root@pi"},
			{Name: "archive", Role: "archive", Address: "100.64.0.3", SSHUser: "root", SSHPort: 2222},
		},
		Disks: []Disk{{
			Host: "pi", Name: "backup", Device: "/dev/disk/by-id/usb-WD_Elements_25A3_575834314135383432363139-0:0",
			FSUUID: "b6e1f0a2-5c3d-4e8f-a1b2-c3d4e5f60718", FSType: "ext4", Mountpoint: "/mnt/backup", Mapper: "backup",
			LUKSUUID: "0f4c2a1e-6b7d-4e3f-9a8b-1c2d3e4f5a6b", Keyslot: 0, KDF: "argon2id",
			Keyfile: "luks/pi-backup.key", Header: "luks/pi-backup-header.img", Repos: []string{"john-ai", "john-ai-vms"},
		}},
		Repos: []Repo{
			{Host: "john-ai", Name: "john-ai", Path: "/mnt/backup/john-ai", Encryption: "repokey-blake2",
				Sources: []string{"/", "/home", "/var"}, Canary: "/etc/hostname",
				KeyExport: "borg/john-ai.borg-key", Passphrase: "borg/john-ai.pass", PaperKey: "borg/john-ai.paper-key.txt",
				Copies: []Copy{
					{Mirror: "nas", Path: "/mnt/nas/backups/john-ai", Share: "//nas.lan/backups", ShareMount: "/mnt/nas"},
					{Mirror: "offsite", Host: "pi", Path: "/mnt/backup/john-ai"},
				}},
			{Host: "john-ai", Name: "john-ai-vms", Path: "/mnt/backup/john-ai-vms", Encryption: "keyfile-blake2",
				Sources:   []string{"/storage/libvirt/images"},
				KeyExport: "borg/john-ai-vms.borg-key", Passphrase: "borg/john-ai-vms.pass",
				Copies: []Copy{{Mirror: "offsite", Host: "pi", Path: "/mnt/backup/john-ai-vms"}}},
			{Host: "archive", Name: "backup-repo", Path: "/tank/Secure/Borg/backup-repo", Encryption: "none",
				Sources: []string{"/tank/Secure/backup"}},
		},
		Files: []File{
			{Path: "borg/john-ai-vms.borg-key", Role: RoleBorgKey, For: "john-ai/john-ai-vms"},
			{Path: "borg/john-ai-vms.pass", Role: RolePassphrase, For: "john-ai/john-ai-vms"},
			{Path: "borg/john-ai.borg-key", Role: RoleBorgKey, For: "john-ai/john-ai"},
			{Path: "borg/john-ai.paper-key.txt", Role: RolePaperKey, For: "john-ai/john-ai"},
			{Path: "borg/john-ai.pass", Role: RolePassphrase, For: "john-ai/john-ai"},
			{Path: "borgkit.yaml", Role: RoleConfig},
			{Path: "luks/pi-backup-header.img", Role: RoleLUKSHeader, For: "pi/backup"},
			{Path: "luks/pi-backup.key", Role: RoleLUKSKeyfile, For: "pi/backup"},
			{Path: "runbook.html", Role: RoleRunbook},
			{Path: "runbook.md", Role: RoleRunbook},
			{Path: "ssh/known_hosts", Role: RoleKnownHosts, For: "john-ai"},
		},
	}
}

func TestRunbookGolden(t *testing.T) {
	md, html, err := RenderRunbook(goldenManifest())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range runbookDefects(string(md)) {
		t.Error(p)
	}
	for name, got := range map[string][]byte{"runbook.md": md, "runbook.html": html} {
		golden(t, filepath.Join("testdata", name+".golden"), got)
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "line " + strconv.Itoa(i+1) + ":\n- " + a + "\n+ " + b
		}
	}
	return ""
}

// The runbook's commands must work where the values are odd: a device
// with shell metacharacters is quoted, and nothing from the config can
// become HTML markup.
func TestRunbookQuotesAndEscapes(t *testing.T) {
	m := goldenManifest()
	m.Site = "<script>alert(1)</script>"
	m.Disks[0].Device = "/dev/disk/by-id/usb-Odd Name$(x)"
	m.Hosts[0].Address = "a<b>&c"
	md, html, err := RenderRunbook(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), `DEV='/dev/disk/by-id/usb-Odd Name$(x)'`) {
		t.Errorf("device not quoted:\n%s", md)
	}
	for _, bad := range []string{"<script>", "<b>"} {
		if strings.Contains(string(html), bad) {
			t.Errorf("HTML contains %q unescaped", bad)
		}
	}
	if !strings.Contains(string(html), "&lt;script&gt;") {
		t.Error("title not escaped")
	}
}

func TestMarkdownToHTML(t *testing.T) {
	got := markdownToHTML([]byte("# T\n\npara `a<b>` and **bold**\nmore\n\n- x\n- y\n\n2. two\n3. three\n\n```sh\necho \"$B\" && <x>\n```\n\n| a | b\\|c |\n| --- | --- |\n| `1` | 2 |\n"))
	want := `<h1 id="t">T</h1>
<p>para <code>a&lt;b&gt;</code> and <strong>bold</strong> more</p>
<ul>
<li>x</li>
<li>y</li>
</ul>
<ol start="2">
<li>two</li>
<li>three</li>
</ol>
<pre><code class="language-sh">echo &#34;$B&#34; &amp;&amp; &lt;x&gt;</code></pre>
<table>
<thead><tr><th>a</th><th>b|c</th></tr></thead>
<tbody>
<tr><td><code>1</code></td><td>2</td></tr>
</tbody>
</table>
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// A site adopted from a hand-built setup gets the runbook's section on
// it: where the old layout stays, and how to go back. Others do not.
func TestRunbookAdoptedSection(t *testing.T) {
	md, _, err := RenderRunbook(goldenManifest())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(md), "hand-built") {
		t.Errorf("a site set up from nothing got the adoption section:\n%s", md)
	}
	m := goldenManifest()
	m.Hosts[1].MirrorRoot = "/mnt/backup"
	m.Hosts[0].Retired = []string{"/etc/cron.d/john-ai-backups", "/usr/local/bin/backup-nightly.sh"}
	m.Repos[0].ArchivePrefix = "john-ai-"
	md, _, err = RenderRunbook(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## 9. Switching from a hand-built setup",
		"The copies on pi are where the old setup kept them: `/mnt/backup/REPO`",
		"Archives of john-ai are named `john-ai-<date>`",
		"`/etc/cron.d/john-ai-backups` → `/var/lib/borgkit/retired/etc/cron.d/john-ai-backups.borgkit-old`, `/usr/local/bin/backup-nightly.sh` → `/usr/local/bin/backup-nightly.sh.borgkit-old`",
		"uncomment the fstab lines under `# borgkit took over the next line`"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("the runbook lacks %q:\n%s", want, md[strings.Index(string(md), "## 7."):])
		}
	}
}

// A bundle on an encrypted stick opens the stick before anything else:
// the runbook's first commands are cryptsetup open by the stick's LUKS
// UUID and a read-only mount, and the checksum check runs in the bundle's
// directory on it.
func TestRunbookOpensTheStickFirst(t *testing.T) {
	m := goldenManifest()
	m.Stick = &Stick{LUKSUUID: "7d1b6c2e-0a4f-4e8b-9c3d-2e1f0a9b8c7d", FSUUID: "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d", Mapper: "borgkit-stick", Dir: "borgkit-recovery"}
	md, html, err := RenderRunbook(m)
	if err != nil {
		t.Fatal(err)
	}
	text := string(md)
	open := "cryptsetup open --readonly /dev/disk/by-uuid/7d1b6c2e-0a4f-4e8b-9c3d-2e1f0a9b8c7d borgkit-stick\nmkdir -p /mnt/borgkit-stick\nmount -o ro,noload /dev/mapper/borgkit-stick /mnt/borgkit-stick\ncd /mnt/borgkit-stick/borgkit-recovery\n"
	i, j := strings.Index(text, open), strings.Index(text, "sha256sum -c MANIFEST.sha256")
	if i < 0 || j < 0 || i > j || strings.Index(text, "```sh") < strings.Index(text, "Open the stick first") {
		t.Fatalf("the stick is not opened first (open at %d, checksums at %d):\n%s", i, j, text[:min(len(text), 1500)])
	}
	if !strings.Contains(string(html), "cryptsetup open --readonly /dev/disk/by-uuid/7d1b6c2e") {
		t.Error("the printable runbook lacks the stick's open")
	}
	m.Stick = nil
	if md, _, _ := RenderRunbook(m); strings.Contains(string(md), "stick") {
		t.Error("a bundle in a plain directory speaks of a stick")
	}
}

// A repo on a borg server: the runbook's REPO= is its ssh:// URL and it
// says which host key to trust, whatever mirrors the others have.
func TestRunbookRemoteRepo(t *testing.T) {
	m := goldenManifest()
	r := &m.Repos[0]
	r.Path = "ssh://borg@backup.example.net:2222/./john-ai/system"
	r.HostKey = "[backup.example.net]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1ng9zpMTlcnu2h7OJdqBaCh3GmknPhO+Mmc5czoopO"
	r.Copies = nil
	md, _, err := RenderRunbook(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"REPO=" + shq(r.Path), r.HostKey, "borg server"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("runbook lacks %q:\n%s", want, md)
		}
	}
}
