package plan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/progress"
	"github.com/borgkit/borgkit/provision/steps"
)

// sample is a plan of n steps of the kinds a role uses: directories, whole
// files and a marked block.
func sample(n int) []plan.Step { return sampleUnder("", n) }

func sampleUnder(prefix string, n int) []plan.Step {
	s := []plan.Step{&steps.Dir{Path: prefix + "/etc/app", Mode: 0o755, Owner: host.Root}}
	for i := 1; len(s) < n-1; i++ {
		s = append(s, &steps.File{Path: fmt.Sprintf("%s/etc/app/f%02d", prefix, i),
			Content: []byte(fmt.Sprintf("# Managed by borgkit\nline %d\n", i)), Mode: 0o644, Owner: host.Root, Marker: "Managed by borgkit"})
	}
	return append(s, &steps.Block{Path: prefix + "/etc/fstab", Lines: []byte("UUID=x /mnt ext4 nofail 0 2\n"), Mode: 0o644, Owner: host.Root})
}

func rootedHost(t testing.TB) (host.Host, string) {
	dir := t.TempDir()
	h := host.NewRooted("t", dir)
	t.Cleanup(func() { h.Close() })
	return h, dir
}

func TestRunTwiceSecondRunChangesNothing(t *testing.T) {
	h, _ := rootedHost(t)
	var out bytes.Buffer
	r, err := plan.Run(context.Background(), h, sample(20), plan.Options{Printer: &plan.TextPrinter{W: &out}})
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, out.String())
	}
	if r.Create != 20 || r.Pending() != 20 {
		t.Fatalf("first run: %+v", r)
	}
	for _, want := range []string{"+ dir./etc/app", "+ block./etc/fstab", "+# BEGIN borgkit", "applied 20 changes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	r, err = plan.Run(context.Background(), h, sample(20), plan.Options{})
	if err != nil || r.Pending() != 0 || r.Unchanged != 20 {
		t.Fatalf("second run: %v %+v", err, r)
	}
}

func TestConflictAppliesNothing(t *testing.T) {
	h, dir := rootedHost(t)
	os.MkdirAll(filepath.Join(dir, "/etc/app"), 0o755)
	os.WriteFile(filepath.Join(dir, "/etc/app/f05"), []byte("the user's file\n"), 0o644)
	var out bytes.Buffer
	r, err := plan.Run(context.Background(), h, sample(10), plan.Options{Printer: &plan.TextPrinter{W: &out}})
	if !errors.Is(err, plan.ErrConflict) || r.Conflict != 1 {
		t.Fatalf("err %v, report %+v", err, r)
	}
	if !strings.Contains(out.String(), "! file./etc/app/f05") {
		t.Fatalf("conflict not shown:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "/etc/app/f01")); !os.IsNotExist(err) {
		t.Fatalf("a step was applied despite the conflict: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "/etc/app/f05")); string(b) != "the user's file\n" {
		t.Fatal("conflicting file changed")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	h, dir := rootedHost(t)
	r, err := plan.Run(context.Background(), h, sample(5), plan.Options{DryRun: true})
	if err != nil || r.Pending() != 5 {
		t.Fatalf("%v %+v", err, r)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("dry run wrote %v", entries)
	}
}

// liar claims success but never changes anything: the engine must catch it
// on the re-check and name it.
type liar struct{}

func (liar) ID() string { return "liar" }
func (liar) Check(context.Context, host.Host) (plan.Check, error) {
	return plan.Creates("make something"), nil
}
func (liar) Apply(context.Context, host.Host) error { return nil }

type broken struct{}

func (broken) ID() string { return "broken" }
func (broken) Check(context.Context, host.Host) (plan.Check, error) {
	return plan.Check{}, errors.New("cannot read")
}
func (broken) Apply(context.Context, host.Host) error { panic("never applied") }

func TestEngineErrors(t *testing.T) {
	h, dir := rootedHost(t)
	tests := []struct {
		name  string
		steps []plan.Step
		want  error
		text  string
	}{
		{"not settled", append(sample(3), liar{}), plan.ErrNotSettled, "liar"},
		{"check error applies nothing", append(sample(3), broken{}), plan.ErrCheck, ""},
		{"duplicate ids", []plan.Step{liar{}, liar{}}, nil, `two steps share the id "liar"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plan.Run(context.Background(), h, tt.steps, plan.Options{})
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("got %v, want %v containing %q", err, tt.want, tt.text)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "/etc/app/f01")); err != nil {
		t.Fatalf("the not-settled case should have applied its real steps: %v", err)
	}
}

func TestJSONPrinter(t *testing.T) {
	h, _ := rootedHost(t)
	var out bytes.Buffer
	if _, err := plan.Run(context.Background(), h, sample(4), plan.Options{DryRun: true, Printer: plan.JSONPrinter{W: &out}}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Host    string
		Pending int
		Steps   []struct {
			ID    string
			Check struct{ Action string }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got.Host != "t" || got.Pending != 4 || len(got.Steps) != 4 || got.Steps[0].Check.Action != "create" {
		t.Fatalf("%+v", got)
	}
}

// TestProgress: a terminal sees each step checked, applied and checked
// again on one redrawn line, cleared before the plan prints; a log gets
// one line per phase and no per-step lines.
func TestProgress(t *testing.T) {
	h, _ := rootedHost(t)
	var tty, out bytes.Buffer
	p := progress.New(&tty, true)
	if _, err := plan.Run(context.Background(), h, sample(3), plan.Options{Printer: &plan.TextPrinter{W: p.Writer(&out)}, Progress: p}); err != nil {
		t.Fatal(err)
	}
	want := "\r\033[Kt: checking 3 steps\r\033[Kt: checking 1/3 dir./etc/app\r\033[Kt: checking 2/3 file./etc/app/f01\r\033[Kt: checking 3/3 block./etc/fstab\r\033[K" +
		"\r\033[Kt: applying dir./etc/app\r\033[K\r\033[Kt: applying file./etc/app/f01\r\033[K\r\033[Kt: applying block./etc/fstab\r\033[K" +
		"\r\033[Kt: checking every step again\r\033[Kt: checking again 1/3 dir./etc/app\r\033[Kt: checking again 2/3 file./etc/app/f01\r\033[Kt: checking again 3/3 block./etc/fstab\r\033[K"
	if tty.String() != want {
		t.Errorf("terminal:\n%q\nwant\n%q", tty.String(), want)
	}
	if !strings.HasPrefix(out.String(), "  + dir./etc/app") || strings.Contains(out.String(), "\033") {
		t.Errorf("plan output:\n%q", out.String())
	}
	var log bytes.Buffer
	h2, _ := rootedHost(t)
	if _, err := plan.Run(context.Background(), h2, sample(3), plan.Options{Progress: progress.New(&log, false)}); err != nil {
		t.Fatal(err)
	}
	if log.String() != "t: checking 3 steps\nt: checking every step again\n" {
		t.Errorf("log:\n%q", log.String())
	}
}
