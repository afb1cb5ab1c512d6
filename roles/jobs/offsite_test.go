package jobs_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/digest"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/recipe"
	"github.com/borgkit/borgkit/testing/sshd"
)

// offsiteHost is the Pi as the tests see it: a real sshd on this machine
// whose authorized_keys are the lines the offsite recipe installs, the
// push key limited to rrsync -wo on root, the hash key to serve-hashes.
type offsiteHost struct {
	root    string // the mirror root (the Pi's /mnt/backup/borgkit)
	snaps   string // the snapshots beside it (/mnt/backup/borgkit-snapshots)
	srv     *sshd.Server
	push    string // rsync -e for the push key
	hashSSH string // ssh for the hash key, without the host
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// borgkitBinary builds bin/borgkit once for the package's tests: the
// forced commands and the kill tests run the real binary.
func borgkitBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "borgkit-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "borgkit")
		_, binErr = runOut("go", "build", "-o", binPath, "github.com/borgkit/borgkit/cmd/borgkit")
	})
	if binErr != nil {
		t.Fatalf("go build: %v", binErr)
	}
	return binPath
}

func keyPair(t testing.TB, comment string) (path string, pub []byte) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, comment)
	path = filepath.Join(t.TempDir(), comment)
	os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
	signer, _ := ssh.NewSignerFromKey(priv)
	return path, ssh.MarshalAuthorizedKey(signer.PublicKey())
}

func newOffsite(t testing.TB) *offsiteHost {
	t.Helper()
	need(t, "rsync", "ssh")
	if _, err := os.Stat(recipe.Rrsync); err != nil {
		t.Skip("rrsync is not installed (package rsync)")
	}
	mount := t.TempDir()
	o := &offsiteHost{root: filepath.Join(mount, "pi-backup"), snaps: layout.SnapshotRoot(mount)}
	os.MkdirAll(o.root, 0o755)
	os.MkdirAll(o.snaps, 0o700)
	pushKey, pushPub := keyPair(t, "borgkit@john-ai")
	hashKey, hashPub := keyPair(t, "borgkit-hash@john-ai")
	push, err := recipe.RrsyncLine("127.0.0.1", o.root, pushPub)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := recipe.HashLine("127.0.0.1", o.root, o.snaps, hashPub)
	if err != nil {
		t.Fatal(err)
	}
	// The line names the installed binary; here it is the one just built.
	hashLine := strings.Replace(string(hash), "/usr/local/bin/borgkit", borgkitBinary(t), 1)
	o.srv = sshd.Start(t, sshd.Options{AuthorizedKeys: []string{string(push), hashLine}})
	common := []string{"-p", strconv.Itoa(o.srv.Port), "-o", "HostName=127.0.0.1", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + o.srv.KnownHostsPath, "-o", "StrictHostKeyChecking=yes"}
	o.push = strings.Join(append([]string{"ssh", "-i", pushKey, "-l", "root"}, common...), " ")
	o.hashSSH = strings.Join(append([]string{"ssh", "-i", hashKey, "-l", "root"}, common...), " ")
	return o
}

func newOffsiteLab(t testing.TB, o labOptions) (*lab, *offsiteHost) {
	pi := newOffsite(t)
	o.offsite, o.hashSSH = pi.push, pi.hashSSH
	return newLab(t, o), pi
}

