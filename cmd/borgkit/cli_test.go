package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/roles/jobs/state"
	"github.com/borgkit/borgkit/testing/notifysink"
	"github.com/borgkit/borgkit/testing/smtpsink"
)

// TestExitCodes is the contract for every way of calling borgkit wrongly
// that issue 20 found exiting 0 or 1, and a few that were already right.
func TestExitCodes(t *testing.T) {
	cfg := writeConfig(t, string(exampleConfig(t)))
	tests := []struct {
		args []string
		code int
		want string // in the output
	}{
		{nil, exitUsage, "borgkit needs a command"},
		{[]string{"nosuchcmd"}, exitUsage, `unknown command "nosuchcmd"`},
		{[]string{"staus"}, exitUsage, "did you mean status?"},
		{[]string{"job"}, exitUsage, "borgkit job needs a job: "},
		{[]string{"job", "nigthly"}, exitUsage, `unknown job "nigthly" for borgkit job; did you mean nightly?`},
		{[]string{"config"}, exitUsage, "borgkit config needs a command"},
		{[]string{"config", "nosuch"}, exitUsage, `unknown command "nosuch" for borgkit config`},
		{[]string{"config", "valdate"}, exitUsage, "did you mean validate?"},
		{[]string{"recovery-bundle", "verfy"}, exitUsage, "did you mean verify?"},
		{[]string{"completion", "bsh"}, exitUsage, "did you mean bash"},
		{[]string{"help", "nosuch"}, exitUsage, `unknown command "nosuch"`},
		{[]string{"help", "job", "nightly"}, exitOK, "Back up every repo"},
		{[]string{"plan", "john-ai", "--detailed", "--config", cfg}, exitUsage, "did you mean --detailed-exitcode?"},
		{[]string{"status", "--lock", "/x", "--config", cfg}, exitUsage, "unknown flag: --lock for borgkit status; it is a flag of borgkit job"},
		{[]string{"--json", "status"}, exitUsage, "put it after that command's name"},
		{[]string{"job", "stale", "--ssh", "x"}, exitUsage, "it is a flag of borgkit adopt, borgkit job sync"},
		{[]string{"provision"}, exitUsage, "borgkit provision needs HOST"},
		{[]string{"plan", "jon-ai", "--config", cfg, "--root", t.TempDir()}, exitUsage, "did you mean john-ai?"},
		{[]string{"recovery-bundle"}, exitUsage, "--to DIR (a mounted stick) or --encrypt DEVICE"},
		{[]string{"recovery-bundle", "--to", "/x", "--encrypt", "/dev/loop9"}, exitUsage, "--to and --encrypt: give one"},
		{[]string{"recovery-bundle", "--encrypt", "/dev/loop9", "--wipe", "/dev/sda"}, exitUsage, "--wipe /dev/sda does not name the --encrypt device /dev/loop9"},
		{[]string{"recovery-bundle", "--wipe", "/dev/sda", "--to", "/x"}, exitUsage, "--wipe goes with --encrypt"},
		{[]string{"recovery-bundle", "check-key", "--header", "/x"}, exitUsage, "needs --key-file"},
		{[]string{"drill", "--mirror", "/x"}, exitUsage, "needs --bundle"},
		{[]string{"drill", "--bundle", "/x"}, exitUsage, "exactly one of --disk and --mirror"},
		{[]string{"version", "extra"}, exitUsage, "takes 0 argument(s)"},
		{[]string{"job", "watchdog", "--config", cfg, "--host", "john-ai", "--state-dir", t.TempDir(), "--log-dir", t.TempDir()}, exitUsage, "runs on a host of role offsite"},
		{[]string{"job", "nightly", "--config", cfg, "--host", "nosuch"}, exitUsage, "--host nosuch: no such host"},
		{[]string{"config", "validate", "/nonexistent/borgkit.yaml"}, exitUsage, "read config"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, code := run(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, want %d with %q\n%s", code, tt.code, tt.want, out)
			}
		})
	}
}

// statusSite is a one-repo server whose records the test writes.
const statusSite = `version: 1
alerts: {to: ops@example.com, from: backup@example.com}
retention: {daily: 3, weekly: 0, monthly: 0}
hosts:
  - name: solo
    role: server
    address: 127.0.0.1
    disks:
      - {name: usb, uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f, mountpoint: /mnt/solo-backup, backup: true}
    repos:
      - {name: solo, path: /mnt/solo-backup/solo, sources: [/etc]}
  - name: other
    role: offsite
    address: 127.0.0.2
`

