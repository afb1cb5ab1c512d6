package bench

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

//go:embed playbook.yml
var playbook []byte

// provisioning is item 2: a no-change re-run of the server role, borgkit
// into its tree against ansible-playbook into another.
type provisioning struct {
	s       *Site
	ansible string // the tree Ansible manages
	dir     string // playbook, vars and the files it copies
	kit     []Result
	peer    []Result
	items   int
}

func newProvisioning(s *Site) *provisioning {
	return &provisioning{s: s, ansible: s.path("ansible-root"), dir: s.path("ansible")}
}

func (p *provisioning) borgkit() Cmd {
	// --detailed-exitcode: a re-run that still changed something exits 3,
	// which fails the bench instead of timing a different run.
	return p.s.borgkit("--config", p.s.ProvConfig(), "provision", provHost, "--root", p.s.Tree, "--detailed-exitcode")
}

func (p *provisioning) playbook() Cmd {
	return Cmd{Argv: []string{"ansible-playbook", "-i", "localhost,", "-c", "local", filepath.Join(p.dir, "playbook.yml")},
		Env: append(append([]string(nil), p.s.Env...), "ANSIBLE_NOCOLOR=1", "ANSIBLE_LOCALHOST_WARNING=False",
			"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3", "ANSIBLE_RETRY_FILES_ENABLED=False",
			// Pipelining is Ansible's own speed-up for many tasks: on,
			// to give it its best showing.
			"ANSIBLE_PIPELINING=True",
			"ANSIBLE_HOME="+p.s.path("ansible-home"), "ANSIBLE_LOCAL_TEMP="+p.s.path("ansible-home", "tmp"))}
}

// Setup provisions the tree for the first time (the rest of the bench
// backs up into its repo) and writes and first runs the playbook.
func (p *provisioning) Setup(ctx context.Context) error {
	if err := writeConfig(p.s.ProvConfig(), provTmpl, nil); err != nil {
		return err
	}
	if _, err := p.s.borgkit("--config", p.s.ProvConfig(), "provision", provHost, "--root", p.s.Tree).Run(ctx); err != nil {
		return err
	}
	if err := p.writePlaybook(ctx); err != nil {
		return err
	}
	_, err := p.playbook().Run(ctx)
	return err
}

type item struct {
	Path   string `json:"path"`
	Mode   string `json:"mode,omitempty"`
	Src    string `json:"src,omitempty"`
	Pass   string `json:"pass,omitempty"`
	Export string `json:"export,omitempty"`
}

// writePlaybook derives the playbook's variables from borgkit's own plan
// of the tree: its directory, file and secret steps with the modes they
// left, the fstab block, the repo and its key export. The units the plan
// keeps absent are left out: a hand-written playbook would not manage
// them, and leaving them out only spares Ansible time.
func (p *provisioning) writePlaybook(ctx context.Context) error {
	vars := struct {
		Root        string `json:"root"`
		Dirs        []item `json:"dirs"`
		Files       []item `json:"files"`
		Secrets     []item `json:"secrets"`
		Repos       []item `json:"repos"`
		FstabMarker string `json:"fstab_marker"`
		FstabBlock  string `json:"fstab_block"`
	}{Root: p.ansible}
	ids, err := p.planSteps(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		kind, path, _ := strings.Cut(id, ".")
		var list *[]item
		switch kind {
		case "dir":
			list = &vars.Dirs
		case "file":
			list = &vars.Files
		case "secret":
			list = &vars.Secrets
		case "repo", "borg-key", "block", "absent", "packages", "mount", "legacy-schedules":
			continue // tasks of their own, or not the playbook's
		default:
			return fmt.Errorf("borgkit plan has a %q step the playbook does not know", id)
		}
		it, err := p.stage(path, kind != "dir")
		if err != nil {
			return err
		}
		*list = append(*list, it)
	}
	// borgkit makes a file's missing parents; Ansible's copy does not, so
	// the playbook makes them first (file state=directory is mkdir -p).
	for _, f := range append(vars.Files, vars.Secrets...) {
		dir := filepath.Dir(f.Path)
		if slices.ContainsFunc(vars.Dirs, func(d item) bool { return d.Path == dir || strings.HasPrefix(d.Path, dir+"/") }) {
			continue
		}
		it, err := p.stage(dir, false)
		if err != nil {
			return err
		}
		vars.Dirs = append(vars.Dirs, it)
	}
	vars.Repos = []item{{Path: provRepo, Pass: "/etc/borgkit/keys/" + repoName + ".pass", Export: "/etc/borgkit/keys/" + repoName + ".borg-key"}}
	fstab, err := os.ReadFile(filepath.Join(p.s.Tree, "etc/fstab"))
	if err != nil {
		return err
	}
	vars.FstabMarker, vars.FstabBlock, err = borgkitBlock("/etc/fstab", fstab)
	if err != nil {
		return err
	}
	p.items = len(vars.Dirs) + len(vars.Files) + len(vars.Secrets) + 1 + 2*len(vars.Repos)
	b, err := json.MarshalIndent(vars, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.dir, "vars.json"), b, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.dir, "playbook.yml"), playbook, 0o644)
}

