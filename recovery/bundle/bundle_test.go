package bundle_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/progress"
	"github.com/borgkit/borgkit/recovery/bundle"
	"github.com/borgkit/borgkit/recovery/bundle/bundletest"
	"github.com/borgkit/borgkit/testing/borghome"
)

func TestMain(m *testing.M) { borghome.Main(m, bundletest.Cleanup) }

var fixedNow = func() time.Time { return time.Date(2026, 6, 12, 6, 0, 0, 0, time.UTC) }

// writeBundle writes a fresh bundle of the shared site into a new temp dir.
func writeBundle(t *testing.T, opts bundle.Options) (*bundletest.Site, *bundle.Manifest) {
	t.Helper()
	s := bundletest.Shared(t)
	dir := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() { bundletest.MakeWritable(t, dir) })
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	m, err := bundle.Write(context.Background(), s.Cfg, s.Server, s.Src, dir, opts)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return s, m
}

// copyBundle copies a bundle to a writable place a test may damage.
func copyBundle(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	bundletest.MakeWritable(t, dst)
	return dst
}

func TestWriteVerify(t *testing.T) {
	var log bytes.Buffer
	s, m := writeBundle(t, bundle.Options{Version: "test", Progress: progress.New(&log, false)})
	ctx := context.Background()

	// Each slow phase says what it does, a plain line each off a terminal.
	for _, want := range []string{"checking the borg key of repo john-ai/", "proving the keyfile of pi/", "writing the runbook and MANIFEST.sha256"} {
		if !strings.Contains(log.String(), "\n"+want) && !strings.HasPrefix(log.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, log.String())
		}
	}
	if strings.Contains(log.String(), "\r") {
		t.Errorf("progress off a terminal redraws:\n%q", log.String())
	}

	// Modes: files 0400, directories 0500.
	err := filepath.WalkDir(m.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		want := fs.FileMode(0o400)
		if d.IsDir() {
			want = 0o500
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// What bundle.json says.
	got, err := bundle.Open(m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Disks) != 1 || got.Disks[0].LUKSUUID != s.LUKSUUID || got.Disks[0].Device != "/dev/disk/by-id/usb-test" ||
		got.Disks[0].Keyslot != 0 || got.Disks[0].KDF != "pbkdf2" || strings.Join(got.Disks[0].Repos, ",") != "john-ai,john-ai-docker" {
		t.Errorf("disks = %+v", got.Disks)
	}
	roles := map[string]string{}
	for _, f := range got.Files {
		roles[f.Path] = f.Role
	}
	for p, role := range map[string]string{
		"luks/pi-backup.key":           bundle.RoleLUKSKeyfile,
		"luks/pi-backup-header.img":    bundle.RoleLUKSHeader,
		"borg/john-ai.borg-key":        bundle.RoleBorgKey,
		"borg/john-ai.pass":            bundle.RolePassphrase,
		"borg/john-ai-docker.pass":     bundle.RolePassphrase,
		"ssh/known_hosts":              bundle.RoleKnownHosts,
		"borgkit.yaml":                 bundle.RoleConfig,
		"runbook.md":                   bundle.RoleRunbook,
		"runbook.html":                 bundle.RoleRunbook,
		"borg/john-ai-docker.borg-key": bundle.RoleBorgKey,
	} {
		if roles[p] != role {
			t.Errorf("file %s has role %q, want %q", p, roles[p], role)
		}
	}
	r, ok := got.Repo("john-ai")
	if !ok || r.Encryption != "repokey-blake2" || r.Canary != "/etc/hostname" || len(r.Copies) != 2 ||
		r.Copies[0].Share != "//nas.lan/backups" || r.Copies[1].Host != "pi" || r.Copies[1].Path != "/mnt/backup/borgkit/john-ai" {
		t.Errorf("repo john-ai = %+v", r)
	}
	if m.Digest == "" {
		t.Error("no manifest digest")
	}

	// The runbook carries the real values.
	md, _ := os.ReadFile(filepath.Join(m.Dir, "runbook.md"))
	for _, want := range []string{
		`cryptsetup open --readonly --key-file "$B/luks/pi-backup.key" "$DEV" backup`,
		`cryptsetup open --readonly --header "$B/luks/pi-backup-header.img" --key-file "$B/luks/pi-backup.key" "$DEV" backup`,
		"DEV=/dev/disk/by-id/usb-test", s.LUKSUUID, "b6e1f0a2-5c3d-4e8f-a1b2-c3d4e5f60718",
		`export BORG_PASSCOMMAND="cat '$B/borg/john-ai.pass'"`, "REPO=/mnt/recovery/pi-backup/borgkit/john-ai",
		`borg key import "$REPO" "$B/borg/john-ai-docker.borg-key"`, "mount -o ro,noload /dev/mapper/backup /mnt/recovery/pi-backup",
		`borg extract --bypass-lock --list "$REPO::$ARCHIVE" etc/hostname`,
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("runbook.md lacks %q", want)
		}
	}

	// Verify, with the mirror as repo copies: everything OK, mirror untouched.
	before := bundletest.TreeHash(t, s.Mirror)
	rep, err := bundle.Verify(ctx, m.Dir, bundle.VerifyOptions{RepoRoots: []string{s.Mirror}})
	if err != nil {
		var b strings.Builder
		rep.WriteText(&b)
		t.Fatalf("Verify: %v\n%s", err, b.String())
	}
	if after := bundletest.TreeHash(t, s.Mirror); after != before {
		t.Error("Verify changed the mirror")
	}
	kinds := map[string]int{}
	for _, it := range rep.Items {
		if it.Status != bundle.StatusOK {
			t.Errorf("item %+v not OK", it)
		}
		kinds[it.Kind]++
	}
	if kinds[bundle.KindFile] != len(got.Files)+1 || kinds[bundle.KindLUKS] != 1 || kinds[bundle.KindBorgKey] != 2 || kinds[bundle.KindRepo] != 2 {
		t.Errorf("item kinds = %v", kinds)
	}
	if rep.ManifestDigest != m.Digest {
		t.Errorf("digest %s, Write said %s", rep.ManifestDigest, m.Digest)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("verify report:\n%s", text.String())
}

func TestSha256sumChecksTheBundle(t *testing.T) {
	bundletest.Require(t, "sha256sum")
	_, m := writeBundle(t, bundle.Options{})
	cmd := exec.Command("sha256sum", "--strict", "-c", bundle.ManifestName)
	cmd.Dir = m.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), ": OK\n"); n != len(m.Files)+1 {
		t.Errorf("sha256sum checked %d files, want %d:\n%s", n, len(m.Files)+1, out)
	}
}

