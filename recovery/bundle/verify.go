package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/builds"
	"github.com/borgkit/borgkit/provision/digest"
	"github.com/borgkit/borgkit/recovery/kit"
	"github.com/borgkit/borgkit/recovery/luks2"
)

// Status is how one verified item stands.
type Status string

const (
	StatusOK      Status = "OK"
	StatusFailed  Status = "FAILED"
	StatusSkipped Status = "SKIPPED"
)

// Kinds of verified items.
const (
	KindFile    = "file"
	KindLUKS    = "luks"
	KindBorgKey = "borg-key"
	KindZFSKey  = "zfs-key"
	KindRepo    = "repo"
	KindKit     = "kit"
)

// Item is one thing Verify proved or could not.
type Item struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Report is Verify's result, item by item.
type Report struct {
	Dir    string `json:"dir"`
	Site   string `json:"site,omitempty"`
	Server string `json:"server,omitempty"`
	// ManifestDigest is the SHA-256 of MANIFEST.sha256, to compare with
	// the one Write printed when the bundle was made.
	ManifestDigest string   `json:"manifest_sha256,omitempty"`
	Items          []Item   `json:"items"`
	Warnings       []string `json:"warnings,omitempty"`
}

func (r *Report) add(kind, name string, st Status, format string, args ...any) {
	r.Items = append(r.Items, Item{Kind: kind, Name: name, Status: st, Detail: fmt.Sprintf(format, args...)})
}

// Failed lists the items that failed.
func (r *Report) Failed() []Item {
	var out []Item
	for _, it := range r.Items {
		if it.Status == StatusFailed {
			out = append(out, it)
		}
	}
	return out
}

// OK reports whether nothing failed (skipped items do not count).
func (r *Report) OK() bool { return len(r.Failed()) == 0 }

// WriteText prints the report, one item a line, failures last so they
// stay on screen.
func (r *Report) WriteText(w io.Writer) {
	items := append([]Item(nil), r.Items...)
	sort.SliceStable(items, func(i, j int) bool { return rank(items[i].Status) < rank(items[j].Status) })
	for _, it := range items {
		fmt.Fprintf(w, "%-7s %-8s %s: %s\n", it.Status, it.Kind, it.Name, it.Detail)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if r.ManifestDigest != "" {
		fmt.Fprintf(w, "MANIFEST.sha256 digest: %s\n", r.ManifestDigest)
	}
}

func rank(s Status) int {
	switch s {
	case StatusOK:
		return 0
	case StatusSkipped:
		return 1
	}
	return 2
}

// ErrVerify is wrapped by Verify's error when any item failed.
var ErrVerify = errors.New("bundle verification failed")

func (r *Report) err() error {
	failed := r.Failed()
	if len(failed) == 0 {
		return nil
	}
	var parts []string
	for _, it := range failed {
		parts = append(parts, it.Name+": "+it.Detail)
	}
	return fmt.Errorf("%w: %d problem(s): %s", ErrVerify, len(failed), strings.Join(parts, "; "))
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// RepoRoots are directories holding copies of the repos by name (a NAS
	// mirror, a mounted offsite disk): ROOT/REPO. Each repo found in one is
	// opened with the bundle's key export and passphrase.
	RepoRoots []string
	// WorkDir is where borg's private state and the repo shadows go
	// ("" for the system's temporary directory).
	WorkDir string
	// Repos limits the repo copy checks to these names (default all).
	Repos []string
	// Log receives the borg command lines run.
	Log io.Writer
	// KitDir is the stick's kit partition, mounted, for a bundle whose kit
	// is apart (Manifest.KitApart): its files are checked against the pins
	// in bundle.json. Without it they are skipped.
	KitDir string
}

// checkKey is luks2.CheckKey; a variable so tests can count or fake it.
var checkKey = luks2.CheckKey

// Verify checks the bundle in dir without root and without the server:
// every file against MANIFEST.sha256 and bundle.json, each LUKS keyfile
// against its header backup (and the header's UUID against the one
// recorded), each borg key export against its passphrase, and — for the
// repos with a copy under opts.RepoRoots — that export and passphrase
// really open the copy. The error wraps ErrVerify and names every failed
// item; the report is returned either way.
func Verify(ctx context.Context, dir string, opts VerifyOptions) (*Report, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("verify bundle: %w", err)
	}
	r := &Report{Dir: abs}
	m := verifyFiles(r, abs)
	if m == nil {
		return r, r.err()
	}
	r.Site, r.Server = m.Site, m.Server
	verifyLUKS(r, m)
	verifyBorgKeys(r, m)
	verifyZFSKeys(r, m)
	kitRoot := m.Dir
	if m.KitApart() {
		kitRoot = opts.KitDir
		verifyKitPartition(r, m, kitRoot)
	}
	if kitRoot != "" {
		verifyKit(r, m, kitRoot)
	}
	if len(opts.RepoRoots) > 0 {
		rr, _ := VerifyRepoCopies(ctx, m, opts)
		r.Items = append(r.Items, rr.Items...)
		r.Warnings = append(r.Warnings, rr.Warnings...)
	}
	return r, r.err()
}

