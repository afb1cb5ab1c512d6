package config

import (
	"errors"
	"strings"
	"testing"
)

// TestNotifyChannels: ntfy and webhook are validated where they are
// written, and no error quotes their URLs (the topic is the secret).
func TestNotifyChannels(t *testing.T) {
	base := string(Example())
	for _, tc := range []struct {
		name, block, path, want string
	}{
		{"valid", "  ntfy:\n    url: https://ntfy.sh/secret-topic-x7\n    token_file: /etc/borgkit/ntfy.token\n    tags: [floppy_disk, backup]\n  webhook:\n    url: https://hooks.example/secret-path\n", "", ""},
		{"ntfy without url", "  ntfy:\n    tags: [backup]\n", "alerts.ntfy.url", "ntfy url is required"},
		{"ntfy without topic", "  ntfy:\n    url: https://ntfy.sh/\n", "alerts.ntfy.url", "names no topic"},
		{"ntfy not http", "  ntfy:\n    url: ntfy.sh/secret-topic-x7\n", "alerts.ntfy.url", "must start with https://"},
		{"ntfy tag with comma", "  ntfy:\n    url: https://ntfy.sh/secret-topic-x7\n    tags: [\"a,b\"]\n", "alerts.ntfy.tags[0]", "contains a comma"},
		{"ntfy relative token file", "  ntfy:\n    url: https://ntfy.sh/secret-topic-x7\n    token_file: ntfy.token\n", "alerts.ntfy.token_file", "absolute path"},
		{"webhook fragment", "  webhook:\n    url: https://hooks.example/secret-path#x\n", "alerts.webhook.url", "#fragment"},
		{"webhook whitespace", "  webhook:\n    url: \"https://hooks.example/secret-path x\"\n", "alerts.webhook.url", "whitespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, "alerts:\n", "alerts:\n"+tc.block, 1)
			cfg, err := Parse("borgkit.yaml", []byte(src))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				a := cfg.HostAlerts(&cfg.Hosts[0])
				if a.Ntfy == nil || a.Webhook == nil || a.Ntfy.Tags[1] != "backup" {
					t.Fatalf("channels not carried to the host: %+v", a)
				}
				a.Ntfy.Tags[0] = "changed"
				if cfg.Alerts.Ntfy.Tags[0] != "floppy_disk" {
					t.Fatal("HostAlerts shares the site's tags")
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) || len(ps) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			if ps[0].Path != "$."+tc.path || !strings.Contains(ps[0].Msg, tc.want) || ps[0].Line == 0 {
				t.Fatalf("problem %+v, want %s: %q", ps[0], tc.path, tc.want)
			}
			if strings.Contains(ps[0].Msg, "secret") {
				t.Fatalf("the message quotes the URL: %s", ps[0].Msg)
			}
		})
	}
}

// TestHostChannelsReplaceTheSites: a host's ntfy replaces the site's whole.
func TestHostChannelsReplaceTheSites(t *testing.T) {
	src := strings.Replace(string(Example()), "alerts:\n", "alerts:\n  ntfy:\n    url: https://ntfy.sh/site-topic\n    tags: [site]\n", 1)
	src = strings.Replace(src, "      subject_prefix: \"[WATCHDOG]\"\n", "      subject_prefix: \"[WATCHDOG]\"\n      ntfy:\n        url: https://ntfy.example/pi-topic\n", 1)
	cfg, err := Parse("borgkit.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	pi, _ := cfg.Host("pi")
	if a := cfg.HostAlerts(pi); a.Ntfy.URL != "https://ntfy.example/pi-topic" || len(a.Ntfy.Tags) != 0 {
		t.Fatalf("pi's ntfy: %+v", a.Ntfy)
	}
	server, _ := cfg.Host("john-ai")
	if a := cfg.HostAlerts(server); a.Ntfy.URL != "https://ntfy.sh/site-topic" {
		t.Fatalf("john-ai's ntfy: %+v", a.Ntfy)
	}
}