// A flipped byte anywhere in any file fails Verify, naming the file. The
// bytes are flipped in place and flipped back, one at a time: copying a
// bundle with its 16 MiB header backup per case would dominate the test.
func TestVerifyNamesTheDamagedFile(t *testing.T) {
	_, m := writeBundle(t, bundle.Options{})
	dir := copyBundle(t, m.Dir)
	names := []string{bundle.ManifestName, bundle.IndexName}
	for _, f := range m.Files {
		names = append(names, f.Path)
	}
	for _, name := range names {
		for _, where := range []string{"first", "middle", "last"} {
			t.Run(name+"/"+where, func(t *testing.T) {
				p := filepath.Join(dir, name)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				i := map[string]int{"first": 0, "middle": len(b) / 2, "last": len(b) - 1}[where]
				flip := func() {
					t.Helper()
					f, err := os.OpenFile(p, os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					b[i] ^= 0x01
					if _, err := f.WriteAt(b[i:i+1], int64(i)); err != nil {
						t.Fatal(err)
					}
				}
				flip()
				defer flip()
				rep, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{})
				if err == nil {
					t.Fatalf("Verify passed with byte %d of %s flipped", i, name)
				}
				if !errors.Is(err, bundle.ErrVerify) {
					t.Errorf("error %v does not wrap ErrVerify", err)
				}
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error does not name %s: %v", name, err)
				}
				if rep.OK() {
					t.Error("report says OK")
				}
			})
		}
	}
	// Every flip was undone: the bundle verifies again.
	if _, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{}); err != nil {
		t.Errorf("after restoring every byte: %v", err)
	}
}

