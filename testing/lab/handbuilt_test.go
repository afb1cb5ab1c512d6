package lab_test

import (
	"strings"
	"testing"

	"github.com/borgkit/borgkit/testing/handbuilt"
	"github.com/borgkit/borgkit/testing/lab"
)

// TestHandBuiltFixture: the seed's own sync script, run by the fixture,
// left every repo byte-identical on the Pi (through rrsync) and the NAS,
// and the heartbeat where the seed's watchdog reads it.
func TestHandBuiltFixture(t *testing.T) {
	if testing.Short() {
		t.Skip("builds five borg repos and runs the seed's sync; not with -short")
	}
	l := lab.StartT(t, lab.Options{HandBuilt: true, DiskSize: 512 << 20})
	mirrorsMatch(t, l, "")
	for _, r := range handbuilt.Repos {
		out, _, err := l.Run(lab.Server, "borg", "list", "--short", "/mnt/backup/"+r.Name)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Fields(string(out))); n != 3 || !strings.HasPrefix(string(out), "nightly-") {
			t.Errorf("%s has archives %q, want 3 named nightly-...", r.Name, out)
		}
	}
	if hb, err := l.ReadFile(lab.Offsite, handbuilt.Heartbeat); err != nil || len(hb) < 20 {
		t.Errorf("heartbeat %q: %v", hb, err)
	}
}

// mirrorsMatch checks that every repo of the seed's is byte-identical on
// the Pi (/mnt/backup/REPO) and the NAS (/mnt/nas/backups/REPO).
func mirrorsMatch(t *testing.T, l *lab.Lab, when string) {
	t.Helper()
	for _, r := range handbuilt.Repos {
		src, err := l.HashTree(lab.Server, "/mnt/backup/"+r.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []struct{ host, dir string }{{lab.Offsite, "/mnt/backup/"}, {lab.Server, "/mnt/nas/backups/"}} {
			dst, err := l.HashTree(m.host, m.dir+r.Name)
			if err != nil {
				t.Fatal(err)
			}
			if d := lab.DiffTrees(src, dst); len(d) > 0 {
				t.Errorf("%s:%s%s differs%s: %v", m.host, m.dir, r.Name, when, d)
			}
		}
	}
}