// verifyFiles checks every file's checksum. MANIFEST.sha256 and
// bundle.json both record them, so a damaged line in the manifest is told
// from a damaged file: the file that disagrees with both is named.
func verifyFiles(r *Report, dir string) *Manifest {
	manBytes, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		r.add(KindFile, ManifestName, StatusFailed, "cannot be read: %v", readHint(err))
	} else {
		r.ManifestDigest = sumHex(manBytes)
	}
	entries, problems := parseManifest(manBytes)
	for _, p := range problems {
		r.add(KindFile, ManifestName, StatusFailed, "%s", p)
	}
	m, openErr := Open(dir)
	listed := map[string]bool{}
	for _, e := range entries {
		if listed[e.Name] {
			r.add(KindFile, ManifestName, StatusFailed, "line %d lists %s a second time", e.Line, e.Name)
			continue
		}
		listed[e.Name] = true
		got, _, err := digest.File(filepath.Join(dir, filepath.FromSlash(e.Name)))
		var rec *File
		if m != nil {
			rec, _ = m.File(e.Name)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist) && rec == nil && m != nil && e.Name != IndexName:
			r.add(KindFile, e.Name, StatusFailed, "listed on %s line %d but neither present nor in %s (is that line damaged?)", ManifestName, e.Line, IndexName)
		case err != nil:
			r.add(KindFile, e.Name, StatusFailed, "missing or unreadable: %v", readHint(err))
		case got == e.Sum && (rec == nil || rec.SHA256 == got):
			if rec == nil && e.Name != IndexName && m != nil {
				r.add(KindFile, e.Name, StatusFailed, "in %s but not in %s", ManifestName, IndexName)
				continue
			}
			r.add(KindFile, e.Name, StatusOK, "sha256 %s", got[:16])
		case got == e.Sum:
			r.add(KindFile, IndexName, StatusFailed, "records another checksum for %s than %s and the file agree on: %s is damaged", e.Name, ManifestName, IndexName)
		case rec != nil && rec.SHA256 == got:
			r.add(KindFile, ManifestName, StatusFailed, "line %d (for %s) is damaged: the file matches %s but not this line", e.Line, e.Name, IndexName)
		case e.Name == IndexName:
			r.add(KindFile, IndexName, StatusFailed, "checksum mismatch: %s or its line %d in %s is damaged", IndexName, e.Line, ManifestName)
		default:
			r.add(KindFile, e.Name, StatusFailed, "checksum mismatch: the file is damaged (sha256 %s, expected %s)", got[:16], e.Sum[:16])
		}
	}
	if manBytes != nil && !listed[IndexName] {
		r.add(KindFile, ManifestName, StatusFailed, "has no line for %s", IndexName)
	}
	if openErr != nil {
		r.add(KindFile, IndexName, StatusFailed, "%v", readHint(openErr))
		return nil
	}
	for _, f := range m.Files {
		if m.KitApart() && KitRole(f.Role) {
			continue // on the kit partition: verifyKitPartition
		}
		if manBytes != nil && !listed[f.Path] {
			r.add(KindFile, f.Path, StatusFailed, "listed in %s but %s has no line for it (is %s damaged?)", IndexName, ManifestName, ManifestName)
		}
		if manBytes == nil {
			got, _, err := digest.File(filepath.Join(dir, filepath.FromSlash(f.Path)))
			switch {
			case err != nil:
				r.add(KindFile, f.Path, StatusFailed, "missing or unreadable: %v", readHint(err))
			case got != f.SHA256:
				r.add(KindFile, f.Path, StatusFailed, "checksum mismatch against %s: the file is damaged", IndexName)
			default:
				r.add(KindFile, f.Path, StatusOK, "sha256 %s (from %s)", got[:16], IndexName)
			}
		}
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if d != nil && d.IsDir() && d.Name() == DrillLogDir {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel != ManifestName && !listed[rel] {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s is not part of the bundle (not in %s)", rel, ManifestName))
		}
		return nil
	})
	return m
}

