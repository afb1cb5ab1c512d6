package config

import (
	"strings"
	"testing"
)

func TestCheckPingURL(t *testing.T) {
	for _, tc := range []struct {
		url, err string // err "" = valid
	}{
		{"https://hc-ping.com/0f9f1d3e-6d5c-4b1a-9c1e-2b9e3c1d4f5a", ""},
		{"https://hc-ping.com/KEY/{host}-{job}", ""},
		{"https://hc-ping.com/KEY/{host}-{job}?create=1", ""},
		{"https://hc-ping.com/KEY%2F/{job}", ""},
		{"http://127.0.0.1:8000/ping/{job}", ""},
		{"https://{host}.checks.example/{job}", ""},
		{"hc-ping.com/KEY", "must start with https://"},
		{"https:///KEY", "names no host"},
		{"https://hc-ping.com/KEY#x", "#fragment"},
		{"https://hc-ping.com/{Job}", "unknown placeholder {Job}"},
		{"https://hc-ping.com/KEY {job}", "whitespace"},
		{"https://hc-ping.com/KEY\n", "control character"},
		{"https://hc-ping.com/%zz", "not a URL"},
	} {
		err := CheckPingURL(tc.url)
		if err != nil && strings.Contains(err.Error(), "hc-ping.com") {
			t.Errorf("%q: the error quotes the URL: %v", tc.url, err)
		}
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.url, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: got %v, want an error with %q", tc.url, err, tc.err)
		}
	}
	if got := ExpandPingURL("https://x/{host}/{job}-{job}", "pi", "watchdog"); got != "https://x/pi/watchdog-watchdog" {
		t.Errorf("ExpandPingURL = %q", got)
	}
}
