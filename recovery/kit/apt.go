package kit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/tools"
)

// DefaultMirror and DefaultSecurity are where the packages come from.
const (
	DefaultMirror   = "http://deb.debian.org/debian"
	DefaultSecurity = "http://security.debian.org/debian-security"
	// DefaultKeyring checks the mirror's signatures (debian-archive-keyring).
	DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
)

// Options say where to fetch from and where to keep what was fetched.
type Options struct {
	// Cache keeps apt's state and the .deb files per architecture, so the
	// next bundle downloads only what changed, and a bundle written with
	// no network still gets the packages of the last fetch (marked stale).
	Cache    string
	Mirror   string
	Security string
	Keyring  string
	Arch     string
	Wanted   []string
	Now      func() time.Time
	Status   func(format string, args ...any)
	Run      func(ctx context.Context, c host.Cmd) (host.Result, error)
}

func (o *Options) defaults() {
	if o.Mirror == "" {
		o.Mirror = DefaultMirror
	}
	if o.Security == "" {
		o.Security = DefaultSecurity
	}
	if o.Keyring == "" {
		o.Keyring = DefaultKeyring
	}
	if len(o.Wanted) == 0 {
		o.Wanted = Wanted
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Status == nil {
		o.Status = func(string, ...any) {}
	}
	if o.Run == nil {
		local := host.NewLocal("localhost")
		o.Run = local.Run
	}
}

// apt is one architecture's private apt: its own sources, state, status
// file and download directory under the cache, and none of the machine's
// configuration (APT_CONFIG names a file that turns the rest off).
type apt struct {
	o    *Options
	dir  string
	conf string
}

func (a *apt) path(p ...string) string { return filepath.Join(append([]string{a.dir}, p...)...) }

func newApt(o *Options) (*apt, error) {
	a := &apt{o: o, dir: filepath.Join(o.Cache, Release+"-"+o.Arch)}
	for _, d := range []string{"lists/partial", "archives/partial", "etc/parts", "etc/preferences.d"} {
		if err := os.MkdirAll(a.path(d), 0o755); err != nil {
			return nil, fmt.Errorf("kit cache: %w", err)
		}
	}
	signed := "[signed-by=" + o.Keyring + "]"
	sources := fmt.Sprintf("deb %s %s %s main\ndeb %s %s-updates main\ndeb %s %s %s-security main\n",
		signed, o.Mirror, Suite, signed+" "+o.Mirror, Suite, signed, o.Security, Suite)
	conf := strings.Join([]string{
		// Read before the machine's apt.conf.d: none of its settings (a
		// proxy is the exception worth having: http_proxy still works).
		`Dir::Etc::main "/dev/null";`,
		`Dir::Etc::parts "` + a.path("etc/parts") + `";`,
		`Dir::Etc::SourceList "` + a.path("etc/sources.list") + `";`,
		`Dir::Etc::SourceParts "` + a.path("etc/parts") + `";`,
		`Dir::Etc::Preferences "/dev/null";`,
		`Dir::Etc::PreferencesParts "` + a.path("etc/preferences.d") + `";`,
		`Dir::State "` + a.dir + `";`,
		`Dir::State::Lists "` + a.path("lists") + `";`,
		`Dir::State::status "` + a.path("status") + `";`,
		`Dir::State::extended_states "` + a.path("extended_states") + `";`,
		`Dir::Cache "` + a.dir + `";`,
		`Dir::Cache::archives "` + a.path("archives") + `";`,
		`APT::Architecture "` + o.Arch + `";`,
		`APT::Architectures { "` + o.Arch + `"; };`,
		`APT::Install-Recommends "false";`,
		`Acquire::Languages "none";`,
		`Acquire::Retries "2";`,
		"",
	}, "\n")
	a.conf = a.path("etc/apt.conf")
	for name, data := range map[string]string{"etc/sources.list": sources, "etc/apt.conf": conf} {
		if err := os.WriteFile(a.path(name), []byte(data), 0o644); err != nil {
			return nil, fmt.Errorf("kit cache: %w", err)
		}
	}
	return a, nil
}

func (a *apt) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	c := host.Command(prog, args...)
	c.Env = []string{"APT_CONFIG=" + a.conf, "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}
	res, err := a.o.Run(ctx, c)
	return res.Stdout, err
}

// setStatus makes apt believe the given control records are installed.
func (a *apt) setStatus(stanzas []string) error {
	var b bytes.Buffer
	for _, s := range stanzas {
		b.WriteString(strings.TrimRight(s, "\n") + "\nStatus: install ok installed\n\n")
	}
	return os.WriteFile(a.path("status"), b.Bytes(), 0o644)
}

// show returns the control records of exactly these versions.
func (a *apt) show(ctx context.Context, pkgs []Planned) (map[string]string, error) {
	args := []string{"show", "--no-all-versions"}
	for _, p := range pkgs {
		args = append(args, p.Name+"="+p.Version)
	}
	out, err := a.run(ctx, tools.AptCache, args...)
	if err != nil {
		return nil, err
	}
	recs := map[string]string{}
	err = Stanzas(bytes.NewReader(out), func(st string) bool {
		recs[ParseStanza(st)["Package"]] = st
		return true
	})
	for _, p := range pkgs {
		if _, ok := recs[p.Name]; !ok && err == nil {
			err = fmt.Errorf("apt-cache show gave no record for %s %s", p.Name, p.Version)
		}
	}
	return recs, err
}

// repoFile is the cached result of the last complete fetch.
const repoFile = "repo.json"

// Fetch resolves and downloads one architecture's closure. When the mirror
// cannot be reached, the last complete fetch in the cache is returned with
// Stale saying why; with no such fetch the error says what failed.
func Fetch(ctx context.Context, o Options) (*Repo, error) {
	o.defaults()
	if o.Cache == "" || o.Arch == "" {
		return nil, errors.New("kit: a cache directory and an architecture are required")
	}
	a, err := newApt(&o)
	if err != nil {
		return nil, err
	}
	// --error-on=any: an index that could not be fetched fails the update
	// (by default apt warns and uses the old one, or none).
	o.Status("fetching the Debian package index for %s from %s", o.Arch, o.Mirror)
	if _, err := a.run(ctx, tools.AptGet, "update", "-q", "--error-on=any"); err != nil {
		cached, cerr := Cached(o.Cache, o.Arch)
		if cerr != nil {
			return nil, fmt.Errorf("the Debian %s packages could not be fetched (%v), and the cache %s has none from before: %w", o.Arch, err, o.Cache, cerr)
		}
		cached.Stale = fmt.Sprintf("the mirror could not be reached (%s); these are the packages fetched on %s", why(err), cached.Fetched.UTC().Format("2006-01-02 15:04 UTC"))
		return cached, nil
	}
	r, err := a.resolve(ctx)
	if err != nil {
		return nil, err
	}
	r.Fetched = o.Now().UTC().Truncate(time.Second)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(a.path(repoFile), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("kit cache: %w", err)
	}
	return r, nil
}

// resolve asks apt for the minbase system, then for the wanted packages on
// top of it, downloads them and checks each file against the signed index.
func (a *apt) resolve(ctx context.Context) (*Repo, error) {
	o := a.o
	o.Status("resolving a Debian 12 minbase system for %s", o.Arch)
	if err := a.setStatus(nil); err != nil {
		return nil, err
	}
	avail, err := a.run(ctx, tools.AptCache, "dumpavail")
	if err != nil {
		return nil, err
	}
	// debootstrap merges /usr itself and installs usr-is-merged, which
	// init-system-helpers' "usrmerge | usr-is-merged" then takes; apt alone
	// would pick usrmerge and with it all of perl.
	required := map[string]bool{"apt": true, "usr-is-merged": true}
	_ = Stanzas(bytes.NewReader(avail), func(st string) bool {
		if f := ParseStanza(st); f["Priority"] == "required" {
			required[f["Package"]] = true
		}
		return true
	})
	names := make([]string, 0, len(required))
	for n := range required {
		names = append(names, n)
	}
	slices.Sort(names)
	out, err := a.run(ctx, tools.AptGet, append([]string{"install", "-s", "-q"}, names...)...)
	if err != nil {
		return nil, err
	}
	base, err := ParsePlan(out)
	if err != nil {
		return nil, err
	}
	if len(base) < len(names) {
		return nil, fmt.Errorf("apt planned %d packages for a minbase system of %d required ones", len(base), len(names))
	}
	recs, err := a.show(ctx, base)
	if err != nil {
		return nil, err
	}
	stanzas := make([]string, 0, len(base))
	for _, p := range base {
		stanzas = append(stanzas, recs[p.Name])
	}
	if err := a.setStatus(stanzas); err != nil {
		return nil, err
	}

	o.Status("resolving %s for %s on top of it", strings.Join(o.Wanted, " and "), o.Arch)
	out, err = a.run(ctx, tools.AptGet, append([]string{"install", "-s", "-q"}, o.Wanted...)...)
	if err != nil {
		return nil, err
	}
	plan, err := ParsePlan(out)
	if err != nil {
		return nil, err
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("apt planned nothing to install for %s: is the minbase system wrong?", strings.Join(o.Wanted, ", "))
	}
	recs, err = a.show(ctx, plan)
	if err != nil {
		return nil, err
	}
	o.Status("downloading %d packages for %s", len(plan), o.Arch)
	if _, err := a.run(ctx, tools.AptGet, append([]string{"install", "-y", "-q", "--download-only"}, o.Wanted...)...); err != nil {
		return nil, err
	}
	r := &Repo{Arch: o.Arch, Suite: Suite, Base: Base, Mirror: o.Mirror, Wanted: append([]string(nil), o.Wanted...),
		Stanzas: map[string]string{}, Path: a.path("archives")}
	for _, p := range plan {
		d, err := debFromStanza(recs[p.Name])
		if err != nil {
			return nil, err
		}
		// apt names the download NAME_VERSION_ARCH.deb with the epoch's
		// colon escaped; the bundle uses the pool's name.
		got := a.path("archives", p.Name+"_"+strings.ReplaceAll(p.Version, ":", "%3a")+"_"+d.Arch+".deb")
		if err := checkFile(got, d); err != nil {
			return nil, err
		}
		if err := os.Rename(got, a.path("archives", d.File)); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("kit cache: %w", err)
		}
		r.Debs = append(r.Debs, d)
		r.Stanzas[d.Name] = recs[p.Name]
	}
	return r, nil
}

// Cached is the last complete fetch for arch in cache, every file checked
// against its pin.
func Cached(cache, arch string) (*Repo, error) {
	dir := filepath.Join(cache, Release+"-"+arch)
	b, err := os.ReadFile(filepath.Join(dir, repoFile))
	if err != nil {
		return nil, err
	}
	var r Repo
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, repoFile), err)
	}
	r.Path = filepath.Join(dir, "archives")
	for _, d := range r.Debs {
		if err := checkFile(filepath.Join(r.Path, d.File), d); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// checkFile proves a downloaded package is the pinned one.
func checkFile(p string, d Deb) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("package %s %s: %w", d.Name, d.Version, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.SHA256 || n != d.Size {
		return fmt.Errorf("package %s is %d bytes with sha256 %s; the signed index says %d bytes, %s", p, n, got, d.Size, d.SHA256)
	}
	return nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// why is the line of apt's complaint that says what went wrong.
func why(err error) string {
	// host's errors keep stderr's last lines, joined with " | ".
	lines := strings.FieldsFunc(err.Error(), func(r rune) bool { return r == '\n' || r == '|' })
	for _, l := range lines {
		if strings.Contains(l, "Failed to fetch") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}
