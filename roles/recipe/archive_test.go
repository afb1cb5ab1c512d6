package recipe_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/roles/recipe"
)

// pullFromServer is the example with the archive pulling from john-ai, a
// host of the file, so john-ai's provisioning authorizes the pull key.
func pullFromServer(t *testing.T, edits ...string) *config.Config {
	t.Helper()
	return example(t, append([]string{"      host: 100.64.0.10\n", "      host: john-ai\n"}, edits...)...)
}

// fixedKey writes the ed25519 pair of seed b at p and p.pub, as the SSHKey
// step would, so golden files can hold its public half.
func fixedKey(t *testing.T, h host.Host, p string, b byte, comment string) []byte {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	pub := append(bytes.TrimRight(ssh.MarshalAuthorizedKey(signer.PublicKey()), "\n"), " "+comment+"\n"...)
	ctx := context.Background()
	if err := h.MkdirAll(ctx, filepath.Dir(p), 0o700, host.Root); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile(ctx, p, pem.EncodeToMemory(block), 0o600, host.Root); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile(ctx, p+".pub", pub, 0o644, host.Root); err != nil {
		t.Fatal(err)
	}
	return pub
}

// authorizedKeysBlock is the step that writes john-ai's authorized_keys.
func authorizedKeysBlock(t *testing.T, ss []plan.Step) *steps.Block {
	t.Helper()
	for _, s := range ss {
		if b, ok := s.(*steps.Block); ok && b.Path == layout.AuthorizedKeys {
			return b
		}
	}
	t.Fatal("no authorized_keys block")
	return nil
}

// The live server's block with fixed keys: the Pi's serve-key line and the
// archive's pull-guard line, byte for byte, each parsed back as sshd would.
func TestLiveServerAuthorizedKeysGolden(t *testing.T) {
	cfg := pullFromServer(t)
	live := host.NewRooted("john-ai", t.TempDir())
	archive := host.NewRooted("archive", t.TempDir())
	fixedKey(t, live, layout.UnlockKey("pi"), 1, "borgkit-unlock@pi")
	fixedKey(t, live, layout.ReportKey("pi"), 3, "borgkit-report@pi")
	fixedKey(t, archive, layout.SSHKey, 2, recipe.PullKeyComment("archive"))
	o := options(t)
	o.Local = archive
	ss, err := recipe.Steps(cfg, "john-ai", o)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := authorizedKeysBlock(t, ss).LinesFrom(context.Background(), live)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "john-ai-live", layout.AuthorizedKeys, lines)
	want := []string{
		`restrict,from="100.64.0.2",command="/usr/local/bin/borgkit job serve-key pi"`,
		`restrict,from="100.64.0.2",command="/usr/local/bin/borgkit job watchdog-report pi"`,
		`restrict,from="100.64.0.3",command="/usr/local/bin/borgkit job pull-guard archive"`,
	}
	got := strings.Split(strings.TrimSpace(string(lines)), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines:\n%s", len(got), lines)
	}
	for i, l := range got {
		_, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(l))
		if err != nil || strings.Join(opts, ",") != want[i] {
			t.Errorf("line %d: %v %q, want %s", i+1, err, opts, want[i])
		}
	}
}

// What the archive role renders beyond TestGolden's variant: its cron
// file (the jobs as cron lines instead of timers, parsed as cron would)
// and, with its live server in the file, known_hosts pinning that server.
// Everything else renders as in templates/testdata/archive.
func TestArchiveGoldenVariants(t *testing.T) {
	cron := rendered(t, example(t, "    scheduler: systemd ", "    scheduler: cron "), "archive")[layout.CronFile]
	checkGolden(t, "archive-cron", layout.CronFile, cron)
	file := filepath.Join(t.TempDir(), "borgkit")
	os.WriteFile(file, cron, 0o644)
	checkCronJobs(t, file, 9) // pull nightly stale check verify scrub smart-short smart-long summary

	pull := rendered(t, pullFromServer(t), "archive")
	checkGolden(t, "archive-pull", layout.KnownHosts, pull[layout.KnownHosts])
	if !strings.HasPrefix(string(pull[layout.KnownHosts]), "john-ai,100.64.0.1 ssh-ed25519 ") {
		t.Errorf("known_hosts does not pin john-ai:\n%s", pull[layout.KnownHosts])
	}
	base := rendered(t, example(t), "archive")
	for p, b := range pull {
		if p != layout.KnownHosts && !bytes.Equal(b, base[p]) {
			t.Errorf("%s renders differently when the live server is in the file", p)
		}
	}
}

