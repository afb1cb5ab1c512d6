package bundletest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
)

// Site is the fixture. Paths named "on the server" are as in the config;
// their real location is Root+path.
type Site struct {
	Root       string // the server's tree
	ConfigYAML []byte
	Cfg        *config.Config
	Server     *config.Host
	Src        host.Host // host.NewRooted over Root
	// Mirror holds a copy of each repo by name, like the NAS mirror.
	Mirror string
	// Image is the offsite disk: 20 MiB, LUKS2, opened by the keyfile.
	Image    string
	LUKSUUID string
	// Repos are the server's repo names; Latest the time of each repo's
	// newest archive (set with borg create --timestamp, in the past).
	Repos  []string
	Latest map[string]time.Time
	// Canary is the john-ai repo's canary as in the config.
	Canary string
}

// Real returns the real path of p on the server.
func (s *Site) Real(p string) string { return filepath.Join(s.Root, p) }

const configYAML = `version: 1
site: test
alerts:
  to: me@example.com
  from: me@example.com
retention:
  daily: 3
  weekly: 2
  monthly: 6
hosts:
  - name: john-ai
    role: server
    address: 100.64.0.1
    disks:
      - name: usb-backup
        uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f
        mountpoint: /mnt/backup
        backup: true
    shares:
      - name: nas
        source: //nas.lan/backups
        mountpoint: /mnt/nas
        credentials: /etc/borgkit/nas.credentials
    repos:
      - name: john-ai
        path: /mnt/backup/john-ai
        sources: [/srv/data, /etc/hostname]
        excludes: [/srv/data/cache]
        encryption: repokey-blake2
        canary: /etc/hostname
      - name: john-ai-docker
        path: /mnt/backup/john-ai-docker
        sources: [/srv/docker]
        encryption: keyfile-blake2
    mirrors:
      - name: nas
        path: /mnt/nas/backups
        size_only: true
      - name: offsite
        host: pi
        path: /mnt/backup
  - name: pi
    role: offsite
    address: 100.64.0.2
    ssh:
      host_public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzB8p8XUUE01L47t1DtndLr54zuWJJ48RXaK+q1ZzNX root@pi
    disks:
      - name: backup
        device: /dev/disk/by-id/usb-test
        uuid: b6e1f0a2-5c3d-4e8f-a1b2-c3d4e5f60718
        mountpoint: /mnt/backup
        backup: true
        luks:
          key_host: john-ai
    unlock:
      server: john-ai
`

var (
	once   sync.Once
	shared *Site
	err0   error
	tmpDir string
)

// Require skips the test when a tool the fixture runs is missing.
func Require(tb testing.TB, tools ...string) {
	tb.Helper()
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			tb.Skipf("%s not installed: %v", t, err)
		}
	}
}

// Shared returns the package's one site, built on first use. Tests must
// not change it: copy what they modify. Call Cleanup from TestMain.
func Shared(tb testing.TB) *Site {
	tb.Helper()
	Require(tb, "borg", "cryptsetup", "cp")
	once.Do(func() {
		tmpDir, err0 = os.MkdirTemp("", "borgkit-site-")
		if err0 == nil {
			shared, err0 = build(tmpDir)
		}
	})
	if err0 != nil {
		tb.Fatalf("building the test site: %v", err0)
	}
	return shared
}

// Cleanup removes the shared site (a bundle inside it is 0500: make it
// writable first).
func Cleanup() {
	if tmpDir == "" {
		return
	}
	_ = filepath.WalkDir(tmpDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(tmpDir)
}

// MakeWritable undoes a bundle's 0500 directories (and 0400 files) so a
// test can damage it or t.TempDir can remove it.
func MakeWritable(tb testing.TB, dir string) {
	tb.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o700)
		}
		return os.Chmod(p, 0o600)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func run(dir string, env []string, argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, errb.String())
	}
	return out.Bytes(), nil
}

func write(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, mode)
}

