package plan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// timeline is a host that records when each write starts and ends, and
// how many run at once; a write whose directory is not there yet is an
// order the engine must never allow (the write would make it 0755).
type timeline struct {
	host.Host
	mu      sync.Mutex
	running int
	most    int
	events  []string // "start PATH", "end PATH"
	orphans []string
}

func (tl *timeline) enter(ctx context.Context, p string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if _, err := tl.Host.Lstat(ctx, filepath.Dir(p)); err != nil {
		tl.orphans = append(tl.orphans, p)
	}
	tl.running++
	tl.most = max(tl.most, tl.running)
	tl.events = append(tl.events, "start "+p)
}

func (tl *timeline) leave(p string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.running--
	tl.events = append(tl.events, "end "+p)
}

func (tl *timeline) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, o host.Owner) error {
	tl.enter(ctx, p)
	defer tl.leave(p)
	time.Sleep(20 * time.Millisecond) // a round trip
	return tl.Host.WriteFile(ctx, p, data, mode, o)
}

func (tl *timeline) MkdirAll(ctx context.Context, p string, mode fs.FileMode, o host.Owner) error {
	if p != "/etc" { // the parent a first write makes, alone
		tl.enter(ctx, p)
		defer tl.leave(p)
	}
	time.Sleep(20 * time.Millisecond)
	return tl.Host.MkdirAll(ctx, p, mode, o)
}

// Directories and small files are applied beside each other, in plan
// order where one is on the other's path (a file after its directory),
// and a step that is not Beside (a block) waits for every step before it
// and holds back every step after it.
func TestApplyBeside(t *testing.T) {
	h, dir := rootedHost(t)
	if err := os.Mkdir(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	tl := &timeline{Host: h}
	file := func(p string) plan.Step {
		return &steps.File{Path: p, Content: []byte("x\n"), Mode: 0o644, Owner: host.Owner{UID: -1, GID: -1}}
	}
	s := []plan.Step{&steps.Dir{Path: "/etc/app", Mode: 0o750, Owner: host.Owner{UID: -1, GID: -1}},
		&steps.Dir{Path: "/etc/other", Mode: 0o700, Owner: host.Owner{UID: -1, GID: -1}}}
	for i := range 6 {
		s = append(s, file(fmt.Sprintf("/etc/app/f%d", i)))
	}
	s = append(s, &steps.Block{Path: "/etc/fstab", Lines: []byte("UUID=x /mnt ext4 nofail 0 2\n"), Mode: 0o644, Owner: host.Owner{UID: -1, GID: -1}},
		file("/etc/other/g"), file("/etc/app/g"))
	r, err := plan.Run(context.Background(), tl, s, plan.Options{})
	if err != nil || r.Create != len(s) {
		t.Fatalf("%v %+v", err, r)
	}
	if tl.most < 2 {
		t.Errorf("at most %d steps were applied at once; the directories and files should go beside each other", tl.most)
	}
	if len(tl.orphans) > 0 {
		t.Errorf("written before their directory was made: %v", tl.orphans)
	}
	at := func(ev string) int {
		i := slices.Index(tl.events, ev)
		if i < 0 {
			t.Fatalf("no %q in %v", ev, tl.events)
		}
		return i
	}
	block := at("start /etc/fstab")
	for _, p := range []string{"/etc/app", "/etc/other", "/etc/app/f0", "/etc/app/f5"} {
		if at("end "+p) > block {
			t.Errorf("the block started before %s ended: %v", p, tl.events)
		}
	}
	for _, p := range []string{"/etc/other/g", "/etc/app/g"} {
		if at("start "+p) < at("end /etc/fstab") {
			t.Errorf("%s started before the block ended: %v", p, tl.events)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc/app")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("/etc/app: %v %v, want mode 0750", fi.Mode(), err)
	}
}

// A step that fails beside others stops the plan: the steps in flight
// end, nothing after the next step that goes alone starts, and the error
// names the step.
func TestApplyBesideFailure(t *testing.T) {
	h, dir := rootedHost(t)
	if err := os.MkdirAll(filepath.Join(dir, "etc/app"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A directory where a file should be: its write fails at apply time.
	s := []plan.Step{
		&steps.File{Path: "/etc/app/a", Content: []byte("a\n"), Mode: 0o644, Owner: host.Owner{UID: -1, GID: -1}},
		&steps.File{Path: "/etc/app/bad", Content: []byte("b\n"), Mode: 0o644, Owner: host.Owner{UID: -1, GID: -1}},
		&steps.Block{Path: "/etc/fstab", Lines: []byte("UUID=x /mnt ext4 nofail 0 2\n"), Mode: 0o644, Owner: host.Owner{UID: -1, GID: -1}},
		&steps.File{Path: "/etc/app/after", Content: []byte("c\n"), Mode: 0o644, Owner: host.Owner{UID: -1, GID: -1}},
	}
	sabotage := &sabotaged{Host: h, path: "/etc/app/bad"}
	_, err := plan.Run(context.Background(), sabotage, s, plan.Options{})
	if !errors.Is(err, plan.ErrApply) || !strings.Contains(err.Error(), "file./etc/app/bad") {
		t.Fatalf("err %v, want ErrApply naming file./etc/app/bad", err)
	}
	for _, p := range []string{"etc/fstab", "etc/app/after"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s was written after a failed step: %v", p, err)
		}
	}
}

// sabotaged fails every write of path.
type sabotaged struct {
	host.Host
	path string
}

func (s *sabotaged) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, o host.Owner) error {
	if p == s.path {
		return errors.New("disk on fire")
	}
	return s.Host.WriteFile(ctx, p, data, mode, o)
}
