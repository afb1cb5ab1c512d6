package config

import (
	"fmt"
)

// Validate checks everything decoding cannot: names, paths, references
// between hosts, what each role may carry. It reports every problem at
// once, as Problems placed in the file when c came from Parse.
func (c *Config) Validate() error {
	v := &validator{c: c, ix: c.src, seen: map[string]bool{}}
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