func build(base string) (*Site, error) {
	s := &Site{Root: filepath.Join(base, "server"), Mirror: filepath.Join(base, "mirror"),
		Image: filepath.Join(base, "pi-backup.img"), Latest: map[string]time.Time{}, Canary: "/etc/hostname"}
	cfg, err := config.Parse("borgkit.yaml", []byte(configYAML))
	if err != nil {
		return nil, err
	}
	s.Cfg, s.ConfigYAML = cfg, []byte(configYAML)
	s.Server, _ = cfg.Host("john-ai")
	s.Src = host.NewRooted("john-ai", s.Root)
	keys := s.Real("/etc/borgkit/keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return nil, err
	}
	if err := write(s.Real(layout.ConfigFile), s.ConfigYAML, 0o640); err != nil {
		return nil, err
	}
	if err := write(s.Real("/root/.ssh/known_hosts"), []byte("pi,100.64.0.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzB8p8XUUE01L47t1DtndLr54zuWJJ48RXaK+q1ZzNX\n"), 0o600); err != nil {
		return nil, err
	}

	// The offsite disk: keyfile, LUKS2 image (cheap pbkdf2 so tests stay
	// fast), header backup where provisioning keeps it.
	key := make([]byte, 64)
	rand.Read(key)
	keyPath := filepath.Join(keys, "pi-backup.key")
	if err := write(keyPath, key, 0o400); err != nil {
		return nil, err
	}
	f, err := os.Create(s.Image)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(20 << 20); err != nil {
		return nil, err
	}
	f.Close()
	if _, err := run(base, nil, "cryptsetup", "luksFormat", "--type", "luks2", "--pbkdf", "pbkdf2",
		"--pbkdf-force-iterations", "1000", "--batch-mode", "--key-file", keyPath, s.Image); err != nil {
		return nil, err
	}
	if _, err := run(base, nil, "cryptsetup", "luksHeaderBackup", s.Image, "--header-backup-file", filepath.Join(keys, "pi-backup-header.img")); err != nil {
		return nil, err
	}
	out, err := run(base, nil, "cryptsetup", "luksUUID", s.Image)
	if err != nil {
		return nil, err
	}
	s.LUKSUUID = strings.TrimSpace(string(out))

	// Data to back up, generated reproducibly.
	rng := mrand.New(mrand.NewPCG(1, 2))
	if err := write(s.Real("/etc/hostname"), []byte("john-ai\n"), 0o644); err != nil {
		return nil, err
	}
	for i := range 60 {
		name := fmt.Sprintf("/srv/data/dir%d/file %02d.bin", i%6, i)
		if i == 7 {
			name = "/srv/data/odd\tname-tab.txt"
		}
		size := rng.IntN(64 << 10)
		if i%15 == 0 {
			size = 300<<10 + rng.IntN(200<<10)
		}
		buf := make([]byte, size)
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		if err := write(s.Real(name), buf, 0o644); err != nil {
			return nil, err
		}
	}
	if err := write(s.Real("/srv/data/empty"), nil, 0o644); err != nil {
		return nil, err
	}
	if err := write(s.Real("/srv/data/cache/skip.me"), []byte("excluded\n"), 0o644); err != nil {
		return nil, err
	}
	for i := range 5 {
		if err := write(s.Real(fmt.Sprintf("/srv/docker/vol%d/data.db", i)), bytes.Repeat([]byte{byte('a' + i)}, 10000+i*777), 0o600); err != nil {
			return nil, err
		}
	}

	// The repos, with two archives each: the newest 90 minutes old, so
	// the drill has a real recovery point age to report.
	env := []string{"BORG_BASE_DIR=" + s.Real("/root"), "BORG_DISPLAY_PASSPHRASE=no"}
	now := time.Now().UTC()
	repos := []struct {
		name, enc string
		paths     []string
	}{
		{"john-ai", "repokey-blake2", []string{"srv/data", "etc/hostname"}},
		{"john-ai-docker", "keyfile-blake2", []string{"srv/docker"}},
	}
	for _, r := range repos {
		pass := make([]byte, 18)
		rand.Read(pass)
		passPath := filepath.Join(keys, r.name+".pass")
		if err := write(passPath, []byte(hex.EncodeToString(pass)+"\n"), 0o600); err != nil {
			return nil, err
		}
		renv := append(env, "BORG_PASSCOMMAND=cat "+passPath)
		repo := s.Real("/mnt/backup/" + r.name)
		if _, err := run(base, renv, "borg", "init", "--encryption", r.enc, "--make-parent-dirs", repo); err != nil {
			return nil, err
		}
		for i, age := range []time.Duration{26 * time.Hour, 90 * time.Minute} {
			ts := now.Add(-age).Truncate(time.Second)
			if i == 1 {
				// Something changed between the two nights.
				if err := write(s.Real("/srv/data/dir1/changed.txt"), []byte("second night "+ts.String()+"\n"), 0o644); err != nil {
					return nil, err
				}
			}
			args := []string{"borg", "create", "--timestamp", ts.Format("2006-01-02T15:04:05"), "--exclude", "srv/data/cache",
				repo + "::nightly-" + ts.Format("2006-01-02T15:04:05")}
			if _, err := run(s.Root, renv, append(args, r.paths...)...); err != nil {
				return nil, err
			}
			s.Latest[r.name] = ts
		}
		if _, err := run(base, renv, "borg", "key", "export", repo, filepath.Join(keys, r.name+".borg-key")); err != nil {
			return nil, err
		}
		s.Repos = append(s.Repos, r.name)
		if err := os.MkdirAll(s.Mirror, 0o755); err != nil {
			return nil, err
		}
		if _, err := run(base, nil, "cp", "-a", repo, filepath.Join(s.Mirror, r.name)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// TreeHash digests a directory tree — names, types, modes, sizes, mtimes,
// symlink targets and contents — so a test can prove that something only
// read it.
func TreeHash(tb testing.TB, dir string) string {
	tb.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%q %v %d %d\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %q\n", t)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
