package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/borgkit/borgkit/provision/layout"
)

// Borg repos: paths, sources and excludes, encryption, compression.

var compLevels = map[string][2]int{"zstd": {1, 22}, "zlib": {0, 9}, "lzma": {0, 9}}

// excludePath is the subtree an exclude pattern covers, when it is a plain
// path (borg's default fm: style, or pp:/pf:); false for globs and regexes,
// whose reach is not worth guessing.
func excludePath(e string) (string, bool) {
	if len(e) > 3 && e[2] == ':' {
		switch e[:3] {
		case "fm:", "pp:", "pf:":
			e = e[3:]
		default:
			return "", false
		}
	}
	if !strings.HasPrefix(e, "/") || strings.ContainsAny(e, "*?[") {
		return "", false
	}
	return filepath.Clean(e), true
}

func validCompression(s string) bool {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return false
	}
	parts := strings.Split(s, ",")
	switch parts[0] {
	case "auto":
		return len(parts) > 1 && validCompression(strings.Join(parts[1:], ","))
	case "obfuscate":
		if len(parts) < 3 {
			return false
		}
		var n int
		if _, err := fmt.Sscanf(parts[1], "%d", &n); err != nil || n < 1 || n > 250 {
			return false
		}
		return validCompression(strings.Join(parts[2:], ","))
	case "none", "lz4":
		return len(parts) == 1
	case "zstd", "zlib", "lzma":
		if len(parts) == 1 {
			return true
		}
		if len(parts) != 2 || len(parts[1]) > 2 {
			return false
		}
		var n int
		if _, err := fmt.Sscanf(parts[1], "%d", &n); err != nil || fmt.Sprint(n) != parts[1] {
			return false
		}
		r := compLevels[parts[0]]
		return n >= r[0] && n <= r[1]
	}
	return false
}

func (v *validator) repos(p string, h *Host) {
	names, paths := map[string]string{}, map[string]string{}
	for j := range h.Repos {
		r := &h.Repos[j]
		rp := fmt.Sprintf("%s.repos[%d]", p, j)
		if v.name(rp+".name", "repo", r.Name) {
			v.unique(names, rp+".name", "repo name", r.Name)
		}
		if v.path(rp+".path", "path", r.Path, true) {
			if r.Path == "/" {
				v.add(rp+".path", ErrBadPath, "repo path cannot be /")
			}
			v.unique(paths, rp+".path", "repo path", r.Path)
			v.repoNests(p, h, j)
			v.repoOnDisk(rp, h, r)
		}
		if len(r.Sources) == 0 {
			v.add(rp+".sources", ErrRequired, "sources is required: the paths borg create backs up")
		}
		for k, s := range r.Sources {
			v.path(fmt.Sprintf("%s.sources[%d]", rp, k), "source", s, true)
		}
		for k, e := range r.Excludes {
			ep := fmt.Sprintf("%s.excludes[%d]", rp, k)
			switch {
			case e == "":
				v.add(ep, ErrBadValue, "exclude is empty")
			case strings.ContainsAny(e, "\n\r\x00"):
				v.add(ep, ErrBadValue, "exclude %q contains a line break or NUL", e)
			}
		}
		for k, m := range r.MustBeMountpoints {
			v.path(fmt.Sprintf("%s.must_be_mountpoints[%d]", rp, k), "must_be_mountpoint", m, true)
		}
		switch r.Encryption {
		case "", EncNone, EncRepokeyBlake2, EncKeyfileBlake2:
		default:
			v.add(rp+".encryption", ErrBadValue, "encryption %q: must be none, repokey-blake2 or keyfile-blake2", r.Encryption)
		}
		if r.Compression != "" && !validCompression(r.Compression) {
			v.add(rp+".compression", ErrBadValue, "compression %q is not a borg compression spec (none, lz4, zstd[,1-22], zlib[,0-9], lzma[,0-9], auto,SPEC)", r.Compression)
		}
		if v.path(rp+".passphrase_file", "passphrase_file", r.PassphraseFile, false) && !r.Encrypted() {
			v.add(rp+".passphrase_file", ErrBadValue, "passphrase_file is set but the repo is not encrypted (encryption: %s)", r.EncryptionMode())
		}
		v.duration(rp+".timeout", "timeout", r.Timeout)
		for k, vm := range r.VMs {
			if vm == "" || hasCtl(vm) || strings.Contains(vm, "/") {
				v.add(fmt.Sprintf("%s.vms[%d]", rp, k), ErrBadName, "VM name %q must be non-empty, without '/' or control characters", vm)
			}
		}
		v.zfsName(rp+".snapshot", "snapshot dataset", r.Snapshot, false)
		if v.path(rp+".canary", "canary", r.Canary, false) {
			if !slices.ContainsFunc(r.Sources, func(s string) bool { return layout.Under(r.Canary, s) }) {
				v.add(rp+".canary", ErrBadPath, "canary %q is under none of the repo's sources, so no archive would hold it", r.Canary)
			}
		}
		if r.Retention != nil {
			v.retentionBlock(rp+".retention", *r.Retention)
		}
		if v.c.RepoRetention(h, r).IsZero() {
			src := "$.retention"
			if r.Retention != nil {
				src = rp + ".retention"
			} else if h.Retention != nil {
				src = p + ".retention"
			}
			if v.ix != nil && !v.ix.has(src) {
				src = rp
			}
			v.add(src, ErrBadValue, "retention keeps nothing: with daily, weekly, monthly and yearly all 0, borg prune would delete every archive (the first seed keeps daily: 3, weekly: 2, monthly: 6)")
		}
		v.repoInSources(rp, h, r)
	}
}