// verifyKitPartition checks each kit file on the stick's kit partition
// (kitDir) against its pin in bundle.json: the partition is not encrypted,
// so its own KIT.sha256 proves only that nothing broke, not that nobody
// changed it. Without kitDir the files are skipped, and the report says
// how to check them.
func verifyKitPartition(r *Report, m *Manifest, kitDir string) {
	for _, f := range m.Files {
		if !KitRole(f.Role) {
			continue
		}
		if kitDir == "" {
			r.add(KindFile, f.Path, StatusSkipped, "on the %s partition: give --kit-dir (where it is mounted) to check it", m.Stick.KitLabel)
			continue
		}
		got, _, err := digest.File(filepath.Join(kitDir, filepath.FromSlash(f.Path)))
		switch {
		case err != nil:
			r.add(KindFile, f.Path, StatusFailed, "missing or unreadable on the kit partition: %v", readHint(err))
		case got != f.SHA256:
			r.add(KindFile, f.Path, StatusFailed, "checksum mismatch on the kit partition against the pin in %s: changed or damaged (sha256 %s, pinned %s)", IndexName, got[:16], f.SHA256[:16])
		default:
			r.add(KindFile, f.Path, StatusOK, "sha256 %s on the kit partition, as %s pins", got[:16], IndexName)
		}
	}
}

// readHint turns a permission error into advice: bundles are 0400, owned
// by whoever wrote them.
func readHint(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (bundle files are 0400: run as their owner, or write the bundle with an owner)", err)
	}
	return err
}

func verifyLUKS(r *Report, m *Manifest) {
	for _, d := range m.Disks {
		key, hdr := filepath.Join(m.Dir, d.Keyfile), filepath.Join(m.Dir, d.Header)
		res, err := checkKey(hdr, key)
		switch {
		case errors.Is(err, luks2.ErrNoKeyslot):
			r.add(KindLUKS, d.ID(), StatusFailed, "keyfile %s does not open header backup %s: %v", d.Keyfile, d.Header, err)
		case err != nil:
			r.add(KindLUKS, d.ID(), StatusFailed, "cannot check keyfile %s against header backup %s: %v", d.Keyfile, d.Header, err)
		case d.LUKSUUID != "" && !strings.EqualFold(res.UUID, d.LUKSUUID):
			r.add(KindLUKS, d.ID(), StatusFailed, "header backup %s is of LUKS UUID %s, but %s records %s for the disk", d.Header, res.UUID, IndexName, d.LUKSUUID)
		default:
			r.add(KindLUKS, d.ID(), StatusOK, "keyfile %s opens keyslot %d (%s) of header backup %s (%s copy), LUKS UUID %s, in %s",
				d.Keyfile, res.Slot, res.KDF, d.Header, res.HeaderCopy, res.UUID, res.Duration.Round(time.Millisecond))
		}
	}
}

// verifyZFSKeys checks each dataset key against its keyformat; only the
// pool itself can prove the key opens it (the drill on the archive host).
func verifyZFSKeys(r *Report, m *Manifest) {
	for _, d := range m.Datasets {
		id := d.Host + "/" + d.Name
		if d.Keyfile == "" {
			r.add(KindZFSKey, id, StatusSkipped, "the key is typed at a prompt: it is not in the bundle")
			continue
		}
		key, err := os.ReadFile(filepath.Join(m.Dir, d.Keyfile))
		if err != nil {
			r.add(KindZFSKey, id, StatusFailed, "key %s: %v", d.Keyfile, readHint(err))
			continue
		}
		err = checkZFSKey(d.KeyFormat, key)
		clear(key)
		if err != nil {
			r.add(KindZFSKey, id, StatusFailed, "key %s: %v", d.Keyfile, err)
			continue
		}
		r.add(KindZFSKey, id, StatusOK, "key %s is a well-formed %s key (zfs load-key on %s proves it opens the dataset)", d.Keyfile, d.KeyFormat, d.Host)
	}
}