// rehash makes a tampered bundle self-consistent again, so a test reaches
// the keyslot and passphrase checks behind the checksums.
func rehash(t *testing.T, dir string) {
	t.Helper()
	m, err := bundle.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for i := range m.Files {
		f := &m.Files[i]
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		f.SHA256, f.Size = sha(b), int64(len(b))
		sums[f.Path] = f.SHA256
	}
	idx, _ := json.MarshalIndent(m, "", "  ")
	idx = append(idx, '\n')
	if err := os.WriteFile(filepath.Join(dir, bundle.IndexName), idx, 0o600); err != nil {
		t.Fatal(err)
	}
	sums[bundle.IndexName] = sha(idx)
	var b bytes.Buffer
	for _, n := range sortedKeys(sums) {
		b.WriteString(sums[n] + "  " + n + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.ManifestName), b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyWrongKeyfileNamesTheSlot(t *testing.T) {
	_, m := writeBundle(t, bundle.Options{})
	dir := copyBundle(t, m.Dir)
	wrong := make([]byte, 64)
	rand.Read(wrong)
	if err := os.WriteFile(filepath.Join(dir, "luks/pi-backup.key"), wrong, 0o600); err != nil {
		t.Fatal(err)
	}
	rehash(t, dir)
	rep, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{})
	if err == nil {
		t.Fatal("Verify passed with a wrong keyfile")
	}
	var luks *bundle.Item
	for i, it := range rep.Items {
		if it.Kind == bundle.KindLUKS {
			luks = &rep.Items[i]
		} else if it.Status != bundle.StatusOK {
			t.Errorf("unexpected failure %+v", it)
		}
	}
	if luks == nil || luks.Status != bundle.StatusFailed || luks.Name != "pi/backup" || !strings.Contains(luks.Detail, "tried keyslots 0") {
		t.Errorf("luks item = %+v", luks)
	}
	if !strings.Contains(err.Error(), "keyslots 0") {
		t.Errorf("error does not name the slot: %v", err)
	}
}

func TestVerifyWrongPassphrase(t *testing.T) {
	s, m := writeBundle(t, bundle.Options{})
	dir := copyBundle(t, m.Dir)
	if err := os.WriteFile(filepath.Join(dir, "borg/john-ai.pass"), []byte("not the passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rehash(t, dir)
	before := bundletest.TreeHash(t, s.Mirror)
	rep, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{RepoRoots: []string{s.Mirror}})
	if err == nil {
		t.Fatal("Verify passed with a wrong passphrase")
	}
	failed := map[string]string{}
	for _, it := range rep.Failed() {
		failed[it.Kind+" "+it.Name] = it.Detail
	}
	if d := failed["borg-key john-ai/john-ai"]; !strings.Contains(d, "passphrase does not open") {
		t.Errorf("borg-key item: %q (failed: %v)", d, failed)
	}
	if d := failed["repo john-ai/john-ai"]; !strings.Contains(d, "passphrase") {
		t.Errorf("repo item: %q", d)
	}
	if len(failed) != 2 {
		t.Errorf("failed items = %v", failed)
	}
	if bundletest.TreeHash(t, s.Mirror) != before {
		t.Error("Verify changed the mirror")
	}
}

// The key export of one repo does not open another: borg key import
// refuses the mismatched repository id.
func TestVerifySwappedKeyExport(t *testing.T) {
	s, m := writeBundle(t, bundle.Options{})
	dir := copyBundle(t, m.Dir)
	for _, ext := range []string{".borg-key", ".pass"} {
		a, _ := os.ReadFile(filepath.Join(dir, "borg/john-ai"+ext))
		b, _ := os.ReadFile(filepath.Join(dir, "borg/john-ai-docker"+ext))
		os.WriteFile(filepath.Join(dir, "borg/john-ai"+ext), b, 0o600)
		os.WriteFile(filepath.Join(dir, "borg/john-ai-docker"+ext), a, 0o600)
	}
	rehash(t, dir)
	rep, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{RepoRoots: []string{s.Mirror}})
	if err == nil {
		t.Fatal("Verify passed with swapped key exports")
	}
	for _, it := range rep.Items {
		want := bundle.StatusOK
		if it.Kind == bundle.KindRepo {
			want = bundle.StatusFailed
		}
		if it.Status != want {
			t.Errorf("%s %s: %s %s", it.Kind, it.Name, it.Status, it.Detail)
		}
	}
}

func TestWriteRefusesUnsafeTargets(t *testing.T) {
	s := bundletest.Shared(t)
	tmp := t.TempDir()
	link := filepath.Join(tmp, "stick")
	if err := os.Symlink(s.Real("/mnt/backup"), link); err != nil {
		t.Fatal(err)
	}
	nonEmpty := filepath.Join(tmp, "nonempty")
	os.Mkdir(nonEmpty, 0o755)
	os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o644)
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o644)
	for name, dir := range map[string]string{
		"backup mountpoint":    s.Real("/mnt/backup"),
		"on the backup disk":   s.Real("/mnt/backup/recovery/bundle"),
		"inside a repo":        s.Real("/mnt/backup/john-ai/bundle"),
		"inside a source":      s.Real("/srv/data/bundle"),
		"deep inside a source": s.Real("/srv/docker/vol1/new/bundle"),
		"a source itself":      s.Real("/srv/docker"),
		"local mirror":         s.Real("/mnt/nas/backups/bundle"),
		"symlink to the disk":  filepath.Join(link, "bundle"),
		"dotdot into the disk": s.Real("/srv/../mnt/backup/b"),
		"not empty":            nonEmpty,
		"a file":               file,
	} {
		t.Run(name, func(t *testing.T) {
			before := bundletest.TreeHash(t, s.Root)
			_, err := bundle.Write(context.Background(), s.Cfg, s.Server, s.Src, dir, bundle.Options{})
			if !errors.Is(err, bundle.ErrUnsafeTarget) {
				t.Fatalf("Write(%s) = %v, want ErrUnsafeTarget", dir, err)
			}
			if bundletest.TreeHash(t, s.Root) != before {
				t.Error("a refused Write changed the server tree")
			}
			if name != "not empty" && name != "a file" && name != "a source itself" && name != "backup mountpoint" {
				if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s exists after a refused Write", dir)
				}
			}
			t.Log(err)
		})
	}
	// An excluded part of a source is fine: borg does not back it up.
	dir := s.Real("/srv/data/cache/bundle")
	t.Cleanup(func() { bundletest.MakeWritable(t, dir); os.RemoveAll(dir) })
	if _, err := bundle.Write(context.Background(), s.Cfg, s.Server, s.Src, dir, bundle.Options{Now: fixedNow}); err != nil {
		t.Errorf("Write into an excluded directory: %v", err)
	}
}

