package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
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
	cpu  []float64 // borgkit's own user+sys seconds on john-ai, per round
	busy []float64 // the whole machine's CPU seconds, every host's side too, per round
}

// cpuFormat is GNU time's last line under a fleet run: borgkit's own CPU.
const cpuFormat = "bench-cpu %U %S"

// busySeconds is the CPU time the machine has spent so far, all cores,
// every namespace (/proc/stat: user, nice, system, irq, softirq; not
// idle, iowait or what the hypervisor stole).
func busySeconds() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat begins %q", line)
	}
	ticks := 0.0
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		ticks += v
	}
	return ticks / userHZ, nil
}

// userHZ is the unit of /proc/stat on every Linux architecture.
const userHZ = 100

// ownCPU is the user+sys seconds GNU time printed last on stderr.
func ownCPU(stderr []byte) (float64, error) {
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 3 || f[0] != "bench-cpu" {
		return 0, fmt.Errorf("no GNU time line at the end of %q", tail(string(stderr), 3))
	}
	u, err1 := strconv.ParseFloat(f[1], 64)
	sy, err2 := strconv.ParseFloat(f[2], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("GNU time line %q", lines[len(lines)-1])
	}
	return u + sy, nil
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
	// A fleet in use: each client's nightly has run, so its records
	// vouch for its repo on the server (what a re-run meets the day after).
	if err := f.Nightlies(ctx); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	prov := func(hosts ...string) []string {
		argv := []string{"/usr/bin/time", "-f", cpuFormat, "borgkit", "provision"}
		return append(append(argv, hosts...), "--detailed-exitcode") // exit 3: it still changed something
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
			busy0, err := busySeconds()
			if err != nil {
				return nil, fmt.Errorf("fleet: %w", err)
			}
			t0 := time.Now()
			cpu := 0.0
			for _, argv := range sd.runs {
				out, errb, err := l.RunContext(ctx, lab.Server, argv...)
				if err != nil {
					return nil, fmt.Errorf("fleet: %s: %w\n%s", strings.Join(argv, " "), err, tail(string(errb)+string(out), 30))
				}
				c, err := ownCPU(errb)
				if err != nil {
					return nil, fmt.Errorf("fleet: %s: %w", strings.Join(argv, " "), err)
				}
				cpu += c
			}
			wall := time.Since(t0).Seconds()
			busy1, err := busySeconds()
			if err != nil {
				return nil, fmt.Errorf("fleet: %w", err)
			}
			if i >= Warmup {
				sd.res = append(sd.res, Result{Seconds: wall})
				sd.cpu = append(sd.cpu, cpu)
				sd.busy = append(sd.busy, busy1-busy0)
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
		{Item: "11", What: fmt.Sprintf("the same, borgkit's own CPU (user + sys on john-ai, GNU time): the %d clients at once / one client", fleetClients),
			Kit: Seconds(Summarize(all.cpu).Median), Peer: Seconds(Summarize(one.cpu).Median), Ratio: Summarize(Ratios(all.cpu, one.cpu))},
		{Item: "11", What: fmt.Sprintf("the same, the whole machine's CPU (every host's sshd and what it runs, and borgkit): the %d clients at once / one client", fleetClients),
			Kit: Seconds(Summarize(all.busy).Median), Peer: Seconds(Summarize(one.busy).Median), Ratio: Summarize(Ratios(all.busy, one.busy))},
		{Item: "11", What: fmt.Sprintf("the least the goal's ratio can be on this machine: the %d at once's machine CPU spread over its %d cores / one client's wall time", fleetClients, runtime.NumCPU()),
			Kit: Seconds(Summarize(spread(all.busy)).Median), Peer: Seconds(Summarize(o).Median), Ratio: Summarize(Ratios(spread(all.busy), o))},
	}, nil
}

// spread is CPU seconds as wall seconds on all of this machine's cores,
// never idle: the least time that work can take here.
func spread(busy []float64) []float64 {
	w := make([]float64, len(busy))
	for i, b := range busy {
		w[i] = b / float64(runtime.NumCPU())
	}
	return w
}

// fleetNote says how item 11 is measured.
const fleetNote = "11: the lab's fleet as TestLabFleet has it: a borg server (role borg-server) and eight clients (role server, one repo each on that server), each a network namespace with its own sshd, on a bridge in john-ai's namespace (no delay added); borgkit runs on john-ai, the admin's machine, and reaches every host over SSH, host keys pinned in the config. Everything is provisioned once first, and each client's nightly run once, as on the day after; each round then times three no-change re-runs (`--detailed-exitcode`, so a change fails the bench), in an order rotating by round: `borgkit provision client1 … client8` (one fleet run, at most 8 at once), the same eight as eight `borgkit provision HOST` one after another, and `borgkit provision client1` alone. Goal: the eight at once cost at most twice one. Every host's side of a run (its sshd, shell, stat and tar, and, where the client's last nightly does not vouch for its repo, the repo check's `borg info` over SSH, which starts borg on the client and `borg serve` on the borg server, two Python programs and a key derivation per client) runs on this machine's cores too, where on a real fleet it runs on eight machines; so the wall-time ratio measures the lab's two cores as much as borgkit. Three rows say how much: borgkit's own CPU on john-ai (GNU time, its children included: what a real fleet's hosts share), the whole machine's CPU (/proc/stat: every host's side too), and that CPU spread over the machine's cores and divided by one client's wall time, the least the goal's ratio can be on this machine whatever borgkit does."
