package jobs

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// vzdumpName is vzdump's file name: vzdump-KIND-VMID-YYYY_MM_DD-hh_mm_ss,
// then the archive's extensions. Logs and notes beside it do not match.
var vzdumpName = regexp.MustCompile(`^vzdump-(qemu|lxc)-([0-9]+)-([0-9]{4}_[0-9]{2}_[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2})\.(vma|tar|tgz)(\.(zst|gz|lzo))?$`)

// proxmoxReadTimeout bounds the directory listing: a CIFS share whose
// server went away can hang readdir for minutes.
const proxmoxReadTimeout = 30 * time.Second

// ScanVzdump finds the newest dump of every guest in dir. The time is the
// one vzdump wrote into the name, read in this host's zone. The listing and
// every stat run on a goroutine bounded by proxmoxReadTimeout: on a hung
// share the job reports and goes on, though that goroutine stays blocked
// until the kernel gives up.
func ScanVzdump(ctx context.Context, dir string) ([]state.Dump, error) {
	type result struct {
		dumps []state.Dump
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		d, err := scanVzdump(dir)
		ch <- result{d, err}
	}()
	ctx, cancel := context.WithTimeout(ctx, proxmoxReadTimeout)
	defer cancel()
	select {
	case r := <-ch:
		return r.dumps, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("list %s: no answer within %s (a share that went away?)", dir, proxmoxReadTimeout)
	}
}

func scanVzdump(dir string) ([]state.Dump, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	newest := map[int]state.Dump{}
	for _, e := range entries {
		m := vzdumpName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		id, err := strconv.Atoi(m[2])
		if err != nil {
			continue
		}
		at, err := time.ParseInLocation("2006_01_02-15_04_05", m[3], time.Local)
		if err != nil {
			continue
		}
		if d, ok := newest[id]; ok && !at.After(d.At) {
			continue
		}
		d := state.Dump{VMID: id, Kind: m[1], File: e.Name(), At: at}
		if fi, err := e.Info(); err == nil {
			d.Bytes = fi.Size()
		}
		newest[id] = d
	}
	out := make([]state.Dump, 0, len(newest))
	for _, d := range newest {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b state.Dump) int { return a.VMID - b.VMID })
	return out, nil
}

// proxmoxChecks scans the dump directory and turns it into the stale
// check's lines: one per watched guest, or one for a directory that cannot
// be read.
func (e *Env) proxmoxChecks(ctx context.Context, p *config.Proxmox, now time.Time) ([]alert.AgeCheck, *state.ProxmoxStats) {
	st := &state.ProxmoxStats{Dir: p.DumpDir, MaxAgeSeconds: int64(p.MaxAgeOrDefault().Seconds())}
	dumps, err := ScanVzdump(ctx, p.DumpDir)
	if err == nil && len(dumps) == 0 && len(p.Guests) == 0 {
		// Most often the share is not mounted and this is its mountpoint.
		err = fmt.Errorf("no vzdump archive in %s", p.DumpDir)
	}
	if err != nil {
		st.Error = err.Error()
		e.logf("proxmox dumps: %v", err)
		return []alert.AgeCheck{{Name: "Proxmox dumps", Noun: "Proxmox dumps", Err: err.Error(), Threshold: p.MaxAgeOrDefault(),
			Hint: "Check that the share holding " + p.DumpDir + " is mounted."}}, st
	}
	if len(p.Guests) > 0 {
		byID := map[int]state.Dump{}
		for _, d := range dumps {
			byID[d.VMID] = d
		}
		var watched []state.Dump
		for _, id := range p.Guests {
			d, ok := byID[id]
			if !ok {
				d = state.Dump{VMID: id}
			}
			watched = append(watched, d)
		}
		slices.SortFunc(watched, func(a, b state.Dump) int { return a.VMID - b.VMID })
		dumps = watched
	}
	st.Dumps = dumps
	var checks []alert.AgeCheck
	for _, d := range dumps {
		c := alert.AgeCheck{Name: fmt.Sprintf("Proxmox guest %d dump", d.VMID), Noun: fmt.Sprintf("backup of Proxmox guest %d", d.VMID), Threshold: p.MaxAgeOrDefault(),
			Hint: "Check the backup job on the Proxmox server and the dumps in " + p.DumpDir + "."}
		if d.At.IsZero() {
			c.Never = true
		} else {
			c.Age = now.Sub(d.At)
		}
		checks = append(checks, c)
	}
	return checks, st
}
