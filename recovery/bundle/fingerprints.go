package bundle

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/recovery/fingerprint"
)

// secretKinds are the bundle roles whose change makes a bundle out of
// date, in the fingerprint record's words.
var secretKinds = map[string]string{
	RoleLUKSKeyfile: fingerprint.KindLUKSKeyfile,
	RoleLUKSHeader:  fingerprint.KindLUKSHeader,
	RoleBorgKey:     fingerprint.KindBorgKey,
	RolePassphrase:  fingerprint.KindPassphrase,
	RoleZFSKey:      fingerprint.KindZFSKey,
	RoleCredentials: fingerprint.KindCredentials,
}

// recordWriter is a Source that can also write: host.Host, live or rooted.
type recordWriter interface {
	WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner host.Owner) error
	MkdirAll(ctx context.Context, p string, mode fs.FileMode, owner host.Owner) error
}

// leaveFingerprints writes, on every host whose secrets the bundle packed,
// the record of their digests, so that host's dashboard and stale check
// see when one changes. The bundle itself is already written and proven:
// a host that cannot take its record is a warning, not a failed bundle.
func (c *collector) leaveFingerprints(now time.Time) []string {
	recs := map[string]*fingerprint.Record{}
	for _, rel := range c.order {
		p := c.files[rel]
		kind, ok := secretKinds[p.Role]
		if !ok || p.keptOn == "" {
			continue
		}
		r := recs[p.keptOn]
		if r == nil {
			var err error
			if r, err = fingerprint.New(p.keptOn, now, c.m.Digest); err != nil {
				return []string{err.Error()}
			}
			recs[p.keptOn] = r
		}
		r.Add(kind, p.For, p.Source, p.data)
	}
	hosts := make([]string, 0, len(recs))
	for h := range recs {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var warns []string
	for _, h := range hosts {
		if err := c.writeFingerprint(h, recs[h]); err != nil {
			warns = append(warns, fmt.Sprintf("%v: %s's dashboard cannot tell when this bundle goes out of date", err, h))
		}
	}
	return warns
}

func (c *collector) writeFingerprint(name string, r *fingerprint.Record) error {
	src, err := c.on(name)
	if err != nil {
		return err
	}
	w, ok := src.(recordWriter)
	if !ok {
		return fmt.Errorf("cannot write the bundle fingerprint on %s", name)
	}
	data, err := r.Encode()
	if err != nil {
		return err
	}
	if err := w.MkdirAll(c.ctx, path.Dir(fingerprint.File), 0o755, host.Root); err != nil {
		return fmt.Errorf("write the bundle fingerprint on %s: %w", name, err)
	}
	if err := w.WriteFile(c.ctx, fingerprint.File, data, 0o600, host.Root); err != nil {
		return fmt.Errorf("write the bundle fingerprint on %s: %w", name, err)
	}
	return nil
}
