package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/borgkit/borgkit/provision/config"
)

// Notification is one alert as a push channel gets it: what the mail
// says, without its headers. It is also the webhook's JSON body.
type Notification struct {
	// Host is the host the alert is about (the subject's); Job the job
	// that sent it, "" for a test.
	Host string `json:"host"`
	Job  string `json:"job,omitempty"`
	// Subject is the mail's whole subject line ("[BACKUP] john-ai NIGHTLY
	// BACKUP FAILED").
	Subject  string    `json:"subject"`
	Severity Severity  `json:"severity"`
	Text     string    `json:"text"`
	Time     time.Time `json:"time"`
	// Site is the config's site:, when set.
	Site string `json:"site,omitempty"`
}

// Channel is somewhere besides the mail that alerts go: ntfy, a webhook.
type Channel interface {
	// Name is how logs and `borgkit notify test` call it ("ntfy").
	Name() string
	Notify(ctx context.Context, n Notification) error
}

// Channels are host h's push channels, as the config sets them up.
func Channels(c *config.Config, h *config.Host) []Channel {
	a := c.HostAlerts(h)
	var out []Channel
	if a.Ntfy != nil {
		out = append(out, &Ntfy{URL: a.Ntfy.URL, TokenFile: a.Ntfy.TokenFile, Tags: a.Ntfy.Tags})
	}
	if a.Webhook != nil {
		out = append(out, &Webhook{URL: a.Webhook.URL, TokenFile: a.Webhook.TokenFile})
	}
	return out
}

// ChannelTimeout bounds one request to a channel.
const ChannelTimeout = 10 * time.Second

// Ntfy publishes to an ntfy topic in its HTTP form: a POST to the topic
// URL with the text as the body and Title, Priority and Tags headers.
type Ntfy struct {
	// URL is the topic's URL, the channel's secret: no error quotes it.
	URL string
	// TokenFile, when set, holds an access token sent as a bearer token.
	TokenFile string
	// Tags are added to each message's own.
	Tags   []string
	Client *http.Client
}

func (*Ntfy) Name() string { return "ntfy" }

// maxNtfyBody keeps a message under ntfy's 4096-byte limit, above which
// the server turns it into an attachment (or refuses it).
const maxNtfyBody = 4000

// ntfyPriority is ntfy's 1..5 by severity: a failure pops up and sounds
// (high), a warning is a normal notification, a report waits in the
// drawer (low).
func ntfyPriority(s Severity) int {
	switch s {
	case SeverityWarning:
		return 3
	case SeverityInfo:
		return 2
	}
	return 4
}

// ntfyTag is the emoji short code ntfy shows before the title.
func ntfyTag(s Severity) string {
	switch s {
	case SeverityWarning:
		return "warning"
	case SeverityInfo:
		return "information_source"
	}
	return "rotating_light"
}

func (n *Ntfy) Notify(ctx context.Context, m Notification) error {
	tags := []string{ntfyTag(m.Severity), m.Host}
	if m.Job != "" {
		tags = append(tags, m.Job)
	}
	tags = append(tags, n.Tags...)
	h := http.Header{}
	// RFC 2047 for a title that is not ASCII: ntfy decodes it, and not
	// every hop passes raw UTF-8 in a header.
	h.Set("Title", mime.QEncoding.Encode("utf-8", m.Subject))
	h.Set("Priority", strconv.Itoa(ntfyPriority(m.Severity)))
	h.Set("Tags", strings.Join(tags, ","))
	h.Set("Content-Type", "text/plain; charset=utf-8")
	body := clip(m.Text, maxNtfyBody, "\n… (cut; the mail and the job's log have all of it)")
	return deliver(ctx, n.Client, "ntfy", n.URL, n.TokenFile, h, []byte(body))
}

// Webhook POSTs each alert as a JSON Notification.
type Webhook struct {
	// URL may carry a secret: no error quotes it.
	URL string
	// TokenFile, when set, holds a token sent as a bearer token.
	TokenFile string
	Client    *http.Client
}

func (*Webhook) Name() string { return "webhook" }

// maxWebhookText bounds the text a webhook gets (a job's log tail can be
// long; receivers such as chat bridges refuse large bodies).
const maxWebhookText = 64 << 10

func (w *Webhook) Notify(ctx context.Context, m Notification) error {
	m.Text = clip(m.Text, maxWebhookText, "\n… (cut)")
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return deliver(ctx, w.Client, "webhook", w.URL, w.TokenFile, h, body)
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int, mark string) string {
	if len(s) <= n {
		return s
	}
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// channelAttempts and channelBackoff: a channel is tried twice, a moment
// apart, so a blip does not lose the alert and a dead one does not hold
// the job.
const (
	channelAttempts = 2
	channelBackoff  = 2 * time.Second
)

// deliver POSTs body to target with the bearer token from tokenFile. Its
// errors name the channel, never the URL or the token.
func deliver(ctx context.Context, client *http.Client, name, target, tokenFile string, h http.Header, body []byte) error {
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("%s: read token_file: %w", name, err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return fmt.Errorf("%s: token_file %s is empty", name, tokenFile)
		}
		if tok == "CHANGE-ME" {
			return fmt.Errorf("%s: token_file %s still holds the placeholder provisioning put there: put the token in it", name, tokenFile)
		}
		h.Set("Authorization", "Bearer "+tok)
	}
	if client == nil {
		client = &http.Client{Timeout: ChannelTimeout}
	}
	var last error
	for i := range channelAttempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: %w (after: %v)", name, ctx.Err(), last)
			case <-time.After(channelBackoff):
			}
		}
		if last = post(ctx, client, target, h, bytes.NewReader(body)); last == nil {
			return nil
		}
		var perm permanent
		if errors.As(last, &perm) {
			break
		}
	}
	return fmt.Errorf("%s: %w", name, last)
}
