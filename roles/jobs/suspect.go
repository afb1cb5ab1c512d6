package jobs

import (
	"fmt"
	"slices"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// judgeArchive compares tonight's archive of repo with the median of the
// recent nights: far fewer files or bytes (a source gone or emptied,
// files deleted) or far more new data (every file rewritten: a mass
// encryption deduplicates against nothing). nil is a night like the others,
// or too few nights to tell.
func judgeArchive(repo string, recent []state.ArchiveFigures, now state.ArchiveFigures, p config.Suspicious) *alert.Suspect {
	if now.Archive == "" {
		return nil
	}
	if len(recent) > p.Nights {
		recent = recent[len(recent)-p.Nights:]
	}
	if len(recent) < p.MinNights {
		return nil
	}
	var files, bytes, fresh []float64
	for _, f := range recent {
		files = append(files, float64(f.Files))
		bytes = append(bytes, float64(f.OriginalBytes))
		fresh = append(fresh, float64(f.NewBytes))
	}
	s := &alert.Suspect{Repo: repo, Archive: now.Archive, Nights: len(recent),
		Files: now.Files, Bytes: now.OriginalBytes, New: now.NewBytes,
		MedianFiles: median(files), MedianBytes: median(bytes), MedianNew: median(fresh)}
	drop := float64(p.DropPercent) / 100
	if float64(now.Files) < drop*s.MedianFiles {
		s.Reasons = append(s.Reasons, fmt.Sprintf("%d files, under %d%% of the median of the last %d nights (%.0f)", now.Files, p.DropPercent, s.Nights, s.MedianFiles))
	}
	if float64(now.OriginalBytes) < drop*s.MedianBytes {
		s.Reasons = append(s.Reasons, fmt.Sprintf("%s, under %d%% of the median of the last %d nights (%s)",
			alert.Size(now.OriginalBytes), p.DropPercent, s.Nights, alert.Size(uint64(s.MedianBytes))))
	}
	if float64(now.NewBytes) > float64(p.NewFactor)*s.MedianNew && float64(now.NewBytes) > float64(p.NewPercent)/100*float64(now.OriginalBytes) {
		s.Reasons = append(s.Reasons, fmt.Sprintf("%s of new data, over %d times the median of the last %d nights (%s) and %d%% of the archive: most files changed at once (a mass encryption does this)",
			alert.Size(now.NewBytes), p.NewFactor, s.Nights, alert.Size(uint64(s.MedianNew)), p.NewPercent))
	}
	if len(s.Reasons) == 0 {
		return nil
	}
	return s
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
