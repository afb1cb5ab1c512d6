package bench

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/borgkit/borgkit/testing/lab"
	"github.com/borgkit/borgkit/testing/link"
)

//go:embed playbook-link.yml
var linkPlaybook []byte

// LinkShape is the offsite link of issue 19: a VPN to another house,
// 50 ms round trip and a 20 Mbit/s home uplink each way.
var LinkShape = link.Shape{Delay: 25 * time.Millisecond, Rate: 20_000_000}

// linkAnsibleRoot is the tree Ansible manages on the Pi, beside borgkit's,
// on the Pi's own /mnt: not among the trees a first run's restore puts
// back, which would leave the no-change runs a tree to build again.
const linkAnsibleRoot = "/mnt/borgkit-bench-ansible"

// linkBench is item 8: `borgkit provision pi` from john-ai over the
// emulated offsite link (testing/link between the lab's two namespaces),
// first run and no-change re-run, against ansible-playbook doing the same
// over the same link.
type linkBench struct {
	s     *Site
	l     *lab.Lab
	fresh *lab.SavedTree // the Pi before its first provisioning
	dir   string         // playbook, vars and the files it copies (under /tmp, which the lab hosts share)
	items int
	left  []string // step kinds of borgkit's plan the playbook leaves out

	first, again         []Result // borgkit
	peerFirst, peerAgain []Result // ansible-playbook
	firstRT, againRT     []float64
}

// linkRows measures item 8 and returns its rows and its note.
func linkRows(ctx context.Context, s *Site, runs int) ([]Row, string, error) {
	if why := lab.Unavailable(); why != "" {
		return nil, "", fmt.Errorf("link: %s", why)
	}
	shape := LinkShape
	l, err := lab.Start(ctx, lab.Options{TempDir: s.Dir, Link: &shape})
	if err != nil {
		return nil, "", fmt.Errorf("link: lab: %w", err)
	}
	defer l.Close()
	b := &linkBench{s: s, l: l, dir: s.path("link-ansible")}
	if err := b.setup(ctx); err != nil {
		return nil, "", fmt.Errorf("link: %w", err)
	}
	// First runs: the Pi's trees put back as they were before borgkit's
	// first run, and Ansible's tree removed, before each (not timed).
	b.first, b.peerFirst, err = pairs(ctx, runs, func(ctx context.Context) (Result, error) {
		if err := b.fresh.Restore(ctx); err != nil {
			return Result{}, err
		}
		res, rt, err := b.provision(ctx, false)
		b.firstRT = append(b.firstRT, rt)
		return res, err
	}, func(ctx context.Context) (Result, error) {
		if _, _, err := l.RunContext(ctx, lab.Offsite, "rm", "-rf", "--", linkAnsibleRoot); err != nil {
			return Result{}, err
		}
		return b.playbook(ctx, false)
	})
	if err != nil {
		return nil, "", fmt.Errorf("link: first runs: %w", err)
	}
	b.again, b.peerAgain, err = pairs(ctx, runs, func(ctx context.Context) (Result, error) {
		res, rt, err := b.provision(ctx, true)
		b.againRT = append(b.againRT, rt)
		return res, err
	}, func(ctx context.Context) (Result, error) { return b.playbook(ctx, true) })
	if err != nil {
		return nil, "", fmt.Errorf("link: no-change runs: %w", err)
	}
	// pairs drops the warm-up round's results; its round trips go too.
	b.firstRT, b.againRT = b.firstRT[Warmup:], b.againRT[Warmup:]
	return b.rows(), b.note(), nil
}

// setup installs borgkit on john-ai, provisions it (its SSH config and
// known hosts for the Pi), saves the Pi's fresh trees, provisions the Pi
// once and writes the playbook from what that made.
func (b *linkBench) setup(ctx context.Context) error {
	if err := lab.Install(ctx, b.l, lab.ScenarioOptions{Binary: b.s.Borgkit}); err != nil {
		return err
	}
	if out, errb, err := b.l.RunContext(ctx, lab.Server, "borgkit", "provision", lab.Server, "--local"); err != nil {
		return fmt.Errorf("provision %s: %w\n%s", lab.Server, err, tail(string(errb)+string(out), 20))
	}
	var err error
	if b.fresh, err = b.l.SaveTree(ctx, lab.Offsite); err != nil {
		return err
	}
	if _, _, err := b.provision(ctx, false); err != nil {
		return err
	}
	return b.writePlaybook(ctx)
}

