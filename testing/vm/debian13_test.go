package vm

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestVMDebian13 is the server scenario on Debian 13 (trixie), with its
// borg 1.4, systemd 257, cryptsetup 2.7 and OpenSSH 10, the pi too:
// provision john-ai and the pi, nightly, sync to the LUKS disk, then
// john-ai rebooted without its USB disk.
func TestVMDebian13(t *testing.T) {
	skipUnlessVM(t)
	t.Parallel()
	img := debian13Image(t) // before the scenario's clock starts: a cold build has its own timeout
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	l := newLabWith(ctx, t, labSpec{server: img, binaryEverywhere: true})
	s := l.Server
	step(t, "the guests run Debian 13 with borg 1.4", func() {
		for _, g := range l.Guests() {
			if v := must(ctx, t, g, "sed", "-n", "s/^VERSION_ID=//p", "/etc/os-release"); v != `"13"` {
				t.Fatalf("%s: VERSION_ID=%s", g.Name(), v)
			}
		}
		if v := must(ctx, t, s, "borg", "--version"); !strings.HasPrefix(v, "borg 1.4") {
			t.Fatalf("borg --version on john-ai: %s", v)
		}
	})
	l.provisionServer(ctx, t)
	l.provisionOffsite(ctx, t)
	l.nightlyAndSync(ctx, t)
	step(t, "a second nightly run", func() {
		seedData(ctx, t, s, dataDir+"/more", 2, 64<<10)
		l.job(ctx, t, s, "nightly")
		l.job(ctx, t, s, "restore-test")
	})
	l.withoutUSB(ctx, t)
}
