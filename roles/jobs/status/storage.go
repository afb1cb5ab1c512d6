package status

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// StorageMounts lists the mountpoints Build shows for h, in order, so the
// caller knows which filesystems to statfs before calling it.
func StorageMounts(h *config.Host) []string {
	var out []string
	for _, s := range storageSpecs(h) {
		out = append(out, s.mount)
	}
	return out
}

type mountSpec struct{ label, kind, mount string }

// storageSpecs: the backup disk first (the one everything hangs on), then
// the other disks and shares in file order, then local mirror targets that
// live on none of those (they still fill some filesystem).
func storageSpecs(h *config.Host) []mountSpec {
	var out []mountSpec
	bd := h.BackupDisk()
	if bd != nil {
		label := "Backup Disk"
		if strings.Contains(strings.ToLower(bd.Name), "usb") {
			label = "USB Backup Disk"
		}
		out = append(out, mountSpec{label, KindBackup, bd.Mountpoint})
	}
	for i := range h.Disks {
		if d := &h.Disks[i]; d != bd {
			out = append(out, mountSpec{d.Name, KindDisk, d.Mountpoint})
		}
	}
	for _, s := range h.Shares {
		out = append(out, mountSpec{strings.ToUpper(s.Name), KindShare, s.Mountpoint})
	}
	for _, m := range h.Mirrors {
		if m.Host != "" || m.Path == "" {
			continue
		}
		covered := false
		for _, s := range out {
			if layout.Under(m.Path, s.mount) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, mountSpec{strings.ToUpper(m.Name) + " mirror", KindMirror, m.Path})
		}
	}
	return out
}

func (b *builder) storage() {
	warn := b.self.DiskWarnPercent()
	// What the jobs recorded, for mounts the caller did not measure.
	var recorded []state.DiskUsage
	var recordedAt []time.Time
	if r := b.rec(layout.JobNightly); r != nil && b.self.Role != config.RoleOffsite {
		var st state.NightlyStats
		if b.decodeStats(r, &st) && st.Disk.Mount != "" {
			recorded, recordedAt = append(recorded, st.Disk), append(recordedAt, ended(r))
		}
	}
	if r := b.rec(layout.JobWatchdog); r != nil && b.self.Role == config.RoleOffsite {
		var st state.WatchdogStats
		if b.decodeStats(r, &st) && st.Disk.Mount != "" {
			recorded, recordedAt = append(recorded, st.Disk), append(recordedAt, ended(r))
		}
	}

	for _, spec := range storageSpecs(b.self) {
		s := Storage{Label: spec.label, Kind: spec.kind, Source: SourceNone, WarnPercent: warn, Level: LevelUnknown}
		s.Mount = spec.mount
		if i := slices.IndexFunc(b.disks, func(u state.DiskUsage) bool { return path.Clean(u.Mount) == path.Clean(spec.mount) }); i >= 0 {
			s.DiskUsage, s.Source = b.disks[i], SourceLive
		} else if i := slices.IndexFunc(recorded, func(u state.DiskUsage) bool { return path.Clean(u.Mount) == path.Clean(spec.mount) }); i >= 0 {
			s.DiskUsage, s.Source = recorded[i], SourceRecorded
			s.RecordedAt = b.at(recordedAt[i])
			s.AgeSeconds = b.age(recordedAt[i])
		}
		s.Mount = spec.mount
		where := fmt.Sprintf("%s (%s)", s.Label, s.Mount)
		switch {
		case s.Source == SourceNone:
		case !s.Mounted:
			s.Level = LevelWarning
			if s.Kind == KindBackup {
				s.Level = LevelFailed
			}
			if s.Source == SourceLive {
				b.issue(s.Level, "", "%s is not mounted", where)
			} else {
				b.issue(s.Level, "", "%s was not mounted at the last run, %s ago", where, ago(s.AgeSeconds))
			}
		case s.Percent >= warn:
			s.Level = LevelWarning
			b.issue(LevelWarning, "", "%s is %d%% full (%s of %s used, warning at %d%%)",
				where, s.Percent, alert.Size(s.Used), alert.Size(s.Size), warn)
		default:
			s.Level = LevelOK
		}
		b.d.Storage = append(b.d.Storage, s)
	}
}
