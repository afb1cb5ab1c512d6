package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
)

type notifyOptions struct {
	Host string
}

func newNotifyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Check where alerts go",
	}
	o := &notifyOptions{}
	test := &cobra.Command{
		Use:   "test",
		Short: "Send one test alert to every channel of this host: mail, ntfy, webhook",
		Long: `Send one test alert to every channel this host's alerts go to: the mail
(through this machine's sendmail program, msmtp by default), the ntfy topic
and the webhook, each as a job's alert would go, and report each result.
Run it on the host itself after provisioning: a channel that fails here
would also fail the night a backup does.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNotifyTest(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	g.configFlag(test)
	hostFlag(test, &o.Host)
	g.jsonFlag(test, "each channel's result")
	cmd.AddCommand(withExits(test,
		exitCase{exitOK, "every channel took the test alert"},
		exitCase{exitFailed, "a channel failed; its line says why"},
		usageCase("a bad config, or no way to tell which host this is")))
	return cmd
}

// channelResult is one line of notify test.
type channelResult struct {
	Channel string `json:"channel"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	// To says where it went, without secrets: the mail's recipients, the
	// channel's server.
	To string `json:"to"`
}

func runNotifyTest(ctx context.Context, g *globals, o *notifyOptions, out io.Writer) error {
	cfg, _, err := g.load(false)
	if err != nil {
		return err
	}
	h, err := pickHost(cfg, hostPick{Flag: o.Host, HostFile: layout.HostFile, Hostname: os.Hostname})
	if err != nil {
		return err
	}
	a := cfg.HostAlerts(h)
	mailer := alert.ForHost(cfg, h)
	now := time.Now()
	msg := alert.Message{Subject: "TEST NOTIFICATION", Severity: alert.SeverityInfo,
		Text: fmt.Sprintf("This is a test alert from %s, sent by borgkit notify test at %s.\n"+
			"It reached you here, so this host's alerts will too.\n", h.Name, now.Format("2006-01-02 15:04:05 MST"))}
	results := []channelResult{{Channel: "mail", To: a.To}}
	if err := mailer.Send(ctx, msg); err != nil {
		results[0].Error = err.Error()
	} else {
		results[0].OK = true
	}
	n := alert.Notification{Host: h.Name, Subject: mailer.Subject(msg), Severity: msg.Level(), Text: msg.Text,
		Time: now.UTC().Truncate(time.Second), Site: cfg.Site}
	for _, c := range alert.Channels(cfg, h) {
		r := channelResult{Channel: c.Name(), To: serverOf(a, c.Name())}
		if err := c.Notify(ctx, n); err != nil {
			r.Error = err.Error()
		} else {
			r.OK = true
		}
		results = append(results, r)
	}
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
	}
	if g.JSON {
		if err := writeJSON(out, results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			verdict := "sent"
			if !r.OK {
				verdict = "FAILED: " + r.Error
			}
			if _, err := fmt.Fprintf(out, "%-8s %s: %s\n", r.Channel, r.To, verdict); err != nil {
				return err
			}
		}
	}
	if failed > 0 {
		return reported{fmt.Errorf("%d of %d channels failed", failed, len(results))}
	}
	return nil
}

// serverOf names where a channel goes without its secret: the scheme and
// host of its URL, never the topic or path.
func serverOf(a config.Alerts, channel string) string {
	u := ""
	switch {
	case channel == "ntfy" && a.Ntfy != nil:
		u = a.Ntfy.URL
	case channel == "webhook" && a.Webhook != nil:
		u = a.Webhook.URL
	}
	return config.URLServer(u)
}
