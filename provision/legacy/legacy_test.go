package legacy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/testing/handbuilt"
)

// seedTree writes the first seed's hand-built files under a temporary
// root: john-ai's, and the Pi's unlock timer beside them.
func seedTree(t *testing.T) (host.Host, string) {
	t.Helper()
	root := t.TempDir()
	v := handbuilt.Values{MailTo: "me@example.com", LUKSUUID: "0"}
	for _, f := range append(handbuilt.ServerFiles(), handbuilt.PiFiles()[:3]...) {
		b, err := handbuilt.Render(f.Src, v)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
	return host.NewRooted("john-ai", root), root
}

func TestScanSeedOne(t *testing.T) {
	h, _ := seedTree(t)
	jobs, err := Scan(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	// Seven cron lines and the unlock timer.
	if len(jobs) != 8 {
		t.Fatalf("found %d jobs, want 8: %+v", len(jobs), jobs)
	}
	nightly := jobs[0]
	if nightly.Cron != "0 0 * * *" || nightly.File != "/etc/cron.d/john-ai-backups" || nightly.Line != 7 {
		t.Errorf("nightly entry: %+v", nightly.Entry)
	}
	if got := nightly.Files(); !slices.Equal(got, []string{"/etc/cron.d/john-ai-backups", "/usr/local/bin/backup-nightly.sh", "/usr/local/lib/backup-lib.sh"}) {
		t.Errorf("nightly files: %q", got)
	}
	var creates, prunes []string
	for _, c := range nightly.Cmds() {
		a := c.Args()
		if len(a) < 2 || a[0] != "borg" {
			continue
		}
		switch a[1] {
		case "create":
			creates = append(creates, strings.Join(a[len(a)-3:], " "))
		case "prune":
			prunes = append(prunes, strings.Join(a[2:], " "))
		}
	}
	if len(creates) != 5 || creates[0] != "/mnt/backup/john-ai::nightly-{now:%Y-%m-%dT%H:%M} /etc /home" {
		t.Errorf("creates: %q", creates)
	}
	// The prune loop runs over $REPOS, which the sourced library sets.
	if len(prunes) != 5 || prunes[4] != "/mnt/backup/john-ai-docker --keep-daily=3 --keep-weekly=2 --keep-monthly=6" {
		t.Errorf("prunes: %q", prunes)
	}
	if got := nightly.Touches([]string{"/mnt/backup/john-ai-vms", "/mnt/nas/backups", "/srv"}); !slices.Equal(got, []string{"/mnt/backup/john-ai-vms", "/srv"}) {
		t.Errorf("touches %q", got)
	}
	sync := jobs[1]
	var rsyncs []string
	for _, c := range sync.Cmds() {
		if a := c.Args(); len(a) > 0 && a[0] == "rsync" {
			rsyncs = append(rsyncs, strings.Join(a[len(a)-2:], " "))
		}
	}
	if len(rsyncs) != 7 || rsyncs[0] != "/mnt/backup/john-ai/ offsite-backup:john-ai/" || rsyncs[6] != "/mnt/backup/ /mnt/nas/backups/" {
		t.Errorf("rsyncs: %q", rsyncs)
	}
	unlock := jobs[7]
	if !unlock.Boot || !slices.Equal(unlock.Files(), []string{"/etc/systemd/system/offsite-unlock.timer", "/etc/systemd/system/offsite-unlock.service", "/usr/local/sbin/offsite-unlock.sh"}) {
		t.Errorf("unlock: %+v files %q", unlock.Entry, unlock.Files())
	}
	if sync.Env["MAILTO"] != "me@example.com" {
		t.Errorf("cron env: %v", sync.Env)
	}
}

func TestShellWords(t *testing.T) {
	src := "#!/bin/sh\nA=/x\nexport B=\"$A/y\" C='$A'\nrun() { echo \"$1\"; }\ncat <<END\nborg create /not/a/command::x\nEND\n" +
		"rsync -a \\\n  \"$B/\"  host:'$A' 2>&1 >/dev/null && echo ok # comment\nfor R in one two; do borg check \"/r/$R\"; done\n"
	s := ParseShell("f", []byte(src), nil)
	var got []string
	for _, c := range s.Cmds {
		got = append(got, strings.Join(c.Words, "|"))
	}
	want := []string{"run()|{|echo|$1", "}", "cat", "rsync|-a|/x/y/|host:$A|2>&1|>/dev/null", "echo|ok", "do|borg|check|/r/one", "do|borg|check|/r/two"}
	if !slices.Equal(got, want) {
		t.Errorf("commands:\n got %q\nwant %q", got, want)
	}
	if s.Vars["C"] != "$A" || s.Vars["B"] != "/x/y" {
		t.Errorf("vars %v", s.Vars)
	}
}

func TestPassphrase(t *testing.T) {
	for _, c := range []struct{ in, pass, file, err string }{
		{"export BORG_PASSPHRASE='long-random-passphrase'\n", "long-random-passphrase\n", "", ""},
		{"BORG_PASSPHRASE=\"a b\"\n", "a b\n", "", ""},
		{"export BORG_PASSCOMMAND=\"cat /root/.borg-pass\"\n", "", "/root/.borg-pass", ""},
		{"export BORG_PASSPHRASE=$(pass show borg)\n", "", "", "only the shell"},
		{"export BORG_PASSCOMMAND='pass show borg'\n", "", "", "is not \"cat FILE\""},
		{"# nothing here\n", "", "", "no plain BORG_PASSPHRASE"},
	} {
		p, f, err := Passphrase([]byte(c.in))
		if string(p) != c.pass || f != c.file || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %q %q %v", c.in, p, f, err)
		}
	}
}

func TestMsmtprc(t *testing.T) {
	rc := "defaults\nauth on\ntls on\n\naccount mail\nhost smtp.example.com\nport 587\nfrom \"john-ai <me@example.com>\"\nuser me@example.com\npassword s3cret\n\naccount default : mail\n"
	a, err := Msmtprc([]byte(rc))
	if err != nil {
		t.Fatal(err)
	}
	if a.Get("host") != "smtp.example.com" || a.Get("from") != "john-ai <me@example.com>" || a.Get("tls") != "on" || a.Lines["password"] != 10 {
		t.Errorf("account %+v", a)
	}
	if p, err := MsmtpPassword([]byte(rc)); err != nil || string(p) != "s3cret\n" {
		t.Errorf("password %q %v", p, err)
	}
}

func TestCalendarCron(t *testing.T) {
	for in, want := range map[string]string{"*-*-* 02:30:00": "30 2 * * *", "Sun *-*-* 04:30": "30 4 * * 0", "*-*-15 04:45:00": "45 4 15 * *", "daily": "0 0 * * *"} {
		if got, err := CalendarCron(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := CalendarCron("Mon..Fri 10:00"); err == nil {
		t.Error("a range was taken")
	}
}
