package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// pingPlaceholder is what a ping URL may carry for the job's identity.
var pingPlaceholder = regexp.MustCompile(`\{[^}]*\}`)

// CheckPingURL accepts an http or https URL with a host, no fragment, and
// no placeholder but {host} and {job}. Its errors never quote the URL: it
// is the check's secret, and the problem's line and column point at it.
func CheckPingURL(s string) error {
	if hasCtl(s) || strings.ContainsAny(s, " \t") {
		return fmt.Errorf("ping_url contains whitespace or a control character")
	}
	for _, ph := range pingPlaceholder.FindAllString(s, -1) {
		if ph != "{host}" && ph != "{job}" {
			return fmt.Errorf("ping_url has an unknown placeholder %s (there are {host} and {job})", ph)
		}
	}
	u, err := url.Parse(ExpandPingURL(s, "host", "job"))
	switch {
	case err != nil:
		return fmt.Errorf("ping_url is not a URL: %v", errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("ping_url must start with https:// (or http://)")
	case u.Host == "":
		return fmt.Errorf("ping_url names no host")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("ping_url must not carry a #fragment")
	}
	return nil
}

// ExpandPingURL fills in the host and job names. Both are safe names
// (letters, digits, "_.-"), so they need no escaping anywhere in a URL.
func ExpandPingURL(s, host, job string) string {
	return strings.NewReplacer("{host}", host, "{job}", job).Replace(s)
}