// treeSums is every regular file under dir with its size and SHA-256,
// one a line, sorted: two trees are byte-identical when these are equal.
func treeSums(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		sum, n, err := digest.File(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, rel+" "+strconv.FormatInt(n, 10)+" "+sum)
		return nil
	})
	if err != nil {
		t.Fatalf("sums of %s: %v", dir, err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestSyncToOffsiteThroughRrsync pushes the repos to a real sshd whose only
// key for us is the rrsync line the offsite role installs, then checks the
// mirror, the heartbeat and that a second sync sends little.
func TestSyncToOffsiteThroughRrsync(t *testing.T) {
	l, pi := newOffsiteLab(t, labOptions{})
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("sync: %v", err)
	}
	l.mails(0)
	for _, p := range []string{"system/config", "system/data/0/0", ".heartbeat/john-ai-last-success"} {
		if _, err := os.Stat(filepath.Join(pi.root, p)); err != nil {
			t.Errorf("offsite mirror lacks %s: %v", p, err)
		}
	}
	hb, _ := os.ReadFile(filepath.Join(pi.root, ".heartbeat/john-ai-last-success"))
	when, err := time.Parse(time.RFC3339, strings.TrimSpace(string(hb)))
	if err != nil || time.Since(when) > time.Minute {
		t.Errorf("heartbeat %q: %v", hb, err)
	}
	// The mirror is byte-identical to the repo, file for file.
	if a, b := treeSums(t, filepath.Join(l.mnt, "system")), treeSums(t, filepath.Join(pi.root, "system")); a != b {
		t.Fatalf("offsite mirror differs from the repo:\n%s\n---\n%s", a, b)
	}
	rec, _ := l.env.Store.Load("sync")
	if rec.Status != state.OK {
		t.Fatalf("sync record %s", rec.Status)
	}
	var st state.SyncStats
	if err := decode(rec, &st); err != nil || len(st.Mirrors) != 2 || st.Mirrors[1].Heartbeat.IsZero() || st.Mirrors[1].SentBytes == 0 ||
		len(st.Mirrors[1].Verified) != 1 || len(st.Mirrors[0].Verified) != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
	// A failing offsite host is named in the mail, and no heartbeat is written.
	os.Remove(filepath.Join(pi.root, ".heartbeat/john-ai-last-success"))
	l.env.SSH = strings.Replace(pi.push, strconv.Itoa(pi.srv.Port), "1", 1) // nothing listens on port 1
	l.env.HashSSH = strings.Replace(pi.hashSSH, strconv.Itoa(pi.srv.Port), "1", 1)
	if err := jobs.Sync(ctx(), l.env); err == nil {
		t.Fatal("sync to an unreachable host succeeded")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai OFFSITE SYNC FAILED", "--- system -> pi:system/ ---")
	if _, err := os.Stat(filepath.Join(pi.root, ".heartbeat/john-ai-last-success")); !os.IsNotExist(err) {
		t.Fatal("heartbeat written after a failed sync")
	}
}

func decode(rec *state.Record, v any) error { return json.Unmarshal(rec.Stats, v) }

// TestSyncWaitsForTheOffsiteSnapshot: while the offsite host's snapshot
// holds rrsync's lock on the mirror, a push is refused; the sync waits and
// tries again instead of failing the night.
func TestSyncWaitsForTheOffsiteSnapshot(t *testing.T) {
	l, pi := newOffsiteLab(t, labOptions{})
	mirror := pi.root
	l.env.PushLockWait = time.Second
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	// The snapshot's lock: flock on the mirror directory, held until the
	// sync has met it (a fixed time is too short on a loaded machine, where
	// the guards before the first push take longer).
	fd, err := syscall.Open(mirror, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	met := make(chan struct{})
	var once sync.Once
	l.env.Log = io.MultiWriter(l.env.Log, logWatch(func(line []byte) {
		if bytes.Contains(line, []byte("taking a snapshot of its mirror")) {
			once.Do(func() { close(met) })
		}
	}))
	go func() {
		select {
		case <-met:
		case <-time.After(5 * time.Minute):
		}
		syscall.Close(fd)
	}()
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("sync failed while the offsite host took a snapshot: %v\n%s", err, l.log.String())
	}
	l.mails(0)
	if !strings.Contains(l.log.String(), "taking a snapshot of its mirror") {
		t.Fatalf("the sync never met the lock:\n%s", l.log.String())
	}
	if _, err := os.Stat(filepath.Join(mirror, ".heartbeat/john-ai-last-success")); err != nil {
		t.Fatalf("no heartbeat: %v", err)
	}
}

// logWatch is a job log writer that shows each write to see, in the job's
// goroutine.
type logWatch func(line []byte)

func (w logWatch) Write(p []byte) (int, error) {
	w(p)
	return len(p), nil
}
