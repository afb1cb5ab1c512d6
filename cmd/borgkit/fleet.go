package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/borgkit/borgkit/provision/config"
)

// A fleet run does one thing (provision, plan, status) to many hosts at
// once over SSH. Each host's output is held until it is done and printed
// as one section, so sections never interleave; a failing host never stops
// the others, and the exit status says whether all, some or none failed.

// defaultParallel bounds the SSH connections a fleet run keeps open: each
// is an sshd session and a few programs on a host, and the machine running
// borgkit pays for the plan of each.
const defaultParallel = 8

// fleetHost is one host's part of a fleet run.
type fleetHost struct {
	Name string
	Err  error
	// Out and Errs are what the host's run printed on stdout and stderr.
	Out, Errs bytes.Buffer
	Took      time.Duration
}

// failed says whether the host failed; a pending plan (--detailed-exitcode)
// is not a failure.
func (h *fleetHost) failed() bool { return h.Err != nil && !errors.Is(h.Err, errPending) }

// errSomeFailed is a fleet run where some hosts failed and others did not:
// exit 5, the summary names which.
var errSomeFailed = errors.New("some hosts failed")

// fleetHosts are the hosts a fleet command acts on: every host of the
// config with --all, else the ones named, each checked against the config.
func fleetHosts(cfg *config.Config, all bool, args []string) ([]string, error) {
	if all {
		if len(args) > 0 {
			return nil, usagef("--all takes no HOST arguments, got %s", strings.Join(args, " "))
		}
		return hostNamesOf(cfg), nil
	}
	if len(args) == 0 {
		return nil, usagef("name a HOST, several, or --all")
	}
	seen := map[string]bool{}
	for _, n := range args {
		if _, ok := cfg.Host(n); !ok {
			return nil, unknownHost(cfg, n)
		}
		if seen[n] {
			return nil, usagef("host %s is named twice", n)
		}
		seen[n] = true
	}
	return args, nil
}

// fleet runs do for every host and prints the fleet's outcome: a section
// per host and the summary, or with asJSON one document. Its error is the
// fleet's exit (fleetErr). after is runFleet's.
func fleet(ctx context.Context, names []string, after map[string][]string, parallel int, asJSON bool, out io.Writer,
	do func(ctx context.Context, name string, out, errw io.Writer) error) error {
	section := textSection
	if asJSON {
		section = nil
	}
	res := runFleet(ctx, names, after, parallel, out, section, do)
	if asJSON {
		if err := writeFleetJSON(out, res); err != nil {
			return err
		}
	} else {
		writeSummary(out, res)
	}
	return fleetErr(res)
}

// runFleet runs do for every host, at most parallel at once. A host
// starts only once the hosts after[host] names have finished, those of
// names (whether they succeeded or not: its own run then says what is
// missing); after must have no cycle. Sections are printed to w whole as
// hosts finish (a slow host does not hold back the others' output); the
// results come back in the order of names.
func runFleet(ctx context.Context, names []string, after map[string][]string, parallel int, w io.Writer, section func(*fleetHost) []byte,
	do func(ctx context.Context, name string, out, errw io.Writer) error) []*fleetHost {
	if parallel < 1 {
		parallel = 1
	}
	res := make([]*fleetHost, len(names))
	done := map[string]chan struct{}{}
	for _, n := range names {
		done[n] = make(chan struct{})
	}
	sem := make(chan struct{}, parallel)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, n := range names {
		res[i] = &fleetHost{Name: n}
		wg.Add(1)
		go func(h *fleetHost) {
			defer wg.Done()
			defer close(done[h.Name])
			// Waiting holds no slot: with --parallel 1 the awaited host
			// must still get one.
			for _, d := range after[h.Name] {
				if ch, ok := done[d]; ok && d != h.Name {
					<-ch
				}
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			h.Err = do(ctx, h.Name, &h.Out, &h.Errs)
			h.Took = time.Since(start)
			if section == nil {
				return
			}
			b := section(h)
			mu.Lock()
			w.Write(b) //nolint:errcheck // the summary reports on the hosts, not on the terminal
			mu.Unlock()
		}(res[i])
	}
	wg.Wait()
	return res
}

// textSection is one host's output as the text fleet prints it: a header
// line, what its run printed (stdout then stderr), and its error.
func textSection(h *fleetHost) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "==== %s ====\n", h.Name)
	b.Write(h.Out.Bytes())
	b.Write(h.Errs.Bytes())
	if h.failed() && !errors.Is(h.Err, errReported) {
		fmt.Fprintf(&b, "borgkit: %s: %v\n", h.Name, h.Err)
	}
	b.WriteString("\n")
	return b.Bytes()
}

// fleetOutcome is one word for a host's result in the summary.
func fleetOutcome(h *fleetHost) string {
	switch {
	case h.failed():
		return "FAILED"
	case errors.Is(h.Err, errPending):
		return "pending"
	default:
		return "ok"
	}
}

// writeSummary prints the fleet's summary: a line per host, then the count.
func writeSummary(w io.Writer, res []*fleetHost) {
	fmt.Fprintf(w, "Summary (%d hosts):\n", len(res))
	var failed []string
	for _, h := range res {
		line := fmt.Sprintf("  %-8s %-20s %5.1fs", fleetOutcome(h), h.Name, h.Took.Seconds())
		if h.failed() {
			failed = append(failed, h.Name)
			line += "  " + firstLine(h.Err.Error())
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	if len(failed) == 0 {
		fmt.Fprintln(w, "All hosts succeeded.")
		return
	}
	fmt.Fprintf(w, "%d of %d hosts failed: %s\n", len(failed), len(res), strings.Join(failed, " "))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// fleetJSONHost is one host in a fleet run's JSON document.
type fleetJSONHost struct {
	Host    string          `json:"host"`
	Outcome string          `json:"outcome"` // ok | pending | FAILED
	Error   string          `json:"error,omitempty"`
	Seconds float64         `json:"seconds"`
	Result  json.RawMessage `json:"result,omitempty"` // the host's own document (a plan, a dashboard)
	Stderr  string          `json:"stderr,omitempty"`
}

// writeFleetJSON prints one document for the whole fleet: each host's own
// JSON (a plan, a dashboard) under its name, with its outcome.
func writeFleetJSON(w io.Writer, res []*fleetHost) error {
	doc := struct {
		Hosts  []fleetJSONHost `json:"hosts"`
		Failed []string        `json:"failed"`
	}{Failed: []string{}}
	for _, h := range res {
		j := fleetJSONHost{Host: h.Name, Outcome: fleetOutcome(h), Seconds: h.Took.Seconds(), Stderr: h.Errs.String()}
		if h.failed() {
			j.Error = h.Err.Error()
			doc.Failed = append(doc.Failed, h.Name)
		}
		if out := bytes.TrimSpace(h.Out.Bytes()); json.Valid(out) && len(out) > 0 {
			j.Result = out
		}
		doc.Hosts = append(doc.Hosts, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// fleetErr is the fleet's exit: nil when every host succeeded, errPending
// when none failed and one has pending changes, exit 1 when every host
// failed, and errSomeFailed (exit 5) when some did and some did not.
func fleetErr(res []*fleetHost) error {
	failed, pending := 0, false
	for _, h := range res {
		if h.failed() {
			failed++
		}
		if errors.Is(h.Err, errPending) {
			pending = true
		}
	}
	switch {
	case failed == len(res) && failed > 0:
		return reported{fmt.Errorf("every host failed")}
	case failed > 0:
		return reported{errSomeFailed}
	case pending:
		return errPending
	}
	return nil
}
