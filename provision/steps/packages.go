package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// Packages are Debian packages that must be installed. One dpkg-query for
// all of them keeps a no-change run to a single process.
type Packages struct {
	Names []string
}

func (p *Packages) ID() string { return "packages" }

// Reads is the one dpkg-query, which a survey can run (host.Want.Run).
func (p *Packages) Reads() []host.Want { return []host.Want{{Run: p.query()}} }

func (p *Packages) query() []string {
	return tools.Argv(tools.DpkgQuery, append([]string{"-W", "-f=${Package} ${db:Status-Abbrev}\n"}, p.Names...)...)
}

func (p *Packages) missing(ctx context.Context, h host.Host) ([]string, error) {
	res, err := h.Run(ctx, host.Cmd{Argv: p.query()})
	// dpkg-query exits 1 when some package is unknown; the output still
	// lists the known ones, so read it either way.
	if err != nil && res.ExitCode != 1 {
		return nil, fmt.Errorf("dpkg-query: %w", err)
	}
	installed := map[string]bool{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == "ii" {
			installed[strings.SplitN(f[0], ":", 2)[0]] = true
		}
	}
	var miss []string
	for _, n := range p.Names {
		if !installed[n] {
			miss = append(miss, n)
		}
	}
	sort.Strings(miss)
	return miss, nil
}

func (p *Packages) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	if !h.Live() {
		return plan.Skipped("--root does not install packages"), nil
	}
	miss, err := p.missing(ctx, h)
	if err != nil {
		return plan.Check{}, err
	}
	if len(miss) == 0 {
		return plan.Satisfied(), nil
	}
	return plan.Creates("apt-get install " + strings.Join(miss, " ")), nil
}

func (p *Packages) Apply(ctx context.Context, h host.Host) error {
	miss, err := p.missing(ctx, h)
	if err != nil || len(miss) == 0 {
		return err
	}
	c := host.Command(tools.AptGet, append([]string{"install", "-y", "--no-install-recommends"}, miss...)...)
	c.Env = []string{"DEBIAN_FRONTEND=noninteractive"}
	if _, err := h.Run(ctx, c); err != nil {
		return fmt.Errorf("install %s: %w", strings.Join(miss, " "), err)
	}
	return nil
}
