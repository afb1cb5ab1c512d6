package state

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Timings of a caught signal. systemd sends SIGKILL 90s after SIGTERM by
// default; the record, the alert, the Finished hook (the jobs bound theirs
// to 30s) and the exit must all fit before that.
var (
	// SignalNotifyTimeout bounds the notify callback (the alert mail).
	SignalNotifyTimeout = 30 * time.Second
	// SignalGrace is how long the job gets to unwind after its context is
	// cancelled (its borg or rsync killed) before the process exits anyway.
	SignalGrace = 10 * time.Second
)

// caught are the signals a job turns into a "terminated" record. SIGKILL
// cannot be caught: that run is found later by its dead pid.
var caught = map[os.Signal]string{
	syscall.SIGTERM: "SIGTERM",
	syscall.SIGINT:  "SIGINT",
	syscall.SIGHUP:  "SIGHUP",
}

// OnSignal is the job's EXIT trap. When SIGTERM, SIGINT or SIGHUP arrives:
//
//  1. the run is finished as terminated, with the signal's name and exit
//     code 128+N (unless the job finished it first);
//  2. the returned context is cancelled, so the job's programs are killed;
//  3. notify (may be nil) is called with the record, under
//     SignalNotifyTimeout, to send TERMINATED ABNORMALLY;
//  4. the store's Finished hook, if set, reports the record (pings, the
//     Prometheus textfile; bounded by the hook itself);
//  5. the process exits 128+N once the job has returned and called stop, or
//     after SignalGrace, whichever is first. A second signal exits at once.
//
// The job must defer stop: without a signal it disarms the trap; after one
// it waits for steps 3 and 4 and exits, so it does not return. The job's own
// Finish after a signal gets ErrFinished, which it can ignore.
func (r *Run) OnSignal(ctx context.Context, notify func(ctx context.Context, rec Record)) (context.Context, func()) {
	jobCtx, cancel := context.WithCancel(ctx)
	ch := make(chan os.Signal, 2)
	sigs := make([]os.Signal, 0, len(caught))
	for s := range caught {
		sigs = append(sigs, s)
	}
	signal.Notify(ch, sigs...)

	var (
		mu       sync.Mutex
		disarmed bool
		code     int
		handled  = make(chan struct{}) // closed once the record and the alert are done
		returned = make(chan struct{}) // closed when the job calls stop
		once     sync.Once
	)
	go func() {
		var sig os.Signal
		select {
		case sig = <-ch:
		case <-returned:
			return
		}
		mu.Lock()
		if disarmed {
			mu.Unlock()
			return
		}
		code = 128 + int(sig.(syscall.Signal))
		mu.Unlock()

		go func() {
			<-ch
			os.Exit(code)
		}()
		// The record first, then the cancel: a job that sees its context
		// end would otherwise race to record "failed" for what was a kill.
		name := caught[sig]
		rec, written, err := r.write(Terminated, code, "killed by "+name, nil, nil, name)
		cancel()
		if err == nil && notify != nil {
			nctx, ncancel := context.WithTimeout(context.Background(), SignalNotifyTimeout)
			notify(nctx, r.Record())
			ncancel()
		}
		// After the cancel, so the job's programs stop while it reports.
		if written && r.store.Finished != nil {
			r.store.Finished(rec)
		}
		close(handled)
		select {
		case <-returned:
		case <-time.After(SignalGrace):
		}
		os.Exit(code)
	}()

	stop := func() {
		mu.Lock()
		caughtOne := code != 0
		if !caughtOne {
			disarmed = true
			signal.Stop(ch)
		}
		mu.Unlock()
		once.Do(func() { close(returned) })
		if !caughtOne {
			cancel()
			return
		}
		<-handled
		os.Exit(code)
	}
	return jobCtx, stop
}
