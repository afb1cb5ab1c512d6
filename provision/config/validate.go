package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Validate checks everything decoding cannot: names, paths, references
// between hosts, what each role may carry. It reports every problem at
// once, as Problems placed in the file when c came from Parse.
func (c *Config) Validate() error {
	v := &validator{c: c, ix: c.src, seen: map[string]bool{}, hosts: map[string]*Host{}, paths: map[*Host]*hostPaths{}}
	for i := range c.Hosts {
		if _, dup := v.hosts[c.Hosts[i].Name]; !dup {
			v.hosts[c.Hosts[i].Name] = &c.Hosts[i]
		}
	}
	v.config()
	if len(v.probs) == 0 {
		return nil
	}
	v.probs.sort()
	return v.probs
}

type validator struct {
	c     *Config
	ix    *srcIndex
	probs Problems
	seen  map[string]bool
	// hosts finds a host by name as Config.Host does (the first of a
	// name), without a scan per reference.
	hosts    map[string]*Host
	hostList string
	paths    map[*Host]*hostPaths
}

// hostPaths indexes one host's paths for the checks between its entries;
// only paths that are absolute and clean go in, the rest are problems of
// their own.
type hostPaths struct {
	repos  pathTree // repo paths, by index in Repos
	disks  pathTree // disk mountpoints, by index in Disks
	mounts pathTree // disk, then share mountpoints: index len(Disks)+i is share i
}

func (v *validator) pathsOf(h *Host) *hostPaths {
	if hp := v.paths[h]; hp != nil {
		return hp
	}
	hp := &hostPaths{}
	for i, r := range h.Repos {
		if cleanAbs(r.Path) {
			hp.repos.add(r.Path, i)
		}
	}
	for i, d := range h.Disks {
		if cleanAbs(d.Mountpoint) {
			hp.disks.add(d.Mountpoint, i)
			hp.mounts.add(d.Mountpoint, i)
		}
	}
	for i, s := range h.Shares {
		if cleanAbs(s.Mountpoint) {
			hp.mounts.add(s.Mountpoint, len(h.Disks)+i)
		}
	}
	v.paths[h] = hp
	return hp
}

func cleanAbs(p string) bool { return p != "" && filepath.IsAbs(p) && filepath.Clean(p) == p }

// some lists at most a few items, so a message stays one line however
// long the list in the file is.
func some(items []string) string {
	const most = 8
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:most], ", "), len(items)-most)
}

func (v *validator) add(path string, sentinel error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	key := path + "\x00" + msg
	if v.seen[key] {
		return
	}
	v.seen[key] = true
	p := v.ix.problemAt(v.ix.lookup(path), path, sentinel, msg)
	p.File = v.c.File
	v.probs = append(v.probs, p)
}

// addAt is add pointing off bytes into value, when the file writes the
// value plainly where path is (a quoted or folded value keeps the field's
// column: its bytes are not the value's).
func (v *validator) addAt(path, value string, off int, sentinel error, format string, args ...any) {
	n := len(v.probs)
	v.add(path, sentinel, format, args...)
	if len(v.probs) == n || off <= 0 || off > len(value) {
		return
	}
	p := v.probs[n]
	src := v.ix.source(p.Line)
	runes := []rune(src)
	if p.Col < 1 || p.Col-1 > len(runes) || !strings.HasPrefix(string(runes[p.Col-1:]), value) {
		return
	}
	p.Col += utf8.RuneCountInString(value[:off])
	if v.ix != nil {
		p.Source, p.srcCol = v.ix.window(p.Line, p.Col)
	}
}

// present tells an explicit zero from an omitted field, where the file is
// known: "port: 0" is a mistake, no port is the default.
func (v *validator) present(path string) bool { return v.ix.has(path) }

func (v *validator) config() {
	c := v.c
	if c.Version != Version {
		v.add("$.version", ErrVersion, "version %d is not supported: this borgkit reads version %d", c.Version, Version)
	}
	v.noCtl("$.site", "site", c.Site)
	v.alertsBlock("$.alerts", &c.Alerts)
	v.retentionBlock("$.retention", c.Retention)
	v.compaction("$.compaction", c.Compaction)
	if len(c.Hosts) == 0 {
		v.add("$.hosts", ErrRequired, "hosts is required: describe at least the server")
	}
	names := map[string]string{}
	for i := range c.Hosts {
		h := &c.Hosts[i]
		p := fmt.Sprintf("$.hosts[%d]", i)
		if v.name(p+".name", "host", h.Name) {
			v.unique(names, p+".name", "host name", h.Name)
		}
		v.host(p, h)
	}
}