// verifyKit checks the offline kit against its pins: each package's file
// is the one bundle.json pins (name, version, architecture, SHA-256), the
// apt index lists exactly the pinned packages with those checksums, the
// Release file the index, the wanted packages are there, and each borgkit
// build is an executable of its architecture.
func verifyKit(r *Report, m *Manifest, root string) {
	k := m.Kit
	if k == nil {
		return
	}
	for _, miss := range k.Missing {
		r.Warnings = append(r.Warnings, "no offline packages: "+miss)
	}
	for _, kr := range k.Debian {
		name := kit.Release + "-" + kr.Arch
		if kr.Stale != "" {
			r.Warnings = append(r.Warnings, "offline kit "+name+": "+kr.Stale)
		}
		if err := checkKitRepo(m, kr, root); err != nil {
			r.add(KindKit, name, StatusFailed, "%v", err)
			continue
		}
		r.add(KindKit, name, StatusOK, "%d packages pinned in %s and in its apt index (%s), fetched %s", len(kr.Debs), IndexName, strings.Join(kr.Wanted, ", "), kr.Fetched.UTC().Format("2006-01-02"))
	}
	for _, b := range k.Borgkit {
		f, ok := m.File(b.Path)
		switch {
		case !ok || f.Role != RoleKitBorgkit:
			r.add(KindKit, "borgkit-"+b.Arch, StatusFailed, "%s is not a file of the bundle", b.Path)
		default:
			if err := builds.Check(filepath.Join(root, b.Path), b.Arch); err != nil {
				r.add(KindKit, "borgkit-"+b.Arch, StatusFailed, "%s is not an executable for %s: %v", b.Path, b.Arch, err)
				continue
			}
			r.add(KindKit, "borgkit-"+b.Arch, StatusOK, "%s is an executable for %s", b.Path, b.Arch)
		}
	}
}

func checkKitRepo(m *Manifest, kr KitRepo, root string) error {
	pins := map[string]kit.Deb{}
	for _, d := range kr.Debs {
		f, ok := m.File(kr.Dir + "/" + d.File)
		if !ok || f.Role != RoleKitDeb {
			return fmt.Errorf("package %s %s: %s/%s is not a file of the bundle", d.Name, d.Version, kr.Dir, d.File)
		}
		if f.SHA256 != d.SHA256 || f.Size != d.Size {
			return fmt.Errorf("package %s %s: %s is not the pinned file (sha256 %s, pinned %s)", d.Name, d.Version, f.Path, f.SHA256, d.SHA256)
		}
		pins[d.Name] = d
	}
	for _, w := range kr.Wanted {
		if _, ok := pins[w]; !ok {
			return fmt.Errorf("%s is not among the pinned packages", w)
		}
	}
	index, err := os.ReadFile(filepath.Join(root, kr.Dir, "Packages"))
	if err != nil {
		return fmt.Errorf("apt index: %w", readHint(err))
	}
	seen := map[string]bool{}
	var bad error
	err = kit.Stanzas(bytes.NewReader(index), func(st string) bool {
		f := kit.ParseStanza(st)
		d, ok := pins[f["Package"]]
		switch {
		case !ok:
			bad = fmt.Errorf("the apt index lists %s, which %s does not pin", f["Package"], IndexName)
		case f["Version"] != d.Version || f["Architecture"] != d.Arch || f["SHA256"] != d.SHA256 || f["Size"] != strconv.FormatInt(d.Size, 10) || f["Filename"] != "./"+d.File:
			bad = fmt.Errorf("the apt index's %s (%s %s, sha256 %s, %s) is not the pinned %s %s", d.Name, f["Version"], f["Architecture"], f["SHA256"], f["Filename"], d.Version, d.Arch)
		}
		seen[f["Package"]] = true
		return bad == nil
	})
	if bad != nil {
		return bad
	}
	if err != nil {
		return fmt.Errorf("apt index: %w", err)
	}
	for name := range pins {
		if !seen[name] {
			return fmt.Errorf("the apt index does not list the pinned %s", name)
		}
	}
	rel, err := os.ReadFile(filepath.Join(root, kr.Dir, "Release"))
	if err != nil {
		return fmt.Errorf("apt Release: %w", readHint(err))
	}
	if want := fmt.Sprintf(" %s %d Packages\n", sumHex(index), len(index)); !bytes.Contains(rel, []byte(want)) {
		return errors.New("the apt Release file does not name this index's checksum")
	}
	return nil
}