// tamperedSource serves the server's files with some replaced or hidden.
type tamperedSource struct {
	bundle.Source
	replace map[string][]byte
	hide    string
}

func (s tamperedSource) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if b, ok := s.replace[p]; ok {
		return b, nil
	}
	if s.hide != "" && (p == s.hide || strings.HasPrefix(p, s.hide+"/")) {
		return nil, fs.ErrNotExist
	}
	return s.Source.ReadFile(ctx, p)
}

// A keyfile that does not open the header backup makes no bundle at all.
func TestWriteRefusesAKeyThatDoesNotOpenTheHeader(t *testing.T) {
	s := bundletest.Shared(t)
	wrong := make([]byte, 64)
	rand.Read(wrong)
	src := tamperedSource{Source: s.Src, replace: map[string][]byte{"/etc/borgkit/keys/pi-backup.key": wrong}}
	dir := filepath.Join(t.TempDir(), "new", "bundle")
	_, err := bundle.Write(context.Background(), s.Cfg, s.Server, src, dir, bundle.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not open its header backup") {
		t.Fatalf("Write = %v", err)
	}
	if _, err := os.Lstat(filepath.Dir(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed Write left %s behind", filepath.Dir(dir))
	}
}

func TestWriteRefusesMismatchedPassphrase(t *testing.T) {
	s := bundletest.Shared(t)
	src := tamperedSource{Source: s.Src, replace: map[string][]byte{"/etc/borgkit/keys/john-ai.pass": []byte("wrong\n")}}
	_, err := bundle.Write(context.Background(), s.Cfg, s.Server, src, filepath.Join(t.TempDir(), "b"), bundle.Options{})
	if !errors.Is(err, bundle.ErrWrongPassphrase) {
		t.Fatalf("Write = %v, want ErrWrongPassphrase", err)
	}
}

func TestWritePaperKeys(t *testing.T) {
	s := bundletest.Shared(t)
	// The docker repo's disk is "unplugged": its paper key is skipped with
	// a warning, the bundle is still written.
	src := tamperedSource{Source: s.Src, hide: "/mnt/backup/john-ai-docker"}
	dir := filepath.Join(t.TempDir(), "bundle")
	t.Cleanup(func() { bundletest.MakeWritable(t, dir) })
	m, err := bundle.Write(context.Background(), s.Cfg, s.Server, src, dir, bundle.Options{Paper: true, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := m.Repo("john-ai")
	if r.PaperKey != "borg/john-ai.paper-key.txt" {
		t.Fatalf("paper key = %q", r.PaperKey)
	}
	b, err := os.ReadFile(filepath.Join(dir, r.PaperKey))
	if err != nil || !bytes.Contains(b, []byte("BORG PAPER KEY v1")) {
		t.Errorf("paper key: %v\n%s", err, b)
	}
	if r, _ := m.Repo("john-ai-docker"); r.PaperKey != "" {
		t.Errorf("docker paper key = %q", r.PaperKey)
	}
	found := false
	for _, w := range m.Warnings {
		found = found || strings.Contains(w, "john-ai-docker: no paper key")
	}
	if !found {
		t.Errorf("warnings = %q", m.Warnings)
	}
	if _, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{}); err != nil {
		t.Error(err)
	}
	// With the disk there, the keyfile-mode repo gets its paper key too:
	// borg finds its key in the server's keys directory.
	_, m = writeBundle(t, bundle.Options{Paper: true})
	if r, _ := m.Repo("john-ai-docker"); r.PaperKey == "" || strings.Contains(strings.Join(m.Warnings, "\n"), "paper") {
		t.Errorf("docker paper key %q, warnings %q", r.PaperKey, m.Warnings)
	}
}

func TestWriteOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	_, m := writeBundle(t, bundle.Options{Owner: &host.Owner{UID: 65534, GID: 65534}})
	_ = filepath.WalkDir(m.Dir, func(p string, d fs.DirEntry, err error) error {
		fi, _ := os.Lstat(p)
		if uid, gid := owner(fi); uid != 65534 || gid != 65534 {
			t.Errorf("%s owned by %d:%d", p, uid, gid)
		}
		return nil
	})
}

func TestVerifyMissingAndExtraFiles(t *testing.T) {
	_, m := writeBundle(t, bundle.Options{})
	dir := copyBundle(t, m.Dir)
	os.Remove(filepath.Join(dir, "ssh/known_hosts"))
	os.WriteFile(filepath.Join(dir, "stray.txt"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, bundle.DrillLogDir, "drill.md"), []byte("x"), 0o600)
	rep, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{})
	if err == nil || !strings.Contains(err.Error(), "ssh/known_hosts: missing") {
		t.Errorf("Verify = %v", err)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "stray.txt") {
		t.Errorf("warnings = %q", rep.Warnings)
	}
}

