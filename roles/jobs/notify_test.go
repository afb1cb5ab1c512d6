package jobs_test

import (
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs"
	"github.com/borgkit/borgkit/testing/notifysink"
)

// TestAlertsReachEveryChannel runs a nightly that fails for real: the
// mail, an ntfy topic and a webhook each get the alert. Then, with the
// ntfy server gone, a nightly that fails still mails and posts, logs the
// dead channel without its URL, and a good nightly is still a success.
func TestAlertsReachEveryChannel(t *testing.T) {
	// Three nightlies: prune wants room for a whole segment.
	l := newLab(t, labOptions{extraRepo: true, diskSize: 768 << 20})
	ntfy := notifysink.StartNtfy(t, "")
	hook := notifysink.StartHook(t, "", 0)
	l.env.Cfg.Alerts.Ntfy = &config.Ntfy{URL: ntfy.URL + "/backups-x7Qp", Tags: []string{"floppy_disk"}}
	l.env.Cfg.Alerts.Webhook = &config.Webhook{URL: hook.URL}
	l.env.Channels = nil
	l.env.Defaults()

	if err := jobs.Nightly(ctx(), l.env); err == nil {
		t.Fatal("nightly succeeded with a broken repo")
	}
	mails := l.mails(1)
	msgs := ntfy.Messages()
	if len(msgs) != 1 || msgs[0].Title != mails[0].Subject || msgs[0].Priority != 4 || !strings.Contains(msgs[0].Message, "NIGHTLY BACKUP FAILED") ||
		strings.Join(msgs[0].Tags, ",") != "rotating_light,john-ai,nightly,floppy_disk" {
		t.Fatalf("ntfy got %+v (mail subject %q)", msgs, mails[0].Subject)
	}
	bodies := hook.Bodies()
	if len(bodies) != 1 || bodies[0]["subject"] != mails[0].Subject || bodies[0]["severity"] != "failure" ||
		bodies[0]["host"] != "john-ai" || bodies[0]["job"] != "nightly" || !strings.Contains(bodies[0]["text"].(string), "NIGHTLY BACKUP FAILED") {
		t.Fatalf("webhook got %v", bodies)
	}

	ntfy.Close()
	if err := jobs.Nightly(ctx(), l.env); err == nil {
		t.Fatal("nightly succeeded with a broken repo")
	}
	l.mails(1)
	if n := len(hook.Bodies()); n != 2 {
		t.Fatalf("webhook got %d alerts with ntfy down, want 2", n)
	}
	log := l.log.String()
	if !strings.Contains(log, `notifying "[BACKUP] john-ai NIGHTLY BACKUP FAILED" failed: ntfy:`) || strings.Contains(log, "backups-x7Qp") {
		t.Fatalf("the log does not say ntfy failed, or quotes its topic:\n%s", log)
	}

	l.env.Cfg.Hosts[0].Repos = l.env.Cfg.Hosts[0].Repos[:1] // the broken repo gone
	if err := jobs.Nightly(ctx(), l.env); err != nil {
		t.Fatalf("a dead channel failed a good nightly: %v", err)
	}
}
