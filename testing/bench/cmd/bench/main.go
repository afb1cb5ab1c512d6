// Command bench is `make bench`: it drives the real bin/borgkit and its
// peers (raw borg, borgmatic, ansible-playbook, cryptsetup) on one seeded
// data set and prints the comparison table as Markdown.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/borgkit/borgkit/testing/bench"
)

func main() {
	o := bench.Options{Dataset: bench.DefaultDataset, Log: os.Stderr}
	var items, out, readme string
	var keep bool
	flag.StringVar(&o.Borgkit, "borgkit", "bin/borgkit", "the borgkit binary to measure")
	flag.StringVar(&o.Work, "work", "", "work directory, made by the bench (default: a new one under $TMPDIR)")
	flag.IntVar(&o.Runs, "runs", 5, "measured rounds after the warm-up (at least 5)")
	flag.IntVar(&o.Nights, "nights", 7, "nights of the simulated week")
	flag.StringVar(&items, "items", "", "only these items, comma-separated (1-11)")
	flag.StringVar(&out, "o", "", "also write the Markdown table to this file")
	flag.StringVar(&readme, "readme", "", "also put the table into this README between the bench markers")
	flag.BoolVar(&keep, "keep", false, "keep the work directory")
	flag.Parse()
	if items != "" {
		o.Items = strings.Split(items, ",")
	}
	if err := run(o, out, readme, keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o bench.Options, out, readme string, keep bool) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the bench runs cryptsetup, and provisions and backs up as root would")
	}
	if o.Work == "" {
		parent, err := os.MkdirTemp("", "borgkit-bench-")
		if err != nil {
			return err
		}
		o.Work = filepath.Join(parent, "w")
		if !keep {
			defer os.RemoveAll(parent)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	rep.Markdown(&b)
	os.Stdout.Write(b.Bytes())
	if out != "" {
		if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if readme != "" {
		return bench.UpdateReadme(readme, b.Bytes())
	}
	return nil
}