func verifyBorgKeys(r *Report, m *Manifest) {
	for _, repo := range m.Repos {
		if repo.KeyExport == "" || repo.Passphrase == "" {
			continue
		}
		id := repo.Host + "/" + repo.Name
		export, err := os.ReadFile(filepath.Join(m.Dir, repo.KeyExport))
		if err != nil {
			r.add(KindBorgKey, id, StatusFailed, "key export: %v", readHint(err))
			continue
		}
		pass, err := os.ReadFile(filepath.Join(m.Dir, repo.Passphrase))
		if err != nil {
			r.add(KindBorgKey, id, StatusFailed, "passphrase: %v", readHint(err))
			continue
		}
		info, err := CheckBorgKey(export, pass)
		clear(pass)
		switch {
		case errors.Is(err, ErrKeyUnsupported):
			r.add(KindBorgKey, id, StatusSkipped, "%v: only a repo copy can prove it", err)
		case err != nil:
			r.add(KindBorgKey, id, StatusFailed, "%s with %s: %v", repo.KeyExport, repo.Passphrase, err)
		default:
			r.add(KindBorgKey, id, StatusOK, "passphrase %s opens key export %s (repository id %s…)", repo.Passphrase, repo.KeyExport, info.RepoID[:16])
		}
	}
}

// FindCopy looks for a copy of the named repo under roots (ROOT/NAME).
func FindCopy(roots []string, name string) (string, bool) {
	for _, root := range roots {
		p := filepath.Join(root, name)
		if borg.IsLocalRepo(p) {
			return p, true
		}
	}
	return "", false
}

// VerifyRepoCopies proves, for each repo of the bundle with a copy under
// opts.RepoRoots, that the bundle opens it: the key export is imported into
// a shadow of the copy (see Borg) and borg lists the archives reading the
// passphrase from the bundle's file. The copies are never written to. The
// drill calls it once the offsite disk is mounted.
func VerifyRepoCopies(ctx context.Context, m *Manifest, opts VerifyOptions) (*Report, error) {
	r := &Report{Dir: m.Dir, Site: m.Site, Server: m.Server}
	b, err := borg.NewWorkspace(opts.WorkDir)
	if err != nil {
		return r, err
	}
	defer b.Close()
	b.Log = opts.Log
	for _, repo := range m.Repos {
		if len(opts.Repos) > 0 && !slices.Contains(opts.Repos, repo.Name) {
			continue
		}
		id := repo.Host + "/" + repo.Name
		copyDir, ok := FindCopy(opts.RepoRoots, repo.Name)
		if !ok {
			r.add(KindRepo, id, StatusSkipped, "no copy under %s", strings.Join(opts.RepoRoots, ", "))
			continue
		}
		detail, err := openCopy(ctx, b, m, &repo, copyDir)
		if err != nil {
			r.add(KindRepo, id, StatusFailed, "%s: %v", copyDir, err)
			continue
		}
		r.add(KindRepo, id, StatusOK, "%s: %s", copyDir, detail)
	}
	return r, r.err()
}

func openCopy(ctx context.Context, b *borg.Workspace, m *Manifest, repo *Repo, copyDir string) (string, error) {
	shadow, err := b.Shadow(copyDir)
	if err != nil {
		return "", err
	}
	pass := ""
	what := "readable without a key"
	if repo.Encrypted() {
		if repo.KeyExport == "" || repo.Passphrase == "" {
			return "", fmt.Errorf("the bundle has no key export or passphrase for this %s repo", repo.Encryption)
		}
		if err := b.ImportKey(ctx, shadow, filepath.Join(m.Dir, repo.KeyExport)); err != nil {
			return "", err
		}
		pass = filepath.Join(m.Dir, repo.Passphrase)
		what = "key export " + repo.KeyExport + " and passphrase " + repo.Passphrase + " open it"
	}
	out, err := b.Run(ctx, pass, "list", "--bypass-lock", "--short", shadow)
	if err != nil {
		return "", err
	}
	names := strings.Fields(string(out))
	if len(names) == 0 {
		return what + "; it holds no archive", nil
	}
	return fmt.Sprintf("%s; %d archives, latest %s", what, len(names), names[len(names)-1]), nil
}
