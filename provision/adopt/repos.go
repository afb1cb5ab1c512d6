package adopt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/legacy"
	"github.com/borgkit/borgkit/provision/tools"
)

// repos finds the setup's repos: those its scripts write to with borg
// create, and the other borg repos beside them on the same disk; then
// reads each one's encryption, archives, passphrase and key export.
func (s *survey) repos() error {
	s.repoIDs = map[string]string{}
	var paths []string
	creates := map[string][]borgCall{}
	for _, b := range s.borgs {
		if b.Sub != "create" {
			continue
		}
		repo, _ := b.Repo()
		if !strings.HasPrefix(repo, "/") || strings.ContainsAny(repo, "$`") {
			s.leave("a borg create at %s names its repo as %q, which adopt cannot work out", origin(b.Cmd), repo)
			continue
		}
		if !slices.Contains(paths, repo) {
			paths = append(paths, repo)
		}
		creates[repo] = append(creates[repo], b)
	}
	// Repos beside them that no script names: still the setup's.
	parents := map[string]bool{}
	for _, p := range paths {
		parents[path.Dir(p)] = true
	}
	for dir := range parents {
		names, err := s.dirs(dir)
		if err != nil {
			return err
		}
		for _, n := range names {
			p := path.Join(dir, n)
			if ok, _ := borg.IsRepo(s.ctx, s.h, p); ok && !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	if len(paths) == 0 {
		return fmt.Errorf("no borg repository found: no schedule of %s runs borg create (looked in %s, %s, %s and %s)",
			s.srv.Name, legacy.CronDir, legacy.SystemCron, legacy.RootCrontab, legacy.UnitDir)
	}
	for _, p := range paths {
		if err := s.repo(p, creates[p]); err != nil {
			return err
		}
	}
	s.retention()
	s.mountChecks()
	s.canary()
	return nil
}

// dirs names the directories in dir.
func (s *survey) dirs(dir string) ([]string, error) {
	res, err := s.h.Run(s.ctx, host.Command(tools.Find, s.h.Path(dir), "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-printf", "%f\\n"))
	if err != nil {
		if host.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := strings.Fields(string(res.Stdout))
	sort.Strings(out)
	return out, nil
}

// repoList is what `borg list --json` says of a repo.
type repoList struct {
	Archives []struct {
		Name string `json:"name"`
	} `json:"archives"`
	Encryption struct {
		Mode string `json:"mode"`
	} `json:"encryption"`
}

func (s *survey) repo(p string, creates []borgCall) error {
	i := len(s.srv.Repos)
	rp := fmt.Sprintf("%s.repos[%d]", srvPath, i)
	r := config.Repo{Name: repoName(p), Path: p}
	cb, err := s.h.ReadFile(s.ctx, path.Join(p, "config"))
	if err != nil {
		return fmt.Errorf("repo %s: %w", p, err)
	}
	rc, err := borg.ParseRepoConfig(cb)
	if err != nil {
		return fmt.Errorf("repo %s: %w", p, err)
	}
	s.repoIDs[p] = rc.ID

	// An encrypted repo lists only with its passphrase.
	var pass []byte
	var from string
	list, lerr := s.borgList(p, nil)
	if lerr != nil {
		pass, from = s.findPassphrase(p)
		if pass != nil {
			list, lerr = s.borgList(p, pass)
		}
	}
	switch {
	case lerr == nil:
		r.Encryption = list.Encryption.Mode
		s.notes.add(rp+".encryption", "borg list --json says %s", list.Encryption.Mode)
	case rc.Key != "":
		r.Encryption = config.EncRepokeyBlake2
		s.notes.guess(rp+".encryption", "the repo keeps its key (repokey) but borg could not open it to say which kind: %v", lerr)
	default:
		r.Encryption = config.EncKeyfileBlake2
		s.notes.guess(rp+".encryption", "borg could not open the repo and its config holds no key: keyfile mode, or a damaged repo (%v)", lerr)
	}
	switch r.Encryption {
	case "repokey", "keyfile", "authenticated", "authenticated-blake2":
		return fmt.Errorf("repo %s is %s-encrypted; borgkit keeps none, repokey-blake2 and keyfile-blake2 repos: it cannot adopt this one", p, r.Encryption)
	}
	if r.Encryption == config.EncNone {
		r.Encryption = ""
		s.notes[rp+".encryption"] = nil
		s.notes.add(rp, "unencrypted, as borg list --json says (its encryption: is the default, none)")
	}
	if r.Encrypted() {
		s.passphraseNotes(rp, r.Name, p, from, pass != nil)
		r.PassphraseFrom = from
		if kp := s.findKeyExport(rc); kp != "" {
			r.KeyExport = kp
			s.notes.add(rp+".key_export", "an existing export of this repo's key (it names repo id %s); provisioning checks it against the repo", short(rc.ID))
		}
	}
	s.srv.Repos = append(s.srv.Repos, r)
	rr := &s.srv.Repos[i]
	s.archives(rp, rr, list, creates)
	s.createOptions(rp, rr, creates)
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// repoName is the config name of a repo at p: its directory's name, in
// the config's name grammar.
func repoName(p string) string {
	n := strings.ToLower(path.Base(p))
	var b strings.Builder
	for _, r := range n {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.TrimLeft(b.String(), "-_.")
}

// borgList runs borg list --json on the repo, read-only (--bypass-lock,
// borg's state in the scratch directory), with the passphrase on stdin.
func (s *survey) borgList(p string, pass []byte) (repoList, error) {
	var l repoList
	scratch := s.h.scratch
	if scratch == "" {
		var err error
		if scratch, err = s.h.makeScratch(s.ctx); err != nil {
			return l, err
		}
	}
	env := borg.Env{BaseDir: scratch, Copy: true, PassStdin: pass != nil}
	// A keyfile-mode repo's key is in root's keys directory: read there.
	if fi, err := s.h.Lstat(s.ctx, path.Join(layout.BorgHome, ".config/borg/keys")); err == nil && fi.IsDir() {
		env.KeysDir = s.h.Path(path.Join(layout.BorgHome, ".config/borg/keys"))
	}
	c := borg.Cmd(env, "list", "--json", "--bypass-lock", s.h.Path(p))
	if pass != nil {
		c.Stdin = bytes.NewReader(pass)
	}
	res, err := s.h.Run(s.ctx, c)
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(res.Stdout, &l); err != nil {
		return l, fmt.Errorf("borg list --json %s: %w", p, err)
	}
	return l, nil
}

// findPassphrase looks where the setup's scripts get borg's passphrase:
// a BORG_PASSPHRASE or BORG_PASSCOMMAND=cat FILE they set or source, and
// the second seed's /root/.borg_env. pass is nil when none was found.
func (s *survey) findPassphrase(p string) (pass []byte, from string) {
	var candidates []string
	for _, j := range s.jobs {
		for _, sc := range j.Scripts {
			_, hasP := sc.Vars["BORG_PASSPHRASE"]
			_, hasC := sc.Vars["BORG_PASSCOMMAND"]
			if !hasP && !hasC {
				continue
			}
			// The file that sets it: a sourced one, else the script itself.
			f := sc.Path
			for _, inc := range sc.Included {
				if _, ok := inc.Vars["BORG_PASSPHRASE"]; ok {
					f = inc.Path
				} else if _, ok := inc.Vars["BORG_PASSCOMMAND"]; ok {
					f = inc.Path
				}
			}
			if !slices.Contains(candidates, f) && strings.HasPrefix(f, "/") {
				candidates = append(candidates, f)
			}
		}
	}
	candidates = append(candidates, "/root/.borg_env")
	for _, f := range candidates {
		b, err := s.h.ReadFile(s.ctx, f)
		if err != nil {
			continue
		}
		pw, file, err := legacy.Passphrase(b)
		if err != nil {
			continue
		}
		if file != "" {
			if pw, err = s.h.ReadFile(s.ctx, file); err != nil {
				continue
			}
		}
		if _, err := s.borgList(p, pw); err == nil {
			return pw, f
		}
	}
	return nil, ""
}

func (s *survey) passphraseNotes(rp, name, p, from string, found bool) {
	if found {
		s.notes.add(rp+".passphrase_from", "the setup's passphrase for %s, which opened it; provisioning copies it into %s (0600) and never into an argv", p, layout.PassphraseFile(name))
		return
	}
	s.notes.add(rp+".passphrase_from", "adopt: NOT FOUND — no file of the setup holds a passphrase that opens %s. Put it in %s (0600) or name the file that holds it here; provisioning refuses the repo until then", p, layout.PassphraseFile(name))
	s.leave("the passphrase of %s: nothing adopt could read opens it", p)
}

// findKeyExport looks for an existing plain export of the repo's key: in
// root's home (the second seed's /root/borg-key.txt) and wherever a
// script's borg key export writes one.
func (s *survey) findKeyExport(rc borg.RepoConfig) string {
	var candidates []string
	for _, b := range s.borgs {
		if b.Sub == "key" && len(b.Pos) >= 3 && b.Pos[0] == "export" {
			candidates = append(candidates, b.Pos[2])
		}
	}
	res, err := s.h.Run(s.ctx, host.Command(tools.Find, s.h.Path(layout.BorgHome), "-mindepth", "1", "-maxdepth", "1", "-type", "f", "-size", "-64k", "-printf", "%f\\n"))
	if err == nil {
		for _, n := range strings.Fields(string(res.Stdout)) {
			candidates = append(candidates, path.Join(layout.BorgHome, n))
		}
	}
	for _, c := range candidates {
		b, err := s.h.ReadFile(s.ctx, c)
		if err != nil || !bytes.HasPrefix(b, []byte("BORG_KEY ")) {
			continue
		}
		if k, err := borg.ParseKeyExport(b); err == nil && k.ID == rc.ID {
			return c
		}
	}
	return ""
}

// archives sets the archive prefix: from the script's borg create, and
// from the names borg list shows.
func (s *survey) archives(rp string, r *config.Repo, list repoList, creates []borgCall) {
	counts := map[string]int{}
	for _, a := range list.Archives {
		counts[archivePrefixOf(a.Name)]++
	}
	script := ""
	for _, b := range creates {
		if _, a := b.Repo(); a != "" {
			script = archivePrefixOf(a)
		}
	}
	prefix, n := script, 0
	for p, c := range counts {
		if c > n || c == n && p < prefix {
			prefix, n = p, c
		}
	}
	if script != "" {
		prefix = script
	}
	others := len(list.Archives) - counts[prefix]
	switch {
	case prefix == "" && len(list.Archives) > 0:
		s.notes.add(rp+".archive_prefix", "adopt: the archives' names start with no common prefix before their date; borgkit's nightly names its own nightly-… and prunes only those")
		s.leave("repo %s: its archives have no common name prefix; prune them by hand", r.Name)
	case prefix == "":
	case others > 0:
		r.ArchivePrefix = prefix
		s.notes.add(rp+".archive_prefix", "%d of the %d archives start with %q; borgkit prunes only those, the %d others stay until removed by hand", counts[prefix], len(list.Archives), prefix, others)
		s.leave("repo %s: %d archives not named %s…, which borgkit's retention leaves alone", r.Name, others, prefix)
	default:
		r.ArchivePrefix = prefix
		s.notes.add(rp+".archive_prefix", "all %d archives are named %s<date>, as the script names them; borgkit's retention covers them", len(list.Archives), prefix)
	}
	if r.ArchivePrefix == layout.ArchivePrefix {
		// borgkit's own default: said in the note, not in the file.
		r.ArchivePrefix = ""
	}
}

// createOptions reads sources, excludes, compression and timeout from
// the script's borg create.
func (s *survey) createOptions(rp string, r *config.Repo, creates []borgCall) {
	if len(creates) == 0 {
		r.Sources = []string{r.Path + "-unknown-source"}
		s.notes.add(rp+".sources", "adopt: NOT FOUND — no script of the setup writes to this repo; set the paths to back up, or remove the repo from the config")
		s.leave("repo %s: what it backs up (no script writes to it)", r.Name)
		return
	}
	b := creates[0]
	if len(creates) > 1 {
		s.leave("repo %s: %d borg create commands write to it; the config takes %s's", r.Name, len(creates), origin(b.Cmd))
	}
	for _, w := range b.Pos[1:] {
		if strings.HasPrefix(w, "/") {
			r.Sources = append(r.Sources, path.Clean(w))
		}
	}
	s.notes.add(rp+".sources", "from borg create at %s", origin(b.Cmd))
	r.Excludes = b.Opts["--exclude"]
	if c := b.Last("--compression"); c != "" && c != config.DefaultCompression {
		r.Compression = c
	}
	if b.Has("--exclude-from") || b.Has("--patterns-from") || b.Has("--pattern") {
		s.leave("repo %s: borg create at %s reads patterns (--exclude-from, --pattern) that borgkit's excludes do not carry", r.Name, origin(b.Cmd))
	}
	// timeout "$BORG_TIMEOUT" borg create ...
	if w := b.Cmd.Words; len(w) > 2 && path.Base(w[0]) == "timeout" {
		for _, x := range w[1:] {
			if !strings.HasPrefix(x, "-") {
				if d := goDuration(x); d != "" {
					r.Timeout = d
					s.notes.add(rp+".timeout", "borg create runs under timeout %s at %s", x, origin(b.Cmd))
				}
				break
			}
		}
	}
	// VM definitions dumped before the create.
	for _, c := range s.allCmds() {
		a := c.Args()
		if len(a) >= 3 && path.Base(a[0]) == "virsh" && a[1] == "dumpxml" && !strings.ContainsAny(a[2], "$`") &&
			slices.ContainsFunc(r.Sources, func(src string) bool { return strings.Contains(src, "libvirt") }) && !slices.Contains(r.VMs, a[2]) {
			r.VMs = append(r.VMs, a[2])
		}
	}
}

// goDuration writes timeout(1)'s duration (6h, 90m, 3600) as Go's.
func goDuration(x string) string {
	if n, err := strconv.Atoi(x); err == nil {
		return fmt.Sprintf("%ds", n)
	}
	if len(x) > 1 && strings.ContainsAny(x[len(x)-1:], "smhd") {
		n, err := strconv.ParseFloat(x[:len(x)-1], 64)
		if err != nil {
			return ""
		}
		if x[len(x)-1] == 'd' {
			return fmt.Sprintf("%gh", n*24)
		}
		return x
	}
	return ""
}

func (s *survey) allCmds() []legacy.Cmd {
	var out []legacy.Cmd
	for _, j := range s.jobs {
		out = append(out, j.Cmds()...)
	}
	return out
}

// retention reads borg prune's keep flags per repo; one policy for all
// becomes the site's.
func (s *survey) retention() {
	type policy struct {
		ret config.Retention
		at  string
	}
	byRepo := map[string]policy{}
	for _, b := range s.borgs {
		if b.Sub != "prune" {
			continue
		}
		repo, _ := b.Repo()
		var ret config.Retention
		var bad []string
		for opt, dst := range map[string]*int{"--keep-daily": &ret.Daily, "--keep-weekly": &ret.Weekly, "--keep-monthly": &ret.Monthly, "--keep-yearly": &ret.Yearly} {
			if v := b.Last(opt); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil {
					bad = append(bad, opt+"="+v)
				}
				*dst = n
			}
		}
		for _, opt := range []string{"--keep-within", "--keep-last", "--keep-hourly", "--keep-minutely", "--keep-secondly"} {
			if b.Has(opt) {
				bad = append(bad, opt)
			}
		}
		if len(bad) > 0 {
			s.leave("borg prune at %s keeps by %s, which borgkit's retention has no field for", origin(b.Cmd), strings.Join(bad, ", "))
		}
		if !ret.IsZero() {
			byRepo[repo] = policy{ret, origin(b.Cmd)}
		}
	}
	var first *policy
	same := true
	for _, r := range s.srv.Repos {
		p, ok := byRepo[r.Path]
		if !ok {
			continue
		}
		if first == nil {
			first = &p
		} else if p.ret != first.ret {
			same = false
		}
	}
	if first == nil {
		return
	}
	if same {
		s.cfg.Retention = first.ret
		s.notes.add("retention", "from borg prune at %s", first.at)
	}
	for i := range s.srv.Repos {
		r := &s.srv.Repos[i]
		p, ok := byRepo[r.Path]
		switch {
		case !ok:
			s.notes.add(fmt.Sprintf("%s.repos[%d].retention", srvPath, i), "adopt: no script prunes this repo; borgkit's nightly prunes it with the site's retention")
		case !same:
			ret := p.ret
			r.Retention = &ret
			s.notes.add(fmt.Sprintf("%s.repos[%d].retention", srvPath, i), "from borg prune at %s", p.at)
		}
	}
}

// mountChecks turns the scripts' "mountpoint -q DIR" refusals into
// must_be_mountpoints for the repos backing up below DIR.
func (s *survey) mountChecks() {
	var mps []string
	for _, c := range s.allCmds() {
		a := c.Args()
		if len(a) >= 3 && path.Base(a[0]) == "mountpoint" && a[1] == "-q" && strings.HasPrefix(a[2], "/") {
			mp := path.Clean(a[2])
			if !slices.Contains(mps, mp) {
				mps = append(mps, mp)
			}
		}
	}
	for i := range s.srv.Repos {
		r := &s.srv.Repos[i]
		for _, mp := range mps {
			if layout.Under(r.Path, mp) {
				continue // the backup disk itself: borgkit checks it by UUID
			}
			if slices.ContainsFunc(r.Sources, func(src string) bool { return layout.Under(src, mp) }) {
				r.MustBeMountpoints = append(r.MustBeMountpoints, mp)
			}
		}
		if len(r.MustBeMountpoints) > 0 {
			s.notes.add(fmt.Sprintf("%s.repos[%d].must_be_mountpoints", srvPath, i), "the nightly script refuses to back up these when not mounted (mountpoint -q)")
		}
	}
}

// canary is the file the restore test extracts and compares.
func (s *survey) canary() {
	for _, b := range s.borgs {
		if b.Sub != "extract" || len(b.Pos) < 2 {
			continue
		}
		repo, _ := b.Repo()
		for i := range s.srv.Repos {
			r := &s.srv.Repos[i]
			if r.Path != repo || r.Canary != "" {
				continue
			}
			c := "/" + strings.TrimPrefix(b.Pos[1], "/")
			if slices.ContainsFunc(r.Sources, func(src string) bool { return layout.Under(c, src) }) {
				r.Canary = c
				s.notes.add(fmt.Sprintf("%s.repos[%d].canary", srvPath, i), "the restore test at %s extracts it", origin(b.Cmd))
			}
		}
	}
}
