// Command build is `go build -v` with a progress line: the Makefile builds
// borgkit and the demo through it, so a first build on a cold Go cache
// (minutes on two cores) says what it compiles instead of sitting silent.
// It depends on the standard library and provision/progress only, so it
// compiles in seconds itself.
//
//	go build -o bin/.build ./testing/lab/cmd/build
//	bin/.build -trimpath -ldflags '-s -w' -o bin/borgkit ./cmd/borgkit
//
// Every argument goes to go build. Its exit status is go build's.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/progress"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, errw io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(errw, "build: usage: build [go build flags] PACKAGE...")
		return 2
	}
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	out, pkgs := target(args)
	deps := packagesOf(goBin, pkgs)
	p := progress.New(errw, progress.IsTerminal(errw))
	p.Status("building %s (go build: %d packages, each compiled once and then cached)", out, len(deps))
	start := time.Now()
	cmd := exec.Command(goBin, append([]string{"build", "-v"}, args...)...)
	cmd.Stdout = os.Stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		fmt.Fprintln(errw, "build:", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(errw, "build:", err)
		return 1
	}
	// go build -v names each package as it compiles it; anything else it
	// says (an error) goes through as it is.
	passed := p.Writer(errw)
	compiled := 0
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if !deps[line] {
			fmt.Fprintln(passed, line)
			continue
		}
		compiled++
		p.Tick("building %s: %d of up to %d packages compiled (%s)", out, compiled, len(deps), line)
		if compiled%50 == 0 {
			p.Status("building %s: %d of up to %d packages compiled, %s so far", out, compiled, len(deps), time.Since(start).Round(time.Second))
		}
	}
	err = cmd.Wait()
	p.Done()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		fmt.Fprintf(errw, "build: go build failed (%s)\n", time.Since(start).Round(time.Second))
		return ee.ExitCode()
	case err != nil:
		fmt.Fprintln(errw, "build:", err)
		return 1
	case compiled == 0:
		fmt.Fprintf(errw, "built %s: up to date, nothing to compile (%s)\n", out, time.Since(start).Round(100*time.Millisecond))
	default:
		fmt.Fprintf(errw, "built %s: %d package(s) compiled in %s\n", out, compiled, time.Since(start).Round(time.Second))
	}
	return 0
}

// target reads go build's -o and package arguments.
func target(args []string) (out string, pkgs []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" && i+1 < len(args):
			out = args[i+1]
			i++
		case strings.HasPrefix(a, "-o="):
			out = strings.TrimPrefix(a, "-o=")
		case (a == "-ldflags" || a == "-gcflags" || a == "-tags" || a == "-mod") && i+1 < len(args):
			i++
		case strings.HasPrefix(a, "-"):
		default:
			pkgs = append(pkgs, a)
		}
	}
	if out == "" {
		out = strings.Join(pkgs, " ")
	}
	return out, pkgs
}

// packagesOf is every package the build may compile, from go list.
func packagesOf(goBin string, pkgs []string) map[string]bool {
	deps := map[string]bool{}
	b, err := exec.Command(goBin, append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		return deps // the build itself will say what is wrong
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		deps[l] = true
	}
	return deps
}
