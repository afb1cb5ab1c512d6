package recipe_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/adopt"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/roles/recipe"
	"github.com/borgkit/borgkit/testing/handbuilt"
)

const adoptedPass = "long-random-passphrase"

// adoptedTree is the first seed's john-ai with one repo kept the second
// seed's way (repokey-blake2, BORG_PASSPHRASE in /root/.borg_env, its
// key exported to /root/borg-key.txt), and the config adopt writes for it.
func adoptedTree(t *testing.T) (string, *adopt.Result) {
	t.Helper()
	root := t.TempDir()
	handbuilt.Tree(t, root, handbuilt.Values{MailTo: "me@example.com", MailFrom: "me@example.com", SMTPHost: "smtp.example.com",
		SMTPPort: "587", SMTPPassword: "hunter2-smtp", OffsiteAddr: "100.64.0.2", ServerAddr: "100.64.0.1",
		USBUUID: "3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f", NASUUID: "8d2e1f00-1111-4a4a-9b9b-0123456789ab", LUKSUUID: "0"})
	repo := filepath.Join(root, "mnt/backup/john-ai-docker")
	for _, d := range []string{repo, filepath.Join(root, "mnt/nas/backups/john-ai-docker")} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	handbuilt.Borg(t, root, adoptedPass, "init", "--encryption=repokey-blake2", repo)
	handbuilt.Borg(t, root, adoptedPass, "create", repo+"::nightly-2026-06-11T00:00", filepath.Join(root, "etc/hosts"))
	handbuilt.Borg(t, root, "", "key", "export", repo, filepath.Join(root, "root/borg-key.txt"))
	put(t, root, "/root/.borg_env", "export BORG_PASSPHRASE='"+adoptedPass+"'\n", 0o600)
	r, err := adopt.Adopt(context.Background(), adopt.Options{Server: host.NewRooted("john-ai", root)})
	if err != nil {
		t.Fatal(err)
	}
	return root, r
}

func runAdopted(t *testing.T, root string, cfg *config.Config, raw []byte, retire []string, dry bool) (*plan.Report, error) {
	t.Helper()
	ss, err := recipe.Steps(cfg, "john-ai", recipe.Options{ConfigData: raw, Local: host.NewRooted("john-ai", root), Retire: retire})
	if err != nil {
		t.Fatal(err)
	}
	return plan.Run(context.Background(), host.NewRooted("john-ai", root), ss, plan.Options{DryRun: dry})
}

func stepOf(r *plan.Report, id string) plan.StepReport {
	for _, s := range r.Steps {
		if s.ID == id {
			return s
		}
	}
	return plan.StepReport{}
}

// An adopted server converges under --root: nothing is made anew that
// was there, the old setup is moved aside, its secrets are taken over,
// and a second run changes nothing.
func TestAdoptedServerConverges(t *testing.T) {
	root, r := adoptedTree(t)
	retire := r.Retire["john-ai"]
	// Without --retire the old cron file is a conflict.
	rep, err := runAdopted(t, root, r.Config, r.YAML, nil, true)
	if err == nil || !strings.Contains(stepOf(rep, "legacy-schedules").Check.Reason, "--retire /etc/cron.d/john-ai-backups") {
		t.Fatalf("the old schedule is not a conflict: %v %+v", err, stepOf(rep, "legacy-schedules"))
	}
	rep, err = runAdopted(t, root, r.Config, r.YAML, retire, false)
	if err != nil {
		for _, s := range rep.Steps {
			if s.Check.Action == plan.Conflict || s.Error != "" {
				t.Logf("%s: %s %s", s.ID, s.Check.Reason, s.Error)
			}
		}
		t.Fatal(err)
	}
	for _, s := range rep.Steps {
		if s.Check.Action.Pending() && (strings.HasPrefix(s.ID, "repo.") || strings.Contains(s.Check.Summary, "generate borg passphrase")) {
			t.Errorf("%s: %s", s.ID, s.Check.Summary)
		}
	}
	if got := read(t, root, "/etc/borgkit/keys/john-ai-docker.pass"); got != adoptedPass+"\n" {
		t.Errorf("the passphrase was not taken over: %q", got)
	}
	if got := read(t, root, "/etc/borgkit/smtp.pass"); got != "hunter2-smtp\n" {
		t.Errorf("the SMTP password was not taken over: %q", got)
	}
	if rc := read(t, root, "/etc/msmtprc"); !strings.Contains(rc, "passwordeval cat /etc/borgkit/smtp.pass") || strings.Contains(rc, "hunter2") {
		t.Errorf("msmtprc:\n%s", rc)
	}
	if fstab := read(t, root, "/etc/fstab"); strings.Count(fstab, "# borgkit took over the next line") != 2 || !strings.Contains(fstab, "\n#UUID=3f9c2d4e") {
		t.Errorf("fstab:\n%s", fstab)
	}
	if old := read(t, root, "/etc/msmtprc.borgkit-old"); !strings.Contains(old, "password hunter2-smtp") {
		t.Errorf("the old msmtprc was not kept aside: %q", old)
	}
	for _, f := range retire {
		if f == "/etc/msmtprc" {
			continue // borgkit's own stands there now
		}
		if _, err := os.Lstat(filepath.Join(root, f)); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/borgkit/retired/etc/cron.d/john-ai-backups.borgkit-old")); err != nil {
		t.Errorf("the retired cron file: %v", err)
	}
	if got := read(t, root, "/root/borg-key.txt"); !strings.HasPrefix(got, "BORG_KEY ") {
		t.Errorf("the old key export: %q", got)
	}
	rep, err = runAdopted(t, root, r.Config, r.YAML, nil, true)
	if err != nil || rep.Pending() != 0 {
		t.Fatalf("a second run has changes: %v %d", err, rep.Pending())
	}
}

// A repo whose passphrase nothing names is refused, and nothing changes.
func TestAdoptedRepoWithoutPassphraseRefused(t *testing.T) {
	root, r := adoptedTree(t)
	raw := strings.Replace(string(r.YAML), "passphrase_from: /root/.borg_env", "# passphrase_from: unknown", 1)
	cfg, err := config.Parse("adopted.yaml", []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	rep, err := runAdopted(t, root, cfg, []byte(raw), r.Retire["john-ai"], false)
	c := stepOf(rep, "secret./etc/borgkit/keys/john-ai-docker.pass").Check
	if err == nil || c.Action != plan.Conflict || !strings.Contains(c.Reason, "will not make up a new one") {
		t.Fatalf("not refused: %v %+v", err, c)
	}
	if after := snapshot(t, root); !reflect.DeepEqual(after, before) {
		t.Error("the refused run changed the tree")
	}
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
