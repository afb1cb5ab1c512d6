package jobs

import (
	"context"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/host"
)

// rrsyncBusy is what rrsync answers while another session holds its lock
// on the mirror directory: on the offsite host that is the snapshot job,
// which takes the same lock for the seconds it needs to freeze and link.
const rrsyncBusy = "Another instance of rrsync is already accessing this directory"

// Tries of a push the offsite host's lock holds off.
const (
	pushLockTries       = 10
	DefaultPushLockWait = 15 * time.Second
)

// push runs an rsync to an offsite host, trying again while rrsync says a
// snapshot holds the mirror: that is a wait, not a failure.
func (e *Env) push(ctx context.Context, c host.Cmd) (host.Result, error) {
	wait := e.PushLockWait
	if wait <= 0 {
		wait = DefaultPushLockWait
	}
	for try := 1; ; try++ {
		res, err := e.run(ctx, c)
		if err == nil || try >= pushLockTries || !strings.Contains(string(res.Stderr), rrsyncBusy) {
			return res, err
		}
		e.logf("the offsite host is taking a snapshot of its mirror (rrsync is locked); trying again in %s", wait)
		select {
		case <-ctx.Done():
			return res, err
		case <-time.After(wait):
		}
	}
}
