package recipe

import (
	"context"
	"strings"
	"testing"
)

func TestTakeOverRootPush(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiQ2VbYiNv2K6vuZoQnABleBj9aiDtIBWItg/WyE/xZ root@john-ai"
	tests := []struct {
		name  string
		line  string
		taken bool
	}{
		{"hand-built push on the mount", `command="/usr/bin/rrsync /mnt/backup",restrict ` + key, true},
		{"write-only push below the mount", `restrict,command="/usr/bin/rrsync -wo /mnt/backup/john-ai" ` + key, true},
		{"rrsync on a directory above the mount", `command="rrsync /mnt" ` + key, true},
		{"rrsync elsewhere", `command="/usr/bin/rrsync -ro /srv/share" ` + key, false},
		{"a neighbouring path", `command="/usr/bin/rrsync /mnt/backup2" ` + key, false},
		{"an admin key", key, false},
		{"another forced command", `command="/usr/local/bin/borgkit job serve-hashes mirror=/mnt/backup" ` + key, false},
		{"a comment naming rrsync", `# command="/usr/bin/rrsync /mnt/backup" ` + key, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := "# keys\n" + tt.line + "\n"
			repl, refuse, err := takeOverRootPush("/mnt/backup")(context.Background(), nil, []byte(file))
			if err != nil || refuse != "" {
				t.Fatalf("%v %q", err, refuse)
			}
			got, ok := repl[2]
			if ok != tt.taken || len(repl) > 1 {
				t.Fatalf("taken %v (%v), want %v", ok, repl, tt.taken)
			}
			if ok && (!strings.HasPrefix(got, PushTakenMarker) || !strings.HasSuffix(got, "\n#"+tt.line)) {
				t.Errorf("replacement %q does not keep the line commented out under the marker", got)
			}
		})
	}
}
