package steps_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
)

// borgIn runs borg on a repo under the test tree, the passphrase in the
// environment (test only).
func borgIn(t *testing.T, dir, pass string, args ...string) string {
	t.Helper()
	c := exec.Command("borg", args...)
	c.Env = append(os.Environ(), "BORG_BASE_DIR="+filepath.Join(dir, "root"), "BORG_PASSPHRASE="+pass, "BORG_EXIT_CODES=legacy",
		"BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("borg %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestRetireMovesAsideAndUndoes(t *testing.T) {
	h, dir := rooted(t)
	write(t, dir, "/etc/cron.d/john-ai-backups", "0 0 * * * root /usr/local/bin/backup-nightly.sh\n", 0o644)
	write(t, dir, "/usr/local/bin/backup-nightly.sh", "#!/bin/sh\nborg create /mnt/backup/r::x /home\n", 0o755)
	cron := &steps.Retire{Path: "/etc/cron.d/john-ai-backups"}
	script := &steps.Retire{Path: "/usr/local/bin/backup-nightly.sh"}
	c := check(t, h, cron)
	if c.Action != plan.Modify || !strings.Contains(c.Summary, "/var/lib/borgkit/retired/etc/cron.d/john-ai-backups.borgkit-old") {
		t.Fatalf("cron file: %+v", c)
	}
	converge(t, h, cron)
	converge(t, h, script)
	if _, err := os.Stat(filepath.Join(dir, "etc/cron.d/john-ai-backups")); !os.IsNotExist(err) {
		t.Errorf("the cron file is still in /etc/cron.d: %v", err)
	}
	if got := read(t, dir, "/var/lib/borgkit/retired/etc/cron.d/john-ai-backups.borgkit-old"); !strings.Contains(got, "backup-nightly.sh") {
		t.Errorf("retired cron file: %q", got)
	}
	fi, err := os.Stat(filepath.Join(dir, "usr/local/bin/backup-nightly.sh.borgkit-old"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("retired script: %v %v", fi, err)
	}
	// A second file to retire onto the first one's place is refused.
	write(t, dir, "/usr/local/bin/backup-nightly.sh", "again\n", 0o755)
	if c := check(t, h, script); c.Action != plan.Conflict || !strings.Contains(c.Reason, "exists") {
		t.Errorf("retire onto an earlier retired copy: %+v", c)
	}
}

func TestLegacySchedulesConflictUntilRetired(t *testing.T) {
	h, dir := rooted(t)
	write(t, dir, "/etc/cron.d/john-ai-backups", "MAILTO=me@example.com\n0 0 * * * root /usr/local/bin/backup-nightly.sh >> /var/log/n.log 2>&1\n", 0o644)
	write(t, dir, "/etc/cron.d/unrelated", "0 5 * * * root /usr/bin/apt-get update\n", 0o644)
	write(t, dir, "/usr/local/bin/backup-nightly.sh", "#!/bin/bash\n. /usr/local/lib/lib.sh\nborg create \"$REPO::nightly-{now}\" /home\n", 0o755)
	write(t, dir, "/usr/local/lib/lib.sh", "REPO=/mnt/backup/john-ai\n", 0o644)
	l := &steps.LegacySchedules{Watch: []string{"/mnt/backup/john-ai"}}
	c := check(t, h, l)
	if c.Action != plan.Conflict || !strings.Contains(c.Reason, "/etc/cron.d/john-ai-backups line 2") ||
		!strings.Contains(c.Reason, "--retire /etc/cron.d/john-ai-backups --retire /usr/local/bin/backup-nightly.sh --retire /usr/local/lib/lib.sh") ||
		strings.Contains(c.Reason, "unrelated") {
		t.Fatalf("legacy cron file: %+v", c)
	}
	l.Retired = []string{"/etc/cron.d/john-ai-backups"}
	if c := check(t, h, l); c.Action != plan.OK {
		t.Errorf("retired: %+v", c)
	}
	// A job on other paths is none of borgkit's business.
	l = &steps.LegacySchedules{Watch: []string{"/mnt/backup/other"}}
	if c := check(t, h, l); c.Action != plan.OK {
		t.Errorf("unrelated watch: %+v", c)
	}
}

func TestSecretTakenOverFromEnvFile(t *testing.T) {
	needBorg(t)
	h, dir := rooted(t)
	const pass = "long-random-passphrase"
	borgIn(t, dir, pass, "init", "--make-parent-dirs", "--encryption=repokey-blake2", filepath.Join(dir, "mnt/backup/r"))
	write(t, dir, "/root/.borg_env", "export BORG_PASSPHRASE='"+pass+"'\n", 0o600)
	sec := func(from string) *steps.Secret {
		s := &steps.Secret{Path: "/etc/borgkit/keys/r.pass", Mode: 0o600, Owner: host.Root, What: "borg passphrase of repo r",
			Generate: steps.Passphrase, MustExist: steps.ExistingEncrypted("r", "/mnt/backup/r", "/etc/borgkit/keys/r.pass")}
		if from != "" {
			s.Import, s.ImportWhat = steps.PassphraseFrom("/mnt/backup/r", from), "copy from "+from
		}
		return s
	}
	// No file named: the existing repo's passphrase is not made up.
	c := check(t, h, sec(""))
	if c.Action != plan.Conflict || !strings.Contains(c.Reason, "will not make up a new one") {
		t.Fatalf("no passphrase: %+v", c)
	}
	// A file with the wrong one: refused before anything is written.
	write(t, dir, "/root/.wrong_env", "BORG_PASSPHRASE=nope\n", 0o600)
	if c := check(t, h, sec("/root/.wrong_env")); c.Action != plan.Conflict || !strings.Contains(c.Reason, "does not open") {
		t.Fatalf("wrong passphrase: %+v", c)
	}
	s := sec("/root/.borg_env")
	if c := check(t, h, s); c.Action != plan.Create || !strings.Contains(c.Summary, "take over") {
		t.Fatalf("env file: %+v", c)
	}
	converge(t, h, s)
	if got := read(t, dir, "/etc/borgkit/keys/r.pass"); got != pass+"\n" {
		t.Errorf("passphrase file %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "etc/borgkit/keys/r.pass")); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestBorgRepoKeepsItsEncryption(t *testing.T) {
	needBorg(t)
	h, dir := rooted(t)
	borgIn(t, dir, "", "init", "--make-parent-dirs", "--encryption=none", filepath.Join(dir, "mnt/backup/plain"))
	borgIn(t, dir, "pw", "init", "--make-parent-dirs", "--encryption=repokey-blake2", filepath.Join(dir, "mnt/backup/enc"))
	for _, c := range []struct {
		name, enc string
		ok        bool
	}{{"plain", "none", true}, {"plain", "repokey-blake2", false}, {"enc", "repokey-blake2", true}, {"enc", "none", false}} {
		got := check(t, h, &steps.BorgRepo{Name: c.name, Path: "/mnt/backup/" + c.name, Encryption: c.enc})
		if (got.Action == plan.OK) != c.ok || !c.ok && !strings.Contains(got.Reason, "never changes a repository's encryption") {
			t.Errorf("%s as %s: %+v", c.name, c.enc, got)
		}
	}
}

func TestKeyExportCheckedAgainstRepo(t *testing.T) {
	needBorg(t)
	h, dir := rooted(t)
	repo := filepath.Join(dir, "mnt/backup/r")
	borgIn(t, dir, "old", "init", "--make-parent-dirs", "--encryption=repokey-blake2", repo)
	borgIn(t, dir, "old", "key", "export", repo, filepath.Join(dir, "root/borg-key.txt"))
	k := &steps.BorgKeyExport{Repo: "r", RepoPath: "/mnt/backup/r", Dest: "/root/borg-key.txt"}
	if c := check(t, h, k); c.Action == plan.Conflict {
		t.Fatalf("a matching export: %+v", c)
	}
	// After a passphrase change the old export opens nothing.
	c := exec.Command("borg", "key", "change-passphrase", repo)
	c.Env = append(os.Environ(), "BORG_BASE_DIR="+filepath.Join(dir, "root"), "BORG_PASSPHRASE=old", "BORG_NEW_PASSPHRASE=new")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if c := check(t, h, k); c.Action != plan.Modify || !strings.Contains(c.Summary, "does not open repo r") {
		t.Errorf("a stale export: %+v", c)
	}
}

// A repo re-initialised under the same path (its disk replaced, or wiped
// and started again) has a new id: the plan refreshes the export instead of
// calling the old one unchanged, and the old one is kept aside.
func TestKeyExportRefreshedAfterReinit(t *testing.T) {
	needBorg(t)
	h, dir := rooted(t)
	repo := filepath.Join(dir, "mnt/backup/r")
	write(t, dir, "/etc/borgkit/keys/r.pass", "pw\n", 0o600)
	borgIn(t, dir, "pw", "init", "--make-parent-dirs", "--encryption=repokey-blake2", repo)
	k := &steps.BorgKeyExport{Repo: "r", RepoPath: "/mnt/backup/r", Dest: "/etc/borgkit/keys/r.borg-key", PassFile: "/etc/borgkit/keys/r.pass"}
	converge(t, h, k)
	old := read(t, dir, k.Dest)

	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	borgIn(t, dir, "pw", "init", "--make-parent-dirs", "--encryption=repokey-blake2", repo)
	c := check(t, h, k)
	if c.Action != plan.Modify || !strings.Contains(c.Summary, "is the key of repository") {
		t.Fatalf("after re-init: %+v", c)
	}
	converge(t, h, k)
	rc, err := borg.ParseRepoConfig([]byte(read(t, dir, "/mnt/backup/r/config")))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := borg.ParseKeyExport([]byte(read(t, dir, k.Dest)))
	if err != nil || ex.Matches(rc) != "" {
		t.Fatalf("the fresh export: %v %q", err, ex.Matches(rc))
	}
	kept, _ := filepath.Glob(filepath.Join(dir, k.Dest+".replaced-*"))
	if len(kept) != 1 {
		t.Fatalf("the old export kept aside: %v", kept)
	}
	if b, _ := os.ReadFile(kept[0]); string(b) != old {
		t.Error("the kept export is not the old one")
	}
}

func TestMirrorContents(t *testing.T) {
	needBorg(t)
	h, dir := rooted(t)
	borgIn(t, dir, "", "init", "--make-parent-dirs", "--encryption=none", filepath.Join(dir, "mnt/nas/backups/a"))
	borgIn(t, dir, "", "init", "--make-parent-dirs", "--encryption=none", filepath.Join(dir, "mnt/other/a"))
	if err := os.MkdirAll(filepath.Join(dir, "mnt/nas/backups/lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	rc := read(t, dir, "/mnt/nas/backups/a/config")
	id := rc[strings.Index(rc, "id = ")+5:]
	id = id[:strings.IndexByte(id, '\n')]
	m := &steps.MirrorContents{Root: "/mnt/nas/backups",
		Repos: func(context.Context, host.Host) (map[string]string, error) {
			return map[string]string{"a": id, "b": ""}, nil
		}}
	if c := check(t, h, m); c.Action != plan.OK {
		t.Fatalf("a mirror of repos: %+v", c)
	}
	write(t, dir, "/mnt/nas/backups/frigate/clip.mp4", "video", 0o644)
	if c := check(t, h, m); c.Action != plan.Conflict || !strings.Contains(c.Reason, "frigate/") {
		t.Errorf("footage in the mirror: %+v", c)
	}
	m.Root = "/mnt/other"
	m.Repos = func(context.Context, host.Host) (map[string]string, error) {
		return map[string]string{"a": "0123456789abcdef"}, nil
	}
	if c := check(t, h, m); c.Action != plan.Conflict || !strings.Contains(c.Reason, "not a's own") {
		t.Errorf("another repo under a mirrored name: %+v", c)
	}
}

// Under --root, a file reached through a symlink out of the tree is not
// moved: mv would follow the link and move the real host's file.
func TestRetireStaysInTheTree(t *testing.T) {
	h, dir := rooted(t)
	outside := t.TempDir()
	write(t, outside, "/backup-nightly.sh", "#!/bin/sh\n", 0o755)
	if err := os.MkdirAll(filepath.Join(dir, "usr/local"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "usr/local/bin")); err != nil {
		t.Fatal(err)
	}
	r := &steps.Retire{Path: "/usr/local/bin/backup-nightly.sh"}
	c, err := r.Check(context.Background(), h)
	if err == nil && c.Action != plan.Conflict {
		t.Errorf("check: %+v, want a conflict", c)
	}
	if err := r.Apply(context.Background(), h); err == nil {
		t.Error("apply went ahead")
	}
	if _, err := os.Stat(filepath.Join(outside, "backup-nightly.sh")); err != nil {
		t.Errorf("the file outside the tree was moved: %v", err)
	}
}

// readsRecorder is a host that notes every path whose metadata or content
// a check asks for.
type readsRecorder struct {
	host.Host
	read map[string]bool
}

func (r *readsRecorder) Lstat(ctx context.Context, p string) (host.FileInfo, error) {
	r.read[p] = true
	return r.Host.Lstat(ctx, p)
}

func (r *readsRecorder) ReadFile(ctx context.Context, p string) ([]byte, error) {
	r.read[p] = true
	return r.Host.ReadFile(ctx, p)
}

func (r *readsRecorder) Digest(ctx context.Context, p string) (string, error) {
	r.read[p] = true
	return r.Host.Digest(ctx, p)
}

// The take-over steps name the files their checks read, so that over SSH
// a plan surveys them in its one exchange instead of a round trip each.
func TestAdoptStepsDeclareWhatTheyRead(t *testing.T) {
	h, dir := rooted(t)
	write(t, dir, "/etc/cron.d/.placeholder", "", 0o644)
	write(t, dir, "/etc/systemd/system/.placeholder", "", 0o644)
	write(t, dir, "/etc/crontab", "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n", 0o644)
	write(t, dir, "/var/spool/cron/crontabs/root", "# nothing\n", 0o600)
	write(t, dir, "/etc/cron.d/john-ai-backups", "0 0 * * * root /usr/local/bin/backup-nightly.sh\n", 0o644)
	// What a check finds from what it read (the files of a listed
	// directory, the programs a cron line runs, looked up on its PATH)
	// cannot be named before it runs; everything else must be.
	fromContent := func(p string) bool {
		return strings.HasPrefix(p, "/etc/cron.d/") || strings.HasPrefix(p, "/usr/")
	}
	for _, c := range []struct {
		step    plan.Step
		derived func(string) bool
	}{
		{&steps.Retire{Path: "/etc/cron.d/john-ai-backups"}, nil},
		{&steps.Retire{Path: "/etc/systemd/system/offsite-unlock.timer"}, nil},
		{&steps.LegacySchedules{Watch: []string{"/mnt/backup"}}, fromContent},
	} {
		s := c.step
		rec := &readsRecorder{Host: h, read: map[string]bool{}}
		check(t, rec, s)
		r, ok := s.(plan.Reader)
		if !ok {
			t.Errorf("%s does not say what it reads", s.ID())
			continue
		}
		declared := map[string]bool{}
		for _, w := range r.Reads() {
			declared[w.Path] = true
		}
		if len(rec.read) == 0 {
			t.Errorf("%s read nothing", s.ID())
		}
		for p := range rec.read {
			if !declared[p] && (c.derived == nil || !c.derived(p)) {
				t.Errorf("%s reads %s without declaring it (declared %v)", s.ID(), p, declared)
			}
		}
	}
}
