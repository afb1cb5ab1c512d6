package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/testing/handbuilt"
)

// TestAdoptCLI holds adopt to the CLI contract on the first seed's
// hand-built server (a tree with real borg repos): the config is written
// and validates, --json is one report on stdout, an existing file is kept
// without --force, and the ways of calling it wrongly exit 2 before
// anything is read.
func TestAdoptCLI(t *testing.T) {
	root := t.TempDir()
	handbuilt.Tree(t, root, handbuilt.Values{MailTo: "me@example.com", MailFrom: "me@example.com", SMTPHost: "smtp.example.com",
		SMTPPort: "587", SMTPPassword: "hunter2-smtp", OffsiteAddr: "100.64.0.2", ServerAddr: "100.64.0.1",
		USBUUID: "3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f", NASUUID: "8d2e1f00-1111-4a4a-9b9b-0123456789ab", LUKSUUID: "0"})
	out := filepath.Join(t.TempDir(), "adopted.yaml")

	stdout, stderr, code := runSplit(t, "adopt", "--root", root, "--no-offsite", "-o", out, "--json")
	if code != exitOK {
		t.Fatalf("adopt: exit %d\n%s%s", code, stdout, stderr)
	}
	var report struct {
		Output string              `json:"output"`
		Retire map[string][]string `json:"retire"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&report); err != nil || dec.More() {
		t.Fatalf("adopt --json: stdout is not one JSON document (%v):\n%s", err, stdout)
	}
	if report.Output != out || !slices.Contains(report.Retire["john-ai"], "/etc/cron.d/john-ai-backups") {
		t.Errorf("adopt --json report: %+v", report)
	}
	if o, code := run(t, "config", "validate", out); code != exitOK {
		t.Errorf("the adopted config does not validate: exit %d\n%s", code, o)
	}
	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(written), "hunter2") {
		t.Errorf("the SMTP password reached the config")
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"adopt", "--root", root, "--no-offsite", "-o", out}, "exists; pass --force"},
		{[]string{"adopt", "--root", root, "--json"}, "--json puts its report on stdout"},
		{[]string{"adopt", "--ssh", "root@192.0.2.1:ssh"}, "bad port"},
		{[]string{"adopt", "extra"}, "takes 0 argument(s)"},
	} {
		if o, code := run(t, tt.args...); code != exitUsage || !strings.Contains(o, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s", tt.args, code, exitUsage, tt.want, o)
		}
	}
	if after, err := os.ReadFile(out); err != nil || string(after) != string(written) {
		t.Errorf("a refused adopt changed %s (%v)", out, err)
	}
	if o, code := run(t, "adopt", "--root", root, "--no-offsite", "-o", out, "--force"); code != exitOK || !strings.Contains(o, "the config validates") {
		t.Errorf("adopt --force: exit %d\n%s", code, o)
	}
}
