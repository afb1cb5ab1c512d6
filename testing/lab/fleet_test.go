package lab_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/testing/lab"
)

// fleetClients is how many clients TestLabFleet's borg server serves.
const fleetClients = 8

// TestLabFleet is issue 18's proof: one borg server and eight clients,
// each a namespace with its own sshd, provisioned by one `borgkit
// provision --all` on john-ai (the admin's machine, not in the config);
// each client's nightly lands in its own repo on the server; a client's
// delete and prune are undone on the server (append-only); a client cannot
// list another's repo; a client over its quota gets a mail saying so; and
// `status --all` shows the nine hosts.
func TestLabFleet(t *testing.T) {
	start := time.Now()
	l := lab.StartT(t, lab.FleetOptions(lab.Options{}, fleetClients))
	t.Logf("lab of %d hosts up in %.1fs", len(l.Hosts()), time.Since(start).Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	f, err := lab.SetupFleet(ctx, l, borgkitBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	step := time.Now()
	out, stderr, err := f.ProvisionAll(ctx)
	if err != nil {
		t.Fatalf("provision --all: %v\n%s\n%s", err, out, stderr)
	}
	t.Logf("provision --all of %d hosts: %.1fs", len(f.Hosts()), time.Since(step).Seconds())
	for _, h := range f.Hosts() {
		if !regexp.MustCompile(`(?m)^  ok +` + h + ` `).Match(out) {
			t.Errorf("the summary has no ok line for %s:\n%s", h, out)
		}
	}
	step = time.Now()
	if out, stderr, err := f.ProvisionAll(ctx, "--detailed-exitcode"); err != nil {
		t.Fatalf("provision --all again changed something or failed: %v\n%s\n%s", err, out, stderr)
	}
	t.Logf("provision --all again, no changes: %.1fs", time.Since(step).Seconds())

	// Each client's nightly, all at once, lands in its own repo: the
	// server's borg, as root on the server, lists one archive in each.
	step = time.Now()
	if err := f.Nightlies(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nightlies at once: %.1fs", len(f.Clients), time.Since(step).Seconds())
	// Their records vouch for the repos: a no-change run trusts them
	// instead of running borg info on every client and server.
	step = time.Now()
	out, stderr, err = f.ProvisionAll(ctx, "--detailed-exitcode")
	if err != nil {
		t.Fatalf("provision --all after the nightlies changed something or failed: %v\n%s\n%s", err, out, stderr)
	}
	if n := strings.Count(string(out), "in use: the nightly of"); n != len(f.Clients) {
		t.Errorf("%d repos in use by their nightly in the plan, want %d:\n%s", n, len(f.Clients), out)
	}
	t.Logf("provision --all after the nightlies, no changes: %.1fs", time.Since(step).Seconds())
	nightly := map[string]string{}
	for _, c := range f.Clients {
		out, stderr, err := f.ServerBorg(ctx, c, "list", "--short", "--bypass-lock", f.RepoDir(c))
		if a := strings.Fields(string(out)); err != nil || len(a) != 1 || !strings.HasPrefix(a[0], "nightly-") {
			t.Fatalf("%s's repo on the server: %v, archives %q, want one nightly-\n%s", c, err, out, stderr)
		}
		nightly[c] = strings.TrimSpace(string(out))
		if fi, err := statOn(l, lab.FleetServer, f.RepoDir(c)+"/config"); err != nil || fi != lab.FleetUser {
			t.Errorf("%s's repo config on the server: owner %q (%v), want %s", c, fi, err, lab.FleetUser)
		}
	}

	// The dashboard of the fleet, text and JSON: nine hosts, all well.
	checkStatusAll(t, l, f, "", 0)

	// A client cannot list another client's repo: borg serve refuses any
	// path outside its own directory.
	a, b := f.Clients[0], f.Clients[1]
	if out, stderr, err := clientBorg(ctx, l, b, "list", f.RepoURL(a)); err == nil || !strings.Contains(string(out)+string(stderr), "not allowed") {
		t.Errorf("%s listed %s's repo: %v\n%s\n%s", b, a, err, out, stderr)
	}

	// Append-only is real: the client's borg deletes its nightly and
	// prunes, and its own list believes it; the server's owner rolls the
	// repo back to the transaction after the nightly, as borg's docs on
	// append-only mode say, and the nightly's files come back out of it.
	repo := f.RepoDir(a)
	good := lastTransaction(t, l, repo)
	for _, args := range [][]string{
		{"create", f.RepoURL(a) + "::extra1", lab.FleetSource},
		{"create", f.RepoURL(a) + "::extra2", lab.FleetSource},
		{"delete", f.RepoURL(a) + "::" + nightly[a]},
		{"prune", "--keep-last", "1", f.RepoURL(a)},
		{"compact", f.RepoURL(a)},
	} {
		if out, stderr, err := clientBorg(ctx, l, a, args...); err != nil {
			t.Fatalf("%s: borg %s: %v\n%s\n%s", a, args[0], err, out, stderr)
		}
	}
	if out, _, err := clientBorg(ctx, l, a, "list", "--short", f.RepoURL(a)); err != nil || strings.TrimSpace(string(out)) != "extra2" {
		t.Fatalf("%s's list after its delete and prune: %q (%v), want extra2 alone", a, out, err)
	}
	rollBack(t, l, repo, good)
	if out, stderr, err := f.ServerBorg(ctx, a, "list", "--short", "--bypass-lock", repo); err != nil || strings.TrimSpace(string(out)) != nightly[a] {
		t.Fatalf("after the roll back to transaction %d: %q (%v), want %s\n%s", good, out, err, nightly[a], stderr)
	}
	want, err := l.ReadFile(a, lab.FleetSource+"/user/doc0.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, stderr, err := f.ServerBorg(ctx, a, "extract", "--stdout", "--bypass-lock", repo+"::"+nightly[a], strings.TrimPrefix(lab.FleetSource, "/")+"/user/doc0.txt")
	if err != nil || string(got) != string(want) {
		t.Errorf("restore of the deleted nightly on the server: %v, %d bytes, want %d\n%s", err, len(got), len(want), stderr)
	}

	// The last client's quota is 10M: a night with 16 MB of new,
	// incompressible data fails, and its mail says it is the quota.
	full := f.Clients[len(f.Clients)-1]
	noise := make([]byte, 16<<20)
	_, _ = rand.Read(noise)
	if err := l.WriteFile(full, lab.FleetSource+"/user/photo.raw", noise, 0o644); err != nil {
		t.Fatal(err)
	}
	l.ResetMails()
	if out, _, err := l.RunContext(ctx, full, "borgkit", "job", "nightly"); err == nil {
		t.Errorf("%s's nightly over its %s quota succeeded:\n%s", full, f.Quota(full), out)
	}
	mails, err := l.WaitMails(1, 30*time.Second)
	if err != nil || !strings.Contains(mails[0].Body, "STORAGE QUOTA EXCEEDED") || !strings.Contains(mails[0].From+mails[0].Subject, full) {
		t.Errorf("mail after %s's nightly over its quota: %v\n%+v\n%s", full, err, mails, hostLog(l, full, "nightly"))
	}
	// The fleet's dashboard now names the client whose nightly failed.
	checkStatusAll(t, l, f, full, 5)
	t.Logf("TestLabFleet: %.1fs in all", time.Since(start).Seconds())
}

// checkStatusAll runs `borgkit status --all` on john-ai, as text and as
// JSON: every host of the fleet has its row, failed is the one host
// expected to fail ("" none), and the exit status is exit.
func checkStatusAll(t *testing.T, l *lab.Lab, f *lab.Fleet, failed string, exit int) {
	t.Helper()
	code := func(err error) int {
		if err == nil {
			return 0
		}
		return lab.ExitCode(err)
	}
	out, stderr, err := l.Run(lab.Server, "borgkit", "status", "--all")
	if code(err) != exit {
		t.Errorf("status --all: %v, want exit %d\n%s\n%s", err, exit, out, stderr)
	}
	for _, h := range f.Hosts() {
		outcome := "ok"
		if h == failed {
			outcome = "FAILED"
		}
		if !regexp.MustCompile(`(?m)^==== `+h+` ====$`).Match(out) || !regexp.MustCompile(`(?m)^  `+outcome+` +`+h+` `).Match(out) {
			t.Errorf("status --all: no section or no %s summary line for %s:\n%s", outcome, h, out)
		}
	}
	if !strings.Contains(string(out), fmt.Sprintf("Summary (%d hosts):", len(f.Hosts()))) {
		t.Errorf("status --all: the summary does not count %d hosts:\n%s", len(f.Hosts()), out)
	}
	out, _, err = l.Run(lab.Server, "borgkit", "status", "--all", "--json")
	if code(err) != exit {
		t.Errorf("status --all --json: %v, want exit %d", err, exit)
	}
	var doc struct {
		Hosts []struct {
			Host, Outcome string
			Result        json.RawMessage
		}
		Failed []string
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("status --all --json: %v\n%s", err, out)
	}
	if len(doc.Hosts) != len(f.Hosts()) {
		t.Errorf("status --all --json: %d hosts, want %d", len(doc.Hosts), len(f.Hosts()))
	}
	seen := map[string]bool{}
	for _, h := range doc.Hosts {
		want := "ok"
		if h.Host == failed {
			want = "FAILED"
		}
		seen[h.Host] = true
		if h.Outcome != want || len(h.Result) == 0 || !json.Valid(h.Result) {
			t.Errorf("status --all --json: host %s is %s with %d bytes of dashboard, want %s and its dashboard", h.Host, h.Outcome, len(h.Result), want)
		}
	}
	for _, h := range f.Hosts() {
		if !seen[h] {
			t.Errorf("status --all --json: no host %s", h)
		}
	}
	if wantFailed := strings.TrimSpace(failed); fmt.Sprint(doc.Failed) != fmt.Sprint(strings.Fields(wantFailed)) {
		t.Errorf("status --all --json: failed %v, want [%s]", doc.Failed, failed)
	}
}

// clientBorg runs borg on a client as its jobs do: borgkit's repo
// identity and pinned known_hosts, the passphrase from its file.
func clientBorg(ctx context.Context, l *lab.Lab, client string, args ...string) (stdout, stderr []byte, err error) {
	return l.RunContext(ctx, client, append([]string{"env", "BORG_PASSCOMMAND=cat " + layout.PassphraseFile(client), "BORG_EXIT_CODES=legacy",
		"BORG_RSH=" + borg.RSH(layout.RepoIdentity, layout.RepoKnownHosts), "borg"}, args...)...)
}

// hostLog is the tail of a job's log on a host.
func hostLog(l *lab.Lab, host, job string) string {
	b, err := l.ReadFile(host, "/var/log/borgkit/"+job+".log")
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return job + ".log on " + host + ":\n" + strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// statOn is the owner of a path on a host, by name.
func statOn(l *lab.Lab, host, p string) (string, error) {
	out, _, err := l.Run(host, "stat", "-c", "%U", p)
	return strings.TrimSpace(string(out)), err
}

var transactionRE = regexp.MustCompile(`(?m)^transaction (\d+),`)

// lastTransaction is the number of the repo's last committed transaction,
// from its transactions log on the borg server.
func lastTransaction(t *testing.T, l *lab.Lab, repo string) int {
	t.Helper()
	// borg writes the log only in append-only mode.
	b, err := l.ReadFile(lab.FleetServer, repo+"/transactions")
	if err != nil {
		t.Fatalf("no transaction log in %s: the client's borg serve is not append-only (%v)", repo, err)
	}
	m := transactionRE.FindAllStringSubmatch(string(b), -1)
	if len(m) == 0 {
		t.Fatalf("no transaction in %s:\n%s", repo, b)
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// rollBack is the server owner's recovery of borg's append-only mode,
// run on the server: every segment file numbered above transaction n, and
// the hints, index and integrity files of later transactions, go.
func rollBack(t *testing.T, l *lab.Lab, repo string, n int) {
	t.Helper()
	script := fmt.Sprintf(`set -e
cd %s
for f in data/*/* hints.* index.* integrity.*; do
	i=${f##*/}; i=${i##*.}
	if [ "$i" -gt %d ]; then rm -- "$f"; fi
done`, repo, n)
	if _, stderr, err := l.Run(lab.FleetServer, "sh", "-c", script); err != nil {
		t.Fatalf("roll back %s to transaction %d: %v\n%s", repo, n, err, stderr)
	}
}
