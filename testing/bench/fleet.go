package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/borgkit/borgkit/testing/lab"
)

// fleetClients is item 11's fleet: a borg server and eight clients, the
// lab's fleet (testing/lab/fleet.go) as TestLabFleet has it.
const fleetClients = 8

// fleetSide is one contender of item 11: a name and the argv runs on
// john-ai, each a no-change provisioning.
type fleetSide struct {
	what string
	runs [][]string
	res  []Result
}

// fleetRows measures item 11: a no-change `borgkit provision` of the
// eight clients at once (one fleet run naming them), against the same
// eight one after another and against one client alone, from john-ai
// over SSH into the lab's fleet; all three alternate in each round.
func fleetRows(ctx context.Context, s *Site, runs int) ([]Row, error) {
	if why := lab.Unavailable(); why != "" {
		return nil, fmt.Errorf("fleet: %s", why)
	}
	l, err := lab.Start(ctx, lab.FleetOptions(lab.Options{TempDir: s.Dir}, fleetClients))
	if err != nil {
		return nil, fmt.Errorf("fleet: lab: %w", err)
	}
	defer l.Close()
	f, err := lab.SetupFleet(ctx, l, s.Borgkit)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if out, errb, err := f.ProvisionAll(ctx); err != nil {
		return nil, fmt.Errorf("fleet: provision --all: %w\n%s", err, tail(string(errb)+string(out), 30))
	}
	prov := func(hosts ...string) []string {
		return append(append([]string{"borgkit", "provision"}, hosts...), "--detailed-exitcode") // exit 3: it still changed something
	}
	all := &fleetSide{what: "all", runs: [][]string{prov(f.Clients...)}}
	one := &fleetSide{what: "one", runs: [][]string{prov(f.Clients[0])}}
	seq := &fleetSide{what: "sequential"}
	for _, c := range f.Clients {
		seq.runs = append(seq.runs, prov(c))
	}
	sides := []*fleetSide{all, seq, one}
	for i := range Warmup + runs {
		// Each side goes first, second and third in turn.
		for j := range sides {
			sd := sides[(i+j)%len(sides)]
			t0 := time.Now()
			for _, argv := range sd.runs {
				if out, errb, err := l.RunContext(ctx, lab.Server, argv...); err != nil {
					return nil, fmt.Errorf("fleet: %s: %w\n%s", strings.Join(argv, " "), err, tail(string(errb)+string(out), 30))
				}
			}
			if i >= Warmup {
				sd.res = append(sd.res, Result{Seconds: time.Since(t0).Seconds()})
			}
		}
	}
	a, q, o := seconds(all.res), seconds(seq.res), seconds(one.res)
	return []Row{
		timeRow("11", fmt.Sprintf("fleet, no-change re-run: %d sequential `borgkit provision HOST` / one `borgkit provision` of the %d clients at once (`--parallel` %d)", fleetClients, fleetClients, fleetClients),
			all.res, seq.res, Goal{}),
		{Item: "11", What: fmt.Sprintf("fleet, no-change re-run: one `borgkit provision` of the %d clients at once / `borgkit provision` of one client", fleetClients),
			Kit: Seconds(Summarize(a).Median), Peer: Seconds(Summarize(o).Median), Ratio: Summarize(Ratios(a, o)), Goal: Goal{"<=", 2}},
		{Item: "11", What: fmt.Sprintf("the same, %d sequential / one client: what one run at a time would cost", fleetClients),
			Kit: Seconds(Summarize(q).Median), Peer: Seconds(Summarize(o).Median), Ratio: Summarize(Ratios(q, o))},
	}, nil
}

// fleetNote says how item 11 is measured.
const fleetNote = "11: the lab's fleet as TestLabFleet has it: a borg server (role borg-server) and eight clients (role server, one repo each on that server), each a network namespace with its own sshd, on a bridge in john-ai's namespace (no delay added); borgkit runs on john-ai, the admin's machine, and reaches every host over SSH, host keys pinned in the config. Everything is provisioned once first; each round then times three no-change re-runs (`--detailed-exitcode`, so a change fails the bench), in an order rotating by round: `borgkit provision client1 … client8` (one fleet run, at most 8 at once), the same eight as eight `borgkit provision HOST` one after another, and `borgkit provision client1` alone. Goal: the eight at once cost at most twice one."
