package bundletest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
)

// archiveYAML is the second seed's archive host as the example config has
// it, cut to what the bundle reads: an encrypted dataset with a raw
// keyfile and an encrypted borg repo on it.
const archiveYAML = `  - name: archive
    role: archive
    address: 100.64.0.3
    scheduler: systemd
    datasets:
      - name: tank/Secure
        properties:
          encryption: aes-256-gcm
          keyformat: raw
          keylocation: file:///etc/borgkit/keys/tank-Secure.key
      - name: tank/Secure/backup
      - name: tank/Secure/Borg
    repos:
      - name: backup-repo
        path: /tank/Secure/Borg/backup-repo
        sources: [/tank/Secure/backup]
        encryption: repokey-blake2
`

// Archive is the shared site with the second seed's archive host added:
// its own tree (what provisioning leaves on it) with a real borg repo,
// its passphrase and key export, and the dataset's raw ZFS key.
type Archive struct {
	*Site
	Cfg    *config.Config // the site's config plus the archive host
	YAML   []byte         // and its text
	Root   string         // the archive host's tree
	Src    host.Host      // host.NewRooted over Root
	Repo   string         // the repo's real path
	ZFSKey string         // the key file as in the config
	// Data is what the repo's one archive holds, under Root.
	Data string
}

// Real returns the real path of p on the archive host.
func (a *Archive) Real(p string) string { return filepath.Join(a.Root, p) }

// WithArchive builds the archive host's tree under a new temp dir; the
// shared site is not changed.
func WithArchive(tb testing.TB) *Archive {
	tb.Helper()
	s := Shared(tb)
	yaml := append(append([]byte(nil), s.ConfigYAML...), archiveYAML...)
	cfg, err := config.Parse("borgkit.yaml", yaml)
	if err != nil {
		tb.Fatalf("config with the archive host: %v", err)
	}
	root := filepath.Join(tb.TempDir(), "archive")
	a := &Archive{Site: s, Cfg: cfg, YAML: yaml, Root: root, Src: host.NewRooted("archive", root),
		Repo: filepath.Join(root, "tank/Secure/Borg/backup-repo"), ZFSKey: "/etc/borgkit/keys/tank-Secure.key",
		Data: "/tank/Secure/backup"}
	keys := a.Real(layout.KeysDir)
	if err := os.MkdirAll(keys, 0o700); err != nil {
		tb.Fatal(err)
	}
	zkey := make([]byte, 32)
	rand.Read(zkey)
	if err := write(a.Real(a.ZFSKey), zkey, 0o400); err != nil {
		tb.Fatal(err)
	}
	pass := make([]byte, 18)
	rand.Read(pass)
	passPath := a.Real(layout.PassphraseFile("backup-repo"))
	if err := write(passPath, []byte(hex.EncodeToString(pass)+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	for i := range 4 {
		if err := write(a.Real(filepath.Join(a.Data, "share", "doc"+string(rune('a'+i))+".txt")), []byte("pulled from the live server "+string(rune('a'+i))+"\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	env := []string{"BORG_BASE_DIR=" + a.Real("/root"), "BORG_DISPLAY_PASSPHRASE=no", "BORG_PASSCOMMAND=cat " + passPath}
	for _, argv := range [][]string{
		{"borg", "init", "--encryption", "repokey-blake2", "--make-parent-dirs", a.Repo},
		{"borg", "create", a.Repo + "::nightly-2026-06-12T02:30:00", "tank/Secure/backup"},
		{"borg", "key", "export", a.Repo, a.Real(layout.KeyExport("backup-repo"))},
	} {
		if _, err := run(root, env, argv...); err != nil {
			tb.Fatal(err)
		}
	}
	return a
}
