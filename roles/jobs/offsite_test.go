package jobs_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/roles/recipe"
	"github.com/borgkit/borgkit/testing/sshd"
)

// TestSyncToOffsiteThroughRrsync pushes the repos to a real sshd whose only
// key for us is the rrsync line the offsite role installs, then checks the
// mirror, the heartbeat and that a second sync sends little.
func TestSyncToOffsiteThroughRrsync(t *testing.T) {
	need(t, "rsync", "ssh")
	if _, err := os.Stat(recipe.Rrsync); err != nil {
		t.Skip("rrsync is not installed (package rsync)")
	}
	mountEntry := filepath.Join(t.TempDir(), "pi-backup")
	os.MkdirAll(mountEntry, 0o755)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "borgkit@john-ai")
	keyPath := filepath.Join(t.TempDir(), "borgkit_ed25519")
	os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600)
	signer, _ := ssh.NewSignerFromKey(priv)
	line, err := recipe.RrsyncLine("127.0.0.1", mountEntry, ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	srv := sshd.Start(t, sshd.Options{AuthorizedKeys: []string{string(line)}})
	rsh := strings.Join([]string{"ssh", "-i", keyPath, "-p", strconv.Itoa(srv.Port), "-l", "root",
		"-o", "HostName=127.0.0.1", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + srv.KnownHostsPath, "-o", "StrictHostKeyChecking=yes"}, " ")
	l := newLab(t, labOptions{offsite: rsh})

	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Sync(ctx(), l.env); err != nil {
		t.Fatalf("sync: %v", err)
	}
	l.mails(0)
	for _, p := range []string{"system/config", "system/data/0", ".heartbeat/john-ai-last-success"} {
		if _, err := os.Stat(filepath.Join(mountEntry, p)); err != nil {
			t.Errorf("offsite mirror lacks %s: %v", p, err)
		}
	}
	hb, _ := os.ReadFile(filepath.Join(mountEntry, ".heartbeat/john-ai-last-success"))
	when, err := time.Parse(time.RFC3339, strings.TrimSpace(string(hb)))
	if err != nil || time.Since(when) > time.Minute {
		t.Errorf("heartbeat %q: %v", hb, err)
	}
	// The mirror is byte-identical to the repo, file for file.
	if a, b := sh(t, "sh", "-c", "cd "+filepath.Join(l.mnt, "system")+" && find . -type f -exec sha256sum {} + | sort"),
		sh(t, "sh", "-c", "cd "+filepath.Join(mountEntry, "system")+" && find . -type f -exec sha256sum {} + | sort"); a != b {
		t.Fatalf("offsite mirror differs from the repo")
	}
	rec, _ := l.env.Store.Load("sync")
	if rec.Status != state.OK {
		t.Fatalf("sync record %s", rec.Status)
	}
	var st state.SyncStats
	if err := decode(rec, &st); err != nil || len(st.Mirrors) != 2 || st.Mirrors[1].Heartbeat.IsZero() || st.Mirrors[1].SentBytes == 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	// A failing offsite host is named in the mail, and no heartbeat is written.
	os.Remove(filepath.Join(mountEntry, ".heartbeat/john-ai-last-success"))
	l.env.SSH = strings.Replace(rsh, strconv.Itoa(srv.Port), "1", 1) // nothing listens on port 1
	if err := jobs.Sync(ctx(), l.env); err == nil {
		t.Fatal("sync to an unreachable host succeeded")
	}
	m := l.mails(1)
	wantMail(t, m[0], "[BACKUP] john-ai OFFSITE SYNC FAILED", "--- system -> pi:system/ ---")
	if _, err := os.Stat(filepath.Join(mountEntry, ".heartbeat/john-ai-last-success")); !os.IsNotExist(err) {
		t.Fatal("heartbeat written after a failed sync")
	}
}

func decode(rec *state.Record, v any) error { return json.Unmarshal(rec.Stats, v) }