// stage reads path's mode in borgkit's tree and, for a file, copies it
// where the playbook takes it from.
func (p *provisioning) stage(path string, file bool) (item, error) {
	real := filepath.Join(p.s.Tree, path)
	fi, err := os.Stat(real)
	if err != nil {
		return item{}, fmt.Errorf("provisioned tree: %w", err)
	}
	it := item{Path: path, Mode: fmt.Sprintf("%04o", fi.Mode().Perm())}
	if file {
		it.Src = filepath.Join(p.dir, "files", path)
		if err := copyFile(real, it.Src); err != nil {
			return item{}, err
		}
	}
	return it, nil
}

var blockRE = regexp.MustCompile(`(?s)# BEGIN borgkit(.*?)\n(.*?)\n# END borgkit`)

// borgkitBlock is the marker and body of borgkit's block in a provisioned
// file (name), as Ansible's blockinfile takes them ({mark} for BEGIN and END).
func borgkitBlock(name string, content []byte) (marker, block string, err error) {
	m := blockRE.FindSubmatch(content)
	if m == nil {
		return "", "", fmt.Errorf("no borgkit block in the provisioned %s:\n%s", name, content)
	}
	// borgkit closes its block with a bare END line, so only the BEGIN
	// line's note can differ: Ansible writes one marker form for both,
	// and the bench block keeps borgkit's BEGIN line.
	return "# {mark} borgkit" + string(m[1]), string(m[2]), nil
}

// planSteps are the step IDs of borgkit's plan for the tree ("dir./etc/borgkit").
func (p *provisioning) planSteps(ctx context.Context) ([]string, error) {
	res, err := p.s.borgkit("--config", p.s.ProvConfig(), "plan", "--json", provHost, "--root", p.s.Tree).Run(ctx)
	if err != nil {
		return nil, err
	}
	var plan struct {
		Steps []struct {
			ID string `json:"id"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(res.Stdout, &plan); err != nil {
		return nil, fmt.Errorf("borgkit plan --json: %w", err)
	}
	var out []string
	for _, s := range plan.Steps {
		out = append(out, s.ID)
	}
	return out, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

var changedRE = regexp.MustCompile(`ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0`)

// Measure times no-change runs of each, side by side.
func (p *provisioning) Measure(ctx context.Context, runs int) error {
	play := func(ctx context.Context) (Result, error) {
		res, err := p.playbook().Run(ctx)
		if err == nil {
			if m := changedRE.FindSubmatch(res.Stdout); m == nil || !bytes.Equal(m[1], []byte("0")) {
				err = fmt.Errorf("the playbook's re-run changed something or failed:\n%s", tail(string(res.Stdout), 30))
			}
		}
		return res, err
	}
	var err error
	p.kit, p.peer, err = pairs(ctx, runs, p.borgkit().Run, play)
	return err
}

func (p *provisioning) Rows() []Row {
	return []Row{timeRow("2", fmt.Sprintf("provisioning, no-change re-run of the server role into a directory tree: `ansible-playbook` (6 tasks, %d items) / `borgkit provision --root`", p.items),
		p.kit, p.peer, Goal{">=", 30})}
}