// repoNests refuses a repo inside another one, reported at the later of
// the two and naming the deepest repo above it.
func (v *validator) repoNests(p string, h *Host, j int) {
	r := &h.Repos[j]
	k := v.pathsOf(h).repos.ancestor(r.Path, false)
	if k < 0 {
		return
	}
	at, o := j, &h.Repos[k]
	if k > j {
		at, r, o = k, o, r
	}
	v.add(fmt.Sprintf("%s.repos[%d].path", p, at), ErrBadPath, "repo path %q nests with %q of repo %q: borg repos cannot contain each other", r.Path, o.Path, o.Name)
}

// repoOnDisk insists a repo lives on one of the host's disks, when it
// declares any: a repo under a bare mountpoint fills the root filesystem
// the night the disk is missing.
func (v *validator) repoOnDisk(rp string, h *Host, r *Repo) {
	if len(h.Disks) == 0 {
		return
	}
	var mps []string
	for _, d := range h.Disks {
		if d.Mountpoint == "" {
			return
		}
		mps = append(mps, d.Mountpoint)
	}
	if v.pathsOf(h).disks.ancestor(r.Path, true) >= 0 {
		return
	}
	v.add(rp+".path", ErrBadPath, "repo path %q is on none of this host's disks (%s)", r.Path, some(mps))
}

// repoInSources refuses a source that would carry a repo of this host into
// the archive, which grows without end; an exclude covering it is enough.
// It asks the tree of repo paths once per source that no other source
// contains, walking only where the excludes are, so it stays linear in the
// file however many repos share one anchored list of sources.
func (v *validator) repoInSources(rp string, h *Host, r *Repo) {
	var src, ex pathTree
	for k, s := range r.Sources {
		if cleanAbs(s) {
			src.add(s, k)
		}
	}
	for _, e := range r.Excludes {
		d, ok := excludePath(e)
		if !ok {
			return
		}
		ex.add(d, 0).all = true
	}
	repos := &v.pathsOf(h).repos
	for k, s := range r.Sources {
		if !cleanAbs(s) || src.ancestor(s, false) >= 0 || src.find(s).member != k+1 {
			continue
		}
		if o := repos.uncovered(s, &ex); o >= 0 {
			v.add(fmt.Sprintf("%s.sources[%d]", rp, k), ErrBadPath,
				"source %q contains repo path %q and no exclude covers it: borg would back the repository up into itself (add an exclude such as %q)",
				s, h.Repos[o].Path, filepath.Dir(h.Repos[o].Path))
		}
	}
}
