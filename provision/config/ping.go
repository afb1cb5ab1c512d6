package config

import (
	"fmt"
	"regexp"
	"strings"
)

// pingPlaceholder is what a ping URL may carry for the job's identity.
var pingPlaceholder = regexp.MustCompile(`\{[^}]*\}`)

// CheckPingURL accepts an http or https URL with a host, no fragment, and
// no placeholder but {host} and {job}. Its errors never quote the URL: it
// is the check's secret, and the problem's line and column point at it.
func CheckPingURL(s string) error {
	for _, ph := range pingPlaceholder.FindAllString(s, -1) {
		if ph != "{host}" && ph != "{job}" {
			return fmt.Errorf("ping_url has an unknown placeholder %s (there are {host} and {job})", ph)
		}
	}
	return CheckSecretURL("ping_url", ExpandPingURL(s, "host", "job"))
}

// ExpandPingURL fills in the host and job names. Both are safe names
// (letters, digits, "_.-"), so they need no escaping anywhere in a URL.
func ExpandPingURL(s, host, job string) string {
	return strings.NewReplacer("{host}", host, "{job}", job).Replace(s)
}