// record writes one finished run of job on host into dir.
func record(t *testing.T, dir, host, job string, st state.Status, stats any) {
	t.Helper()
	s := &state.Store{Dir: dir, Host: host}
	r, err := s.Begin(job)
	if err != nil {
		t.Fatal(err)
	}
	code := 0
	if !st.Succeeded() {
		code = 1
	}
	if err := r.Finish(st, code, "test", stats, nil); err != nil {
		t.Fatal(err)
	}
}

func nightlyStats() state.NightlyStats {
	return state.NightlyStats{Repos: []state.RepoStats{{Name: "solo", Status: "ok", Archives: 3, LastBackup: time.Now(), Path: "/mnt/solo-backup/solo"}}}
}

// TestStatusExitCodes: 0 healthy or warnings only, 1 a failure on the
// dashboard, 2 when it cannot tell which host this is.
func TestStatusExitCodes(t *testing.T) {
	cfg := writeConfig(t, statusSite)
	t.Run("warnings only", func(t *testing.T) {
		dir := t.TempDir()
		record(t, dir, "solo", "nightly", state.OK, nightlyStats())
		record(t, dir, "solo", "restore_test", state.OK, nil)
		out, code := run(t, "status", "--config", cfg, "--host", "solo", "--state-dir", dir)
		if code != exitOK || !strings.Contains(out, "[WARN]") || strings.Contains(out, "[FAIL]") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("healthy", func(t *testing.T) {
		dir := t.TempDir()
		record(t, dir, "solo", "nightly", state.OK, nightlyStats())
		record(t, dir, "solo", "check", state.OK, nil)
		record(t, dir, "solo", "restore_test", state.OK, nil)
		record(t, dir, "solo", "drill", state.OK, state.DrillStats{OK: true, Finished: time.Now()})
		out, code := run(t, "status", "--config", cfg, "--host", "solo", "--state-dir", dir, "--json")
		var d struct {
			Issues []struct{ Level string } `json:"issues"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("--json is not one JSON document: %v\n%s", err, out)
		}
		for _, i := range d.Issues {
			if i.Level == "failed" {
				t.Fatalf("issue %+v in a healthy run\n%s", i, out)
			}
		}
		if code != exitOK {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("failure", func(t *testing.T) {
		dir := t.TempDir()
		record(t, dir, "solo", "nightly", state.Failed, nightlyStats())
		out, code := run(t, "status", "--config", cfg, "--host", "solo", "--state-dir", dir)
		if code != exitFailed || !strings.Contains(out, "[FAIL]") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

// TestStatusPicksHost: --host, the host file and the hostname aside, a
// machine is recognised by its job records, or by being the only host.
func TestStatusPicksHost(t *testing.T) {
	cfg := writeConfig(t, statusSite)
	hn, _ := os.Hostname()
	if hn == "solo" || hn == "other" {
		t.Skip("this machine's hostname is a host of the test config")
	}
	if _, err := os.Stat("/etc/borgkit/host"); err == nil {
		t.Skip("/etc/borgkit/host exists on this machine and names the host")
	}
	t.Run("records name the host", func(t *testing.T) {
		dir := t.TempDir()
		record(t, dir, "solo", "nightly", state.OK, nightlyStats())
		out, code := run(t, "status", "--config", cfg, "--state-dir", dir)
		if code == exitUsage || !strings.Contains(out, "showing solo, the host its job records") || !strings.Contains(out, "SOLO BACKUP STATUS") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("records of a role", func(t *testing.T) {
		dir := t.TempDir()
		// A record without a host name, as a copied state directory
		// might hold: its job is only the offsite role's.
		record(t, dir, "someone-else", "watchdog", state.OK, nil)
		out, _ := run(t, "status", "--config", cfg, "--state-dir", dir)
		if !strings.Contains(out, "showing other, the only offsite host") {
			t.Fatalf("%s", out)
		}
	})
	t.Run("nothing tells", func(t *testing.T) {
		out, code := run(t, "status", "--config", cfg, "--state-dir", t.TempDir())
		if code != exitUsage || !strings.Contains(out, "pass --host NAME or write the name to /etc/borgkit/host (hosts: other, solo)") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("only host", func(t *testing.T) {
		one := writeConfig(t, strings.Split(statusSite, "  - name: other")[0])
		out, code := run(t, "status", "--config", one, "--state-dir", t.TempDir())
		if code == exitUsage || !strings.Contains(out, "showing solo, its only host") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

// TestJSONIsOneDocument: with --json, stdout is exactly one JSON value,
// also when the command fails.
func TestJSONIsOneDocument(t *testing.T) {
	good := writeConfig(t, string(exampleConfig(t)))
	bad := writeConfig(t, strings.Replace(string(exampleConfig(t)), "name: john-ai\n", "name: John AI\n", 1))
	undecodable := writeConfig(t, "version: 1\nbogus: [\n")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"version", "--json"}, exitOK, `"version"`},
		{[]string{"config", "validate", good, "--json"}, exitOK, `"valid": true`},
		{[]string{"config", "validate", bad, "--json"}, exitUsage, `"complete": true`},
		{[]string{"config", "validate", undecodable, "--json"}, exitUsage, `"complete": false`},
		{[]string{"config", "validate", "/nonexistent", "--json"}, exitUsage, `"error": "read config`},
	} {
		stdout, stderr, code := runSplit(t, tt.args...)
		var v map[string]any
		dec := json.NewDecoder(strings.NewReader(stdout))
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Errorf("%v: stdout is not one JSON document (%v):\n%s", tt.args, err, stdout)
		}
		if code != tt.code || !strings.Contains(stdout, tt.want) {
			t.Errorf("%v: exit %d, want %d and %q\nstdout:\n%s\nstderr:\n%s", tt.args, code, tt.code, tt.want, stdout, stderr)
		}
	}
}

// TestValidateReportsEveryProblem: a file that decodes gets all its
// problems at once, one that does not only its first.
func TestValidateReportsEveryProblem(t *testing.T) {
	src := string(exampleConfig(t))
	src = strings.Replace(src, "name: john-ai\n", "name: John AI\n", 1)
	src = strings.Replace(src, "uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f", "uuid: nope", 1)
	src = strings.Replace(src, "port: 587", "port: 0", 1)
	out, code := run(t, "config", "validate", writeConfig(t, src))
	if code != exitUsage || !strings.Contains(out, "problems:") || !strings.Contains(out, "port 0") || !strings.Contains(out, `host name "John AI"`) || !strings.Contains(out, `uuid "nope"`) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	two := strings.Replace(string(exampleConfig(t)), "version: 1", "version: 1\nbogus: 1\nbogus2: 2", 1)
	out, code = run(t, "config", "validate", writeConfig(t, two))
	if code != exitUsage || !strings.Contains(out, `"bogus"`) || strings.Contains(out, "bogus2") || !strings.Contains(out, "first problem only") {
		t.Fatalf("exit %d\n%s", code, out)
	}

	// --json: the same problems, each with its line, in one document, and
	// "complete" says whether they are all of them.
	for _, tc := range []struct {
		src      string
		complete bool
		problems int
	}{{src, true, 5}, {two, false, 1}} { // John AI also leaves two references to john-ai dangling
		stdout, stderr, code := runSplit(t, "config", "validate", "--json", writeConfig(t, tc.src))
		var rep validateReport
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != exitUsage || rep.Valid || rep.Complete != tc.complete || len(rep.Problems) != tc.problems || stderr != "" {
			t.Fatalf("exit %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
		}
		for _, p := range rep.Problems {
			if p.Line == 0 || p.Message == "" {
				t.Errorf("problem without line or message: %+v", p)
			}
		}
	}
}

// TestNotifyTest sends one test alert through each channel for real: msmtp
// to an SMTP listener, an ntfy endpoint, a webhook. A dead channel is
// exit 1 with its line, and the others are still tried.
func TestNotifyTest(t *testing.T) {
	if _, err := exec.LookPath("msmtp"); err != nil {
		t.Skip("msmtp is not installed (make deps installs it): the mail goes through the real one")
	}
	smtp := smtpsink.Start(t)
	ntfy := notifysink.StartNtfy(t, "tk_notify")
	hook := notifysink.StartHook(t, "", 0)
	tok := filepath.Join(t.TempDir(), "ntfy.token")
	os.WriteFile(tok, []byte("tk_notify\n"), 0o600)
	cfg := writeConfig(t, strings.Replace(statusSite, "alerts: {to: ops@example.com, from: backup@example.com}", fmt.Sprintf(`alerts:
  to: ops@example.com
  from: backup@example.com
  sendmail: [/usr/bin/msmtp, -C, %s, --read-envelope-from, -t]
  ntfy: {url: %s/backups-x7Qp, token_file: %s}
  webhook: {url: %s}`, smtp.MsmtpConfig(t), ntfy.URL, tok, hook.URL), 1))

	out, code := run(t, "notify", "test", "--config", cfg, "--host", "solo")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{"mail     ops@example.com: sent", "ntfy     " + ntfy.URL + ": sent", "webhook  " + strings.Split(hook.URL, "/hook")[0] + ": sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "backups-x7Qp") || strings.Contains(out, "secret-path") {
		t.Errorf("the output shows a channel's secret:\n%s", out)
	}
	mails, err := smtp.WaitFor(1, 10*time.Second)
	if err != nil || mails[0].Subject != "[BACKUP] solo TEST NOTIFICATION" {
		t.Fatalf("mail: %v %+v", err, mails)
	}
	if m := ntfy.Messages(); len(m) != 1 || m[0].Title != "[BACKUP] solo TEST NOTIFICATION" || m[0].Priority != 2 || m[0].Auth != "Bearer tk_notify" {
		t.Fatalf("ntfy: %+v", m)
	}
	if b := hook.Bodies(); len(b) != 1 || b[0]["severity"] != "info" || b[0]["host"] != "solo" {
		t.Fatalf("webhook: %v", b)
	}

	ntfy.Close()
	stdout, stderr, code := runSplit(t, "notify", "test", "--config", cfg, "--host", "solo", "--json")
	var res []channelResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != exitFailed {
		t.Fatalf("exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	if len(res) != 3 || !res[0].OK || res[1].OK || res[1].Channel != "ntfy" || !res[2].OK {
		t.Fatalf("results: %+v", res)
	}
	if len(hook.Bodies()) != 2 {
		t.Fatal("the webhook was not tried after ntfy failed")
	}
}

// TestPlanWarnsOfPlaceholders: the example config's SMTP password and NAS
// credentials are placeholders borgkit writes; the plan says, at its end,
// which file to edit on which host and which config line names it, and
// still goes ahead: the first provision of the example must be possible.
// Once the user put the password in, the warning goes.
func TestPlanWarnsOfPlaceholders(t *testing.T) {
	cfg := writeConfig(t, string(exampleConfig(t)))
	root := t.TempDir()
	out, code := run(t, "plan", "john-ai", "--config", cfg, "--root", root)
	want := "! WARNING secret./etc/borgkit/smtp.pass: replace the placeholder in /etc/borgkit/smtp.pass on john-ai with the SMTP password of me@example.com at smtp.example.com: until then every alert mail fails (alerts.smtp.password_file names the file, at " + cfg + ":35)"
	if code != exitOK || !strings.Contains(out, want) || !strings.Contains(out, "2 warning(s), listed at the end") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); !strings.HasPrefix(lines[len(lines)-1], "! WARNING") {
		t.Fatalf("the warnings are not where the output ends:\n%s", out)
	}
	os.MkdirAll(filepath.Join(root, "etc/borgkit"), 0o755)
	pass := filepath.Join(root, "etc/borgkit/smtp.pass")
	os.WriteFile(pass, []byte("CHANGE-ME\n"), 0o600)
	if out, _ := run(t, "plan", "john-ai", "--config", cfg, "--root", root); !strings.Contains(out, want) {
		t.Fatalf("the placeholder in place does not warn:\n%s", out)
	}
	os.WriteFile(pass, []byte("s3cret-password\n"), 0o600)
	stdout, _, code := runSplit(t, "plan", "john-ai", "--config", cfg, "--root", root, "--json")
	var rep struct {
		Warnings int `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Warnings != 1 || strings.Contains(stdout, "smtp.pass on john-ai") || code != exitOK {
		t.Fatalf("exit %d, %v: want only the NAS warning left\n%s", code, err, stdout)
	}
}

// TestBundleJSON writes a recovery bundle of a server provisioned into a
// tree, with --json: stdout is the one document (where, the digest, the
// files), the progress and warnings are on stderr.
func TestBundleJSON(t *testing.T) {
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed (make deps installs it): provisioning runs the real borg init")
	}
	root := t.TempDir()
	cfg := writeConfig(t, strings.Replace(statusSite, "      - {name: solo, path: /mnt/solo-backup/solo, sources: [/etc]}",
		"      - {name: solo, path: /mnt/solo-backup/solo, sources: [/etc], encryption: repokey-blake2}", 1))
	if out, code := run(t, "provision", "solo", "--config", cfg, "--root", root); code != exitOK {
		t.Fatalf("provision: exit %d\n%s", code, out)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	stdout, stderr, code := runSplit(t, "recovery-bundle", "--to", dir, "--root", root, "--host", "solo", "--config", cfg, "--json")
	var w struct {
		Dir    string `json:"dir"`
		Digest string `json:"manifest_sha256"`
		Files  []struct {
			Path string `json:"path"`
		} `json:"files"`
		Warnings []string `json:"warnings"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&w); err != nil || dec.More() || code != exitOK {
		t.Fatalf("exit %d, %v: stdout is not one JSON document:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	if w.Dir != dir || len(w.Digest) != 64 || len(w.Files) == 0 || w.Warnings == nil {
		t.Fatalf("%+v", w)
	}
	if !strings.Contains(stderr, "checking the borg key of repo solo/solo") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil {
			os.Chmod(p, 0o700) // the bundle is read-only; let t.TempDir remove it
		}
		return nil
	})
}