// The flow the README describes: the archive is provisioned, then the live
// server from the archive, which authorizes the archive's own pull key for
// the guard. Provisioning the live server from itself or revoking the Pi's
// unlock keeps that line; a live server that never saw the key says why.
func TestPullKeyAuthorizedOnTheLiveServer(t *testing.T) {
	cfg := pullFromServer(t)
	ctx := context.Background()
	archiveDir, _ := provisionInto(t, t.TempDir(), cfg, "archive")
	archive := host.NewRooted("archive", archiveDir)
	pub, err := os.ReadFile(filepath.Join(archiveDir, layout.SSHKey+".pub"))
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(pub)), " borgkit-pull@archive") {
		t.Fatalf("archive pull key: %v %q", err, pub)
	}
	pullKey, _, _, _, _ := ssh.ParseAuthorizedKey(pub)

	liveDir := serverTree(t)
	live := host.NewRooted("john-ai", liveDir)
	ak := func() string {
		b, _ := os.ReadFile(filepath.Join(liveDir, layout.AuthorizedKeys))
		return string(b)
	}
	pullLines := func() []string {
		var out []string
		for _, l := range strings.Split(ak(), "\n") {
			if strings.Contains(l, "pull-guard") {
				out = append(out, l)
			}
		}
		return out
	}
	provision := func(local host.Host) *plan.Report {
		t.Helper()
		o := options(t)
		o.Local = local
		ss, err := recipe.Steps(cfg, "john-ai", o)
		if err != nil {
			t.Fatal(err)
		}
		r, err := plan.Run(ctx, live, ss, plan.Options{})
		if err != nil {
			t.Fatalf("provision john-ai: %v", err)
		}
		return r
	}
	pullCheck := func(r *plan.Report) plan.Check {
		for _, s := range r.Steps {
			if s.ID == "pull-key.archive" {
				return s.Check
			}
		}
		t.Fatal("no pull-key.archive step")
		return plan.Check{}
	}

	// From itself, before the archive's key was ever seen: no line, and
	// the plan says what to do. john-ai's own push key is not taken.
	r := provision(host.NewRooted("john-ai", liveDir))
	if c := pullCheck(r); c.Action != plan.Skip || !strings.Contains(c.Reason, "run `borgkit provision john-ai` on archive") {
		t.Errorf("pull-key check: %+v", c)
	}
	if l := pullLines(); len(l) != 0 {
		t.Fatalf("authorized without the archive's key: %q", l)
	}

	// From the archive: exactly its key, restricted to the guard.
	r = provision(archive)
	if c := pullCheck(r); c.Action != plan.OK {
		t.Errorf("pull-key check: %+v", c)
	}
	line := pullLines()
	if len(line) != 1 {
		t.Fatalf("pull lines %q", line)
	}
	key, comment, opts, _, err := ssh.ParseAuthorizedKey([]byte(line[0]))
	if err != nil || !bytes.Equal(key.Marshal(), pullKey.Marshal()) || comment != "borgkit-pull@archive" ||
		strings.Join(opts, ",") != `restrict,from="100.64.0.3",command="/usr/local/bin/borgkit job pull-guard archive"` {
		t.Fatalf("pull line %q: %v", line[0], err)
	}
	if !strings.Contains(ak(), "job serve-key pi") {
		t.Fatalf("the serve-key line was lost:\n%s", ak())
	}

	// Again from the archive, then from john-ai itself: nothing changes.
	for _, local := range []host.Host{archive, host.NewRooted("john-ai", liveDir), nil} {
		if r := provision(local); r.Pending() != 0 {
			t.Errorf("second run (local %v) would change %d steps", local, r.Pending())
		}
	}

	// Revoking the Pi's unlock rewrites the block without the archive's
	// key at hand: the pull line stays, the serve-key line goes.
	phases, _, err := recipe.Revoke(cfg, "pi", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, ss := range phases {
		if _, err := plan.Run(ctx, live, ss, plan.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(ak(), "serve-key") || len(pullLines()) != 1 || pullLines()[0] != line[0] {
		t.Fatalf("after revoke:\n%s", ak())
	}
}
