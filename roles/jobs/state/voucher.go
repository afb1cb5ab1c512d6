package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
)

// RepoVoucher is what provision's remote repo step asks (its
// steps.Voucher): the host's last nightly record and a remote repo's
// record, read over the host where the jobs keep them (layout.StateDir),
// judged by Vouch.
type RepoVoucher struct {
	nightly, repo    string // the records' paths
	path, encryption string // the repo as the config has it
	now              func() time.Time
}

// NewRepoVoucher is the RepoVoucher of repo name as the config has it.
func NewRepoVoucher(name, path, encryption string) (*RepoVoucher, error) {
	st := &Store{Dir: layout.StateDir}
	n, err := st.JobPath("nightly")
	if err != nil {
		return nil, err
	}
	r, err := st.RepoPath(name)
	if err != nil {
		return nil, err
	}
	return &RepoVoucher{nightly: n, repo: r, path: path, encryption: encryption, now: time.Now}, nil
}

func (v *RepoVoucher) Reads() []host.Want {
	return []host.Want{{Path: v.nightly, Content: true}, {Path: v.repo, Content: true}}
}

func (v *RepoVoucher) Vouch(ctx context.Context, h host.Host) (repoID, since string, err error) {
	var n Record
	var r RepoRecord
	for _, f := range []struct {
		path string
		v    any
	}{{v.nightly, &n}, {v.repo, &r}} {
		b, err := h.ReadFile(ctx, f.path)
		if err != nil {
			return "", "", err
		}
		if err := json.Unmarshal(b, f.v); err != nil {
			return "", "", fmt.Errorf("%s: %w", f.path, err)
		}
	}
	if err := Vouch(&n, &r, v.path, v.encryption, v.now()); err != nil {
		return "", "", err
	}
	return r.ID, "the nightly of " + n.Finished.Local().Format("2006-01-02 15:04") + " wrote to it", nil
}
