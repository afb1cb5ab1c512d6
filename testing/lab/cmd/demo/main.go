// Command demo runs borgkit's two-host appliance for real in the namespace
// lab (testing/lab): it provisions john-ai and its offsite pi, runs the
// jobs, checks the mirrors, provisions again, and tears the lab down. It
// exits non-zero if any step failed.
//
//	go build -o /tmp/borgkit ./cmd/borgkit
//	go run ./testing/lab/cmd/demo --borgkit /tmp/borgkit
//
// It needs root, iproute2, util-linux, loop devices, OpenSSH's sshd, borg,
// rsync and msmtp.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/borgkit/borgkit/testing/lab"
)

func main() {
	os.Exit(run())
}

func run() (code int) {
	bin := flag.String("borgkit", "", "the borgkit `BINARY` to install on the lab hosts (required)")
	verbose := flag.Bool("v", false, "print every step's output")
	debug := flag.Bool("debug", false, "print every command the lab itself runs")
	keep := flag.Bool("keep", false, "leave the lab running until Ctrl-C, to look around with nsenter")
	cleanup := flag.Bool("cleanup", false, "remove what crashed lab runs left behind, and exit")
	flag.Parse()
	if *cleanup {
		if err := lab.Cleanup(lab.NSPrefix); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			return 1
		}
		return 0
	}
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "demo: --borgkit BINARY is required (go build -o /tmp/borgkit ./cmd/borgkit)")
		return 2
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	// Ctrl-C or SIGTERM cancels the running step; the deferred Close then
	// still tears the lab down.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	opts := lab.Options{}
	if *debug {
		opts.Log = os.Stderr
	}
	l, err := lab.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	code = 0
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: teardown:", err)
			code = 1
		}
	}()
	fmt.Printf("[%5.1fs] lab %s up: %s %s, %s %s, disks in %s\n", time.Since(start).Seconds(), l.ID,
		lab.Server, l.Addr(lab.Server), lab.Offsite, l.Addr(lab.Offsite), l.Dir)

	report, err := lab.RunScenario(ctx, l, lab.ScenarioOptions{Binary: abs, Out: os.Stdout, Verbose: *verbose,
		Start: start, InstallPackages: true, StrictOptional: true})
	if err != nil {
		fmt.Printf("[%5.1fs] FAILED:\n%v\n", time.Since(start).Seconds(), err)
		code = 1
	} else {
		fmt.Printf("[%5.1fs] all steps ok: %d mirrors byte-identical, no mail, %d pings all 0, second provisions changed nothing;\n"+
			"         %d pushes of the intruder on john-ai left snapshot %s unchanged, the drill restored from it, the next sync repaired the mirror\n",
			time.Since(start).Seconds(), len(report.Mirrors), len(report.Pings), len(report.Attacks), report.Snapshot.Name)
	}
	if *keep {
		for _, h := range l.Hosts() {
			fmt.Printf("  %s: nsenter --target %d --mount --uts --net -- bash\n", h.Name, l.AnchorPID(h.Name))
		}
		fmt.Println("lab kept; Ctrl-C tears it down")
		<-ctx.Done()
	}
	fmt.Printf("[%5.1fs] tearing down\n", time.Since(start).Seconds())
	return code
}
