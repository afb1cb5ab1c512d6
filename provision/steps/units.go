package steps

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// Timers are systemd timer units that must be enabled and, on a live host,
// running with their current unit files loaded. Under --root they are
// enabled offline with systemctl --root, which only makes the symlinks.
type Timers struct {
	// Name tells apart a second set in one plan (a boot-time unit beside
	// the scheduled timers); "" is the schedule's.
	Name  string
	Units []string // borgkit-nightly.timer, ...
}

func (t *Timers) ID() string {
	if t.Name != "" {
		return "units." + t.Name
	}
	return "timers"
}

func (t *Timers) Reads() []host.Want {
	var w []host.Want
	for _, u := range t.Units {
		w = append(w, host.Want{Path: unitDir + u})
	}
	return w
}

// unitDir holds the unit files borgkit writes.
const unitDir = "/etc/systemd/system/"

func (t *Timers) systemctl(h host.Host, args ...string) host.Cmd {
	if !h.Live() {
		args = append([]string{"--root=" + h.Path("/")}, args...)
	}
	return host.Command(tools.Systemctl, args...)
}

// state asks systemctl once per property for all units: a no-change run is
// two or three processes, not three per timer.
func (t *Timers) state(ctx context.Context, h host.Host) ([]string, error) {
	// A unit whose file is not written yet (the plan writes it first) cannot
	// be asked about; it simply needs enabling and starting.
	var known, todo []string
	for _, u := range t.Units {
		if _, err := h.Lstat(ctx, unitDir+u); err != nil {
			todo = append(todo, "enable "+u)
			continue
		}
		known = append(known, u)
	}
	if len(known) == 0 {
		return todo, nil
	}
	// The three questions are independent: asked at once, over SSH they
	// share their round trips.
	var enabled, active, reload host.Result
	var enabledErr error
	var wg sync.WaitGroup
	ask := func(res *host.Result, err *error, args ...string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, e := h.Run(ctx, t.systemctl(h, append(args, known...)...))
			*res = r
			if err != nil {
				*err = e
			}
		}()
	}
	ask(&enabled, &enabledErr, "is-enabled")
	if h.Live() {
		ask(&active, nil, "is-active")
		ask(&reload, nil, "show", "--property=NeedDaemonReload", "--value")
	}
	wg.Wait()
	en := lines(enabled.Stdout)
	// is-enabled exits non-zero when any unit is not enabled; read the lines.
	if enabledErr != nil && len(en) != len(known) {
		return nil, fmt.Errorf("systemctl is-enabled: %w", enabledErr)
	}
	for i, u := range known {
		if i >= len(en) || en[i] != "enabled" {
			todo = append(todo, "enable "+u)
		}
	}
	if !h.Live() {
		return todo, nil
	}
	act := lines(active.Stdout)
	for i, u := range known {
		if i >= len(act) || act[i] != "active" {
			todo = append(todo, "start "+u)
		}
	}
	if bytes.Contains(reload.Stdout, []byte("yes")) {
		todo = append([]string{"daemon-reload"}, todo...)
	}
	return todo, nil
}

func lines(b []byte) []string {
	return strings.Fields(string(b))
}

func (t *Timers) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	todo, err := t.state(ctx, h)
	if err != nil {
		return plan.Check{}, err
	}
	if len(todo) == 0 {
		return plan.Satisfied(), nil
	}
	return plan.Modifies(strings.Join(todo, ", ")), nil
}

func (t *Timers) Apply(ctx context.Context, h host.Host) error {
	if h.Live() {
		if _, err := h.Run(ctx, t.systemctl(h, "daemon-reload")); err != nil {
			return fmt.Errorf("systemctl daemon-reload: %w", err)
		}
	}
	args := []string{"enable"}
	if h.Live() {
		args = append(args, "--now")
	}
	if _, err := h.Run(ctx, t.systemctl(h, append(args, t.Units...)...)); err != nil {
		return fmt.Errorf("systemctl enable %s: %w", strings.Join(t.Units, " "), err)
	}
	return nil
}

// Absent removes a file borgkit wrote earlier and no longer wants (the cron
// file after a switch to systemd timers). A file whose first line is not
// Marker's is someone else's and is left alone.
type Absent struct {
	Path   string
	Marker string
}

func (a *Absent) ID() string { return "absent." + a.Path }

func (a *Absent) Reads() []host.Want { return []host.Want{{Path: a.Path, Content: true}} }

func (a *Absent) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	b, err := h.ReadFile(ctx, a.Path)
	if host.IsNotExist(err) {
		return plan.Satisfied(), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	if !layout.MarkedBy(b, a.Marker) {
		return plan.Satisfied(), nil // not ours: not ours to remove either
	}
	return plan.Modifies("remove (no longer in the config)"), nil
}

func (a *Absent) Apply(ctx context.Context, h host.Host) error {
	return h.Remove(ctx, a.Path)
}