// provision times `borgkit provision pi` on john-ai and counts the link's
// round trips; again requires that it changed nothing.
func (b *linkBench) provision(ctx context.Context, again bool) (Result, float64, error) {
	argv := []string{"borgkit", "provision", lab.Offsite}
	if again {
		argv = append(argv, "--detailed-exitcode") // exit 3: it still changed something
	}
	b.l.Link().ResetTurns()
	t0 := time.Now()
	out, errb, err := b.l.RunContext(ctx, lab.Server, argv...)
	res := Result{Stdout: out, Seconds: time.Since(t0).Seconds()}
	rt := float64(link.RoundTrips(b.l.Link().Turns()))
	if err != nil {
		return res, rt, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, tail(string(errb)+string(out), 20))
	}
	return res, rt, nil
}

// playbook times ansible-playbook on john-ai against the Pi, over SSH as
// borgkit goes (the lab admin key), with pipelining on and Ansible's own
// SSH multiplexing as it ships it.
func (b *linkBench) playbook(ctx context.Context, again bool) (Result, error) {
	argv := []string{"env", "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=False",
		"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3", "ANSIBLE_PIPELINING=True",
		// borgkit checks the Pi's host key against its own known_hosts; the
		// lab's address is new to Ansible, so it is told not to ask, nor to
		// add a line to borgkit's file.
		"ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_SSH_EXTRA_ARGS=-o UserKnownHostsFile=/dev/null",
		"ANSIBLE_HOME=" + b.s.path("link-ansible-home"), "ANSIBLE_LOCAL_TEMP=" + b.s.path("link-ansible-home", "tmp"),
		"ansible-playbook", "-i", b.l.Addr(lab.Offsite) + ",", "-u", "root", "--private-key", "/root/.ssh/id_ed25519",
		filepath.Join(b.dir, "playbook.yml")}
	t0 := time.Now()
	out, errb, err := b.l.RunContext(ctx, lab.Server, argv...)
	res := Result{Stdout: out, Seconds: time.Since(t0).Seconds()}
	if err != nil {
		return res, fmt.Errorf("ansible-playbook: %w\n%s", err, tail(string(errb)+string(out), 30))
	}
	if m := changedRE.FindSubmatch(out); m == nil || again && !bytes.Equal(m[1], []byte("0")) {
		return res, fmt.Errorf("the playbook's re-run changed something or failed:\n%s", tail(string(out), 30))
	}
	return res, nil
}

