package state

import (
	"errors"
	"fmt"
	"time"
)

// VouchAge is how old a nightly may be and still vouch for a repo: a day
// and a half, so one missed night (the machine off) sends provision back
// to the server.
const VouchAge = 36 * time.Hour

// Vouch is whether a host's records show that its last nightly used the
// repo named by repo's record as the config now has it: the nightly
// succeeded, finished less than VouchAge before now, and wrote the repo's
// record while it ran, at path with encryption. nil when they do; else
// why not. provision trusts a repo on a borg server that far instead of
// asking the server again (borg on both ends, a key derivation) on every
// no-change run; the nightly itself finds out the same night when the
// repo has gone since.
func Vouch(nightly *Record, repo *RepoRecord, path, encryption string, now time.Time) error {
	switch {
	case nightly == nil || repo == nil:
		return errors.New("no record")
	case nightly.Job != "nightly":
		return fmt.Errorf("the record is job %q's, not the nightly's", nightly.Job)
	case !nightly.Status.Succeeded():
		return fmt.Errorf("the last nightly is %s", nightly.Status)
	case nightly.Finished.IsZero() || nightly.Finished.Before(nightly.Started):
		return errors.New("the last nightly has no finish time")
	case now.Sub(nightly.Finished) > VouchAge:
		return fmt.Errorf("the last nightly finished %s ago, more than %s", now.Sub(nightly.Finished).Round(time.Minute), VouchAge)
	case repo.Path != path:
		return fmt.Errorf("the record is of %s, the config has %s", repo.Path, path)
	case repo.Encryption != encryption:
		return fmt.Errorf("the record has encryption %q, the config %q", repo.Encryption, encryption)
	case repo.ID == "":
		return errors.New("the record has no repository id")
	case repo.Updated.Before(nightly.Started) || repo.Updated.After(nightly.Finished):
		return fmt.Errorf("the last nightly (%s to %s) did not write the record (%s)",
			nightly.Started.Format(time.RFC3339), nightly.Finished.Format(time.RFC3339), repo.Updated.Format(time.RFC3339))
	}
	return nil
}
