package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Ntfy is an ntfy topic every alert is also pushed to: the title is the
// mail's subject, the priority follows the alert's severity.
type Ntfy struct {
	// URL is the topic's URL ("https://ntfy.sh/backups-x7Qp"). On a
	// public server the topic name is the password: the URL is kept out of
	// logs, mails and config errors, as ping_url is.
	URL string `yaml:"url"`
	// TokenFile holds an access token ("tk_..."), sent as a bearer token,
	// for a topic that needs one; 0600, never in the config itself.
	TokenFile string `yaml:"token_file,omitempty"`
	// Tags are added to every message's (emoji short codes or words).
	Tags []string `yaml:"tags,omitempty"`
}

// Webhook is a URL every alert is also POSTed to, as a JSON document
// (host, job, subject, severity, text; see the README).
type Webhook struct {
	// URL is the endpoint; it may carry a secret (a Slack-style path
	// token), so it is kept out of logs and config errors.
	URL string `yaml:"url"`
	// TokenFile holds a token sent as "Authorization: Bearer TOKEN"; 0600.
	TokenFile string `yaml:"token_file,omitempty"`
}

// CheckSecretURL accepts an http or https URL with a host and no fragment.
// Its errors name field, never the URL: it may be the channel's secret,
// and the problem's line and column point at it.
func CheckSecretURL(field, s string) error {
	if hasCtl(s) || strings.ContainsAny(s, " \t") {
		return fmt.Errorf("%s contains whitespace or a control character", field)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%s is not a URL: %v", field, errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s must start with https:// (or http://)", field)
	case u.Host == "":
		return fmt.Errorf("%s names no host", field)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("%s must not carry a #fragment", field)
	}
	return nil
}

func (v *validator) ntfy(p string, n *Ntfy) {
	if n == nil {
		return
	}
	if n.URL == "" {
		v.add(p+".url", ErrRequired, "ntfy url is required: the topic's URL, such as https://ntfy.sh/YOUR-TOPIC")
	} else if err := CheckSecretURL("ntfy url", n.URL); err != nil {
		v.add(p+".url", ErrBadValue, "%v", err)
	} else if u, _ := url.Parse(n.URL); strings.Trim(u.Path, "/") == "" {
		v.add(p+".url", ErrBadValue, "ntfy url names no topic: it is the server's URL followed by /TOPIC")
	}
	v.path(p+".token_file", "token_file", n.TokenFile, false)
	for i, t := range n.Tags {
		tp := fmt.Sprintf("%s.tags[%d]", p, i)
		switch {
		case strings.TrimSpace(t) == "":
			v.add(tp, ErrBadValue, "tag is empty")
		case hasCtl(t) || strings.Contains(t, ","):
			v.add(tp, ErrBadValue, "tag %q contains a comma, a control character or a line break (ntfy separates tags with commas)", t)
		}
	}
}

func (v *validator) webhook(p string, w *Webhook) {
	if w == nil {
		return
	}
	if w.URL == "" {
		v.add(p+".url", ErrRequired, "webhook url is required")
	} else if err := CheckSecretURL("webhook url", w.URL); err != nil {
		v.add(p+".url", ErrBadValue, "%v", err)
	}
	v.path(p+".token_file", "token_file", w.TokenFile, false)
}

// URLServer is the scheme and host of a channel's URL, what may be shown
// of it: "https://ntfy.sh", never the topic or path.
func URLServer(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}