// writePlaybook derives the playbook's variables from borgkit's plan for
// the Pi and what its first run made there: directories, files (the
// binary among them), secrets and borgkit's blocks with their modes.
func (b *linkBench) writePlaybook(ctx context.Context) error {
	out, errb, err := b.l.RunContext(ctx, lab.Server, "borgkit", "plan", lab.Offsite, "--json")
	if err != nil {
		return fmt.Errorf("borgkit plan %s: %w\n%s", lab.Offsite, err, tail(string(errb), 20))
	}
	var plan struct {
		Steps []struct {
			ID string `json:"id"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(out, &plan); err != nil {
		return fmt.Errorf("borgkit plan --json: %w", err)
	}
	type entry struct {
		Path   string `json:"path"`
		Mode   string `json:"mode"`
		Src    string `json:"src,omitempty"`
		Marker string `json:"marker,omitempty"`
		Block  string `json:"block,omitempty"`
	}
	vars := struct {
		Root    string  `json:"root"`
		Dirs    []entry `json:"dirs"`
		Files   []entry `json:"files"`
		Secrets []entry `json:"secrets"`
		Blocks  []entry `json:"blocks"`
	}{Root: linkAnsibleRoot, Dirs: []entry{}, Files: []entry{}, Secrets: []entry{}, Blocks: []entry{}} // [], not null: a loop over none
	for _, st := range plan.Steps {
		kind, p, _ := strings.Cut(st.ID, ".")
		switch kind {
		case "dir", "mounted-dir", "file", "secret", "block":
		default:
			b.left = append(b.left, kind)
			continue
		}
		real, err := b.l.Path(lab.Offsite, p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(real)
		if errors.Is(err, fs.ErrNotExist) {
			b.left = append(b.left, st.ID+" (not made in the lab)")
			continue
		}
		if err != nil {
			return fmt.Errorf("the Pi after provisioning: %w", err)
		}
		e := entry{Path: p, Mode: fmt.Sprintf("%04o", fi.Mode().Perm())}
		if fi.IsDir() {
			vars.Dirs = append(vars.Dirs, e)
			continue
		}
		content, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		switch kind {
		case "block":
			if e.Marker, e.Block, err = borgkitBlock(p, content); err != nil {
				return err
			}
			vars.Blocks = append(vars.Blocks, e)
		default:
			e.Src = filepath.Join(b.dir, "files", p)
			if err := os.MkdirAll(filepath.Dir(e.Src), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(e.Src, content, 0o600); err != nil {
				return err
			}
			if kind == "file" {
				vars.Files = append(vars.Files, e)
			} else {
				vars.Secrets = append(vars.Secrets, e)
			}
		}
	}
	// borgkit makes a file's missing parents; Ansible's copy does not.
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return err
	}
	for _, f := range slices.Concat(vars.Files, vars.Secrets, vars.Blocks) {
		dir := filepath.Dir(f.Path)
		if slices.ContainsFunc(vars.Dirs, func(d entry) bool { return d.Path == dir || strings.HasPrefix(d.Path, dir+"/") }) {
			continue
		}
		real, err := b.l.Path(lab.Offsite, dir)
		if err != nil {
			return err
		}
		fi, err := os.Stat(real)
		if err != nil {
			return err
		}
		vars.Dirs = append(vars.Dirs, entry{Path: dir, Mode: fmt.Sprintf("%04o", fi.Mode().Perm())})
	}
	slices.SortStableFunc(vars.Dirs, func(x, y entry) int { return strings.Compare(x.Path, y.Path) })
	slices.Sort(b.left)
	b.left = slices.Compact(b.left)
	b.items = len(vars.Dirs) + len(vars.Files) + len(vars.Secrets) + len(vars.Blocks)
	j, err := json.MarshalIndent(vars, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.dir, "vars.json"), j, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.dir, "playbook.yml"), linkPlaybook, 0o644)
}

func (b *linkBench) rows() []Row {
	what := fmt.Sprintf("`provision pi` over a %s link, %%s: `ansible-playbook` (4 tasks, %d items) / `borgkit provision pi`; borgkit's sequential round trips %%s",
		LinkShape, b.items)
	rt := func(xs []float64) string {
		s := Summarize(xs)
		return fmt.Sprintf("%.0f (%.0f–%.0f)", s.Median, s.Min, s.Max)
	}
	again := timeRow("8", fmt.Sprintf(what, "no-change re-run", rt(b.againRT)), b.again, b.peerAgain, Goal{">=", 25})
	again.Limit, again.KitSeconds = 1.0, Summarize(seconds(b.again)).Median
	first := timeRow("8", fmt.Sprintf(what, "first run", rt(b.firstRT)), b.first, b.peerFirst, Goal{})
	first.Limit, first.KitSeconds = 8, Summarize(seconds(b.first)).Median
	return []Row{again, first}
}

// linkNote says how item 8 is made fair, with what the playbook leaves out.
func (b *linkBench) note() string {
	return "8: the lab's two namespaces joined through testing/link (a userspace forwarder that delays every frame 25 ms each way and limits each direction to 20 Mbit/s; the kernel has no netem); borgkit and ansible-playbook both run on john-ai and reach the Pi over SSH with the same key. The playbook manages the very directories, files (the borgkit binary among them), secrets and blocks borgkit's first run made, with their modes, in a tree of its own on the Pi; it leaves out " +
		strings.Join(b.left, ", ") + " (spares Ansible time). Pipelining on, no facts, Ansible's SSH multiplexing as shipped (ControlPersist, which keeps its login across rounds; borgkit logs in anew each run). A first run starts from the Pi's trees as they were before borgkit's first run (/etc, /root, /usr/local, /var, /run, /home restored), and from an empty tree for Ansible. Round trips are the link's: a payload in one direction after the other counts one turn, two turns one round trip. Goals: no-change ≤ 1.0 s and ≥ 25× Ansible; first run ≤ 8 s."
}