func TestVerifyNoRepoCopy(t *testing.T) {
	_, m := writeBundle(t, bundle.Options{})
	rep, err := bundle.Verify(context.Background(), m.Dir, bundle.VerifyOptions{RepoRoots: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, it := range rep.Items {
		if it.Kind == bundle.KindRepo {
			n++
			if it.Status != bundle.StatusSkipped {
				t.Errorf("%+v", it)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d repo items", n)
	}
}

// Verify needs no root: a bundle written for an unprivileged owner
// verifies as that user, repo copy included.
func TestVerifyWithoutRoot(t *testing.T) {
	if dir := os.Getenv("BORGKIT_TEST_VERIFY_DIR"); dir != "" {
		rep, err := bundle.Verify(context.Background(), dir, bundle.VerifyOptions{
			RepoRoots: []string{os.Getenv("BORGKIT_TEST_VERIFY_MIRROR")}, WorkDir: os.Getenv("BORGKIT_TEST_VERIFY_WORK")})
		if err != nil {
			var b strings.Builder
			rep.WriteText(&b)
			t.Fatalf("as uid %d: %v\n%s", os.Getuid(), err, b.String())
		}
		if os.Getuid() == 0 || len(rep.Items) < 15 {
			t.Fatalf("ran as uid %d with %d items", os.Getuid(), len(rep.Items))
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	s := bundletest.Shared(t)
	const nobody = 65534
	base, err := os.MkdirTemp("", "borgkit-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bundletest.MakeWritable(t, base); os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	work := filepath.Join(base, "work")
	os.Mkdir(work, 0o700)
	os.Chown(work, nobody, nobody)
	mirror := filepath.Join(base, "mirror")
	if out, err := exec.Command("cp", "-a", s.Mirror, mirror).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("chown", "-R", "65534:65534", mirror).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	dir := filepath.Join(base, "bundle")
	if _, err := bundle.Write(context.Background(), s.Cfg, s.Server, s.Src, dir,
		bundle.Options{Owner: &host.Owner{UID: nobody, GID: nobody}}); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a private build directory: run a copy.
	bin := filepath.Join(base, "bundle.test")
	if out, err := exec.Command("cp", self, bin).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	os.Chmod(bin, 0o755)
	cmd := exec.Command(bin, "-test.run=^TestVerifyWithoutRoot$", "-test.v")
	cmd.Dir = base
	cmd.Env = append(os.Environ(), "BORGKIT_TEST_VERIFY_DIR="+dir, "BORGKIT_TEST_VERIFY_MIRROR="+mirror,
		"BORGKIT_TEST_VERIFY_WORK="+work, "HOME="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("verify as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestVerifyWithoutRoot") {
		t.Errorf("the child did not run the check:\n%s", out)
	}
}
