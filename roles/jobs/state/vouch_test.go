package state

import (
	"strings"
	"testing"
	"time"
)

// TestVouch: only a nightly that succeeded lately, and wrote the repo's
// record as the config has it, vouches; each other case names its reason.
func TestVouch(t *testing.T) {
	start := time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)
	now := start.Add(10 * time.Hour)
	const url, enc = "ssh://borg@vault:22/./c1/repo", "repokey-blake2"
	good := func() (*Record, *RepoRecord) {
		return &Record{Job: "nightly", Status: OK, Started: start, Finished: start.Add(5 * time.Minute)},
			&RepoRecord{Name: "c1", Path: url, ID: strings.Repeat("ab", 32), Encryption: enc, Updated: start.Add(3 * time.Minute)}
	}
	for _, tc := range []struct {
		name   string
		change func(n *Record, r *RepoRecord) (*Record, *RepoRecord)
		path   string
		enc    string
		want   string // "" vouches
	}{
		{name: "vouches", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) { return n, r }},
		{name: "a warning is a success", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) { n.Status = Warning; return n, r }},
		{name: "no nightly record", change: func(_ *Record, r *RepoRecord) (*Record, *RepoRecord) { return nil, r }, want: "no record"},
		{name: "no repo record", change: func(n *Record, _ *RepoRecord) (*Record, *RepoRecord) { return n, nil }, want: "no record"},
		{name: "another job's record", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) { n.Job = "sync"; return n, r }, want: "not the nightly's"},
		{name: "the nightly failed", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) { n.Status = Failed; return n, r }, want: "is failed"},
		{name: "the nightly still runs", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) {
			n.Status, n.Finished = Running, time.Time{}
			return n, r
		}, want: "is running"},
		{name: "no finish time", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) { n.Finished = time.Time{}; return n, r }, want: "no finish time"},
		{name: "too old", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) {
			n.Started, n.Finished, r.Updated = n.Started.Add(-40*time.Hour), n.Finished.Add(-40*time.Hour), r.Updated.Add(-40*time.Hour)
			return n, r
		}, want: "more than 36h"},
		{name: "another path", path: "ssh://borg@vault:22/./c2/repo", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) { return n, r }, want: "the config has ssh://borg@vault:22/./c2/repo"},
		{name: "another encryption", enc: "keyfile-blake2", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) { return n, r }, want: `the config "keyfile-blake2"`},
		{name: "a record from before encryption was kept", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) { r.Encryption = ""; return n, r }, want: `has encryption ""`},
		{name: "no repo id", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) { r.ID = ""; return n, r }, want: "no repository id"},
		{name: "written before the nightly", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) {
			r.Updated = start.Add(-24 * time.Hour)
			return n, r
		}, want: "did not write the record"},
		{name: "written after the nightly", change: func(n *Record, r *RepoRecord) (*Record, *RepoRecord) {
			r.Updated = n.Finished.Add(time.Second)
			return n, r
		}, want: "did not write the record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, enc := url, enc
			if tc.path != "" {
				path = tc.path
			}
			if tc.enc != "" {
				enc = tc.enc
			}
			n, r := tc.change(good())
			err := Vouch(n, r, path, enc, now)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("does not vouch: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Vouch = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
