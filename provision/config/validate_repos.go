package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/borgkit/borgkit/provision/layout"
)

// Borg repos: paths, sources and excludes, encryption, compression.

func (v *validator) repos(p string, h *Host) {
	names, paths, servers := map[string]string{}, map[string]string{}, map[string]pinnedKey{}
	for j := range h.Repos {
		r := &h.Repos[j]
		rp := fmt.Sprintf("%s.repos[%d]", p, j)
		if v.name(rp+".name", "repo", r.Name) {
			v.unique(names, rp+".name", "repo name", r.Name)
		}
		loc, uerr := ParseRepoLocation(r.Path)
		switch {
		case uerr != nil:
			v.addAt(rp+".path", r.Path, uerr.Offset, ErrBadPath, "repo path %q: %s", r.Path, uerr.Msg)
		case loc.Remote():
			v.unique(paths, rp+".path", "repo path", loc.String())
			v.remoteRepo(rp, r, loc, servers)
		case r.HostKey != "":
			v.add(rp+".host_key", ErrBadValue, "host_key is for a repo on a borg server (path ssh://USER@HOST[:PORT]/PATH); %q is a local path", r.Path)
		}
		if uerr == nil && !loc.Remote() && v.path(rp+".path", "path", r.Path, true) {
			if r.Path == "/" {
				v.add(rp+".path", ErrBadPath, "repo path cannot be /")
			}
			if why := borgLocation(r.Path); why != "" {
				v.add(rp+".path", ErrBadPath, "repo path %q %s", r.Path, why)
			}
			v.unique(paths, rp+".path", "repo path", r.Path)
			v.repoNests(p, h, j)
			v.repoOnDisk(rp, h, r)
		}
		if len(r.Sources) == 0 && len(r.Guests()) == 0 {
			v.add(rp+".sources", ErrRequired, "sources is required: the paths borg create backs up (or vms/containers for a repo of guests only)")
		}
		for k, s := range r.Sources {
			v.path(fmt.Sprintf("%s.sources[%d]", rp, k), "source", s, true)
		}
		for k, e := range r.Excludes {
			ep := fmt.Sprintf("%s.excludes[%d]", rp, k)
			switch {
			case e == "":
				v.add(ep, ErrBadValue, "exclude is empty")
			case hasCtl(e):
				v.add(ep, ErrBadValue, "exclude %q contains a control character or line break", e)
			default:
				if why := excludePattern(e); why != "" {
					v.add(ep, ErrBadValue, "exclude %q %s", e, why)
				}
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
		if r.Compression != "" {
			if why := compression(r.Compression); why != "" {
				v.add(rp+".compression", ErrBadValue, "compression %q: %s (borg takes none, lz4, zstd[,1-22], zlib[,0-9], lzma[,0-9], auto,C[,L], obfuscate,SPEC,C[,L])", r.Compression, why)
			}
		}
		if v.path(rp+".passphrase_file", "passphrase_file", r.PassphraseFile, false) && !r.Encrypted() {
			v.add(rp+".passphrase_file", ErrBadValue, "passphrase_file is set but the repo is not encrypted (encryption: %s)", r.EncryptionMode())
		}
		v.duration(rp+".timeout", "timeout", r.Timeout)
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
// the archive, which grows without end. Only an exclude that certainly
// covers the repo waives it: a plain path, or a directory followed by /*
// or /**; a regex or a glob elsewhere is not taken on trust.
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
		d, below, ok := excludeCover(e)
		if !ok {
			continue
		}
		if n := ex.add(d, 0); below {
			n.below = true
		} else {
			n.all = true
		}
	}
	repos := &v.pathsOf(h).repos
	for k, s := range r.Sources {
		if !cleanAbs(s) || src.ancestor(s, false) >= 0 || src.find(s).member != k+1 {
			continue
		}
		if o := repos.uncovered(s, &ex); o >= 0 {
			v.add(fmt.Sprintf("%s.sources[%d]", rp, k), ErrBadPath,
				"source %q contains repo path %q and no exclude certainly covers it: borg would back the repository up into itself (add an exclude such as %q; a regex or a glob is not taken as covering it)",
				s, h.Repos[o].Path, h.Repos[o].Path)
		}
	}
}

// remoteRepo checks what a repo on a borg server needs besides its URL:
// the server's host key, pinned like every other SSH peer's.
// Two repos on one server (one known_hosts name) must pin one key: ssh
// would take either line, and a wrong one would be trusted.
func (v *validator) remoteRepo(rp string, r *Repo, loc RepoLocation, servers map[string]pinnedKey) {
	if r.HostKey == "" {
		v.add(rp+".host_key", ErrRequired, "host_key is required for a remote repo: the borg server's public host key (TYPE BASE64, from its /etc/ssh/ssh_host_ed25519_key.pub); borgkit pins it and never trusts a key on first use")
		return
	}
	if why := hostPublicKey(r.HostKey); why != "" {
		v.add(rp+".host_key", ErrBadValue, "host_key %s", why)
		return
	}
	f := strings.Fields(r.HostKey)
	key, name := f[0]+" "+f[1], loc.KnownHostsName()
	if first, ok := servers[name]; ok && first.key != key {
		v.add(rp+".host_key", ErrBadValue, "host_key differs from the one %s pins for the same server %s: one server has one host key", displayPath(first.at), name)
		return
	}
	servers[name] = pinnedKey{key: key, at: rp + ".host_key"}
}

type pinnedKey struct{ key, at string }
