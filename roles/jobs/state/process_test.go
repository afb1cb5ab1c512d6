package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The signal and lock tests need a process of their own to kill: the test
// binary re-executes itself with BORGKIT_STATE_HELPER naming a role.
const (
	helperEnv = "BORGKIT_STATE_HELPER"
	dirEnv    = "BORGKIT_STATE_DIR"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helper(mode, os.Getenv(dirEnv))
		return
	}
	os.Exit(m.Run())
}

func helper(mode, dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(99)
	}
	s := &Store{Dir: dir}
	// Appended, so a second call would show.
	s.Finished = func(rec Record) {
		f, err := os.OpenFile(filepath.Join(dir, "finished"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%s %d %q\n", rec.Status, rec.ExitCode, rec.Message)
			f.Close()
		}
	}
	switch mode {
	case "lock":
		if _, err := Lock(filepath.Join(dir, "borg.lock"), 0); err != nil {
			fail(err)
		}
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "kill":
		if _, err := s.Begin("nightly"); err != nil {
			fail(err)
		}
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "term", "hang", "slow-notify", "normal":
		SignalGrace = 300 * time.Millisecond
		run, err := s.Begin("nightly")
		if err != nil {
			fail(err)
		}
		ctx, stop := run.OnSignal(context.Background(), func(ctx context.Context, rec Record) {
			os.WriteFile(filepath.Join(dir, "notified"), []byte(fmt.Sprintf("%s %s %d", rec.Status, rec.Signal, rec.ExitCode)), 0o644)
			if mode == "slow-notify" {
				<-ctx.Done()
			}
		})
		defer stop()
		if mode == "normal" {
			stop()
			if err := run.Finish(OK, 0, "done", nil, nil); err != nil {
				fail(err)
			}
			if ctx.Err() == nil {
				fail(errors.New("stop left the job context alive"))
			}
			os.Exit(0)
		}
		fmt.Println("ready")
		if mode == "hang" {
			time.Sleep(time.Hour) // a job that ignores its context
		}
		<-ctx.Done()
		// The job unwinds as it would after its borg was killed.
		err = run.Finish(Failed, 1, "borg create: context canceled", nil, nil)
		os.WriteFile(filepath.Join(dir, "finish-err"), []byte(fmt.Sprint(err)), 0o644)
		stop()
		fail(errors.New("stop returned after a signal"))
	default:
		fail(fmt.Errorf("unknown mode %q", mode))
	}
}

// startHelper runs the helper and waits for it to say "ready".
func startHelper(t *testing.T, mode, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, dirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("helper said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("helper %s: %v", mode, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %s not ready after 10s", mode)
	}
	return cmd
}

// waitExit waits for the helper and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("helper still running after %s", within)
	}
	return 0
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSignalTerminates(t *testing.T) {
	tests := []struct {
		mode    string
		sig     syscall.Signal
		second  syscall.Signal // sent once the record is written
		within  time.Duration
		unwound bool // the job returned and saw ErrFinished
	}{
		{"term", syscall.SIGTERM, 0, 10 * time.Second, true},
		{"term", syscall.SIGINT, 0, 10 * time.Second, true},
		{"term", syscall.SIGHUP, 0, 10 * time.Second, true},
		{"hang", syscall.SIGTERM, 0, 10 * time.Second, false},                    // exits after SignalGrace
		{"slow-notify", syscall.SIGTERM, syscall.SIGTERM, 5 * time.Second, true}, // second signal cuts the alert short
	}
	names := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT", syscall.SIGHUP: "SIGHUP"}
	for _, tc := range tests {
		t.Run(tc.mode+"/"+names[tc.sig], func(t *testing.T) {
			dir := t.TempDir()
			cmd := startHelper(t, tc.mode, dir)
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if tc.second != 0 {
				waitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "notified")); return err == nil })
				cmd.Process.Signal(tc.second)
			}
			want := 128 + int(tc.sig)
			if code := waitExit(t, cmd, tc.within); code != want {
				t.Errorf("exit code %d, want %d", code, want)
			}
			rec, err := (&Store{Dir: dir}).Load("nightly")
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != Terminated || rec.Signal != names[tc.sig] || rec.ExitCode != want ||
				rec.Finished.IsZero() || rec.PID != cmd.Process.Pid || rec.Message != "killed by "+names[tc.sig] {
				t.Errorf("record = %+v", rec)
			}
			if got, want := readFile(t, filepath.Join(dir, "notified")), fmt.Sprintf("terminated %s %d", names[tc.sig], want); got != want {
				t.Errorf("notify saw %q, want %q", got, want)
			}
			// A second signal during the mail ends the process before
			// the Finished hook; its check then sees a start with no end.
			finished, _ := os.ReadFile(filepath.Join(dir, "finished"))
			heard := fmt.Sprintf("terminated %d \"killed by %s\"\n", want, names[tc.sig])
			if tc.second != 0 {
				heard = ""
			}
			if string(finished) != heard {
				t.Errorf("Store.Finished heard %q, want %q", finished, heard)
			}
			_, err = os.Stat(filepath.Join(dir, "finish-err"))
			if tc.unwound != (err == nil) {
				t.Errorf("job unwound = %v, want %v", err == nil, tc.unwound)
			}
			if tc.unwound {
				if got := readFile(t, filepath.Join(dir, "finish-err")); !strings.Contains(got, ErrFinished.Error()) {
					t.Errorf("the job's own Finish after the signal gave %q, want ErrFinished", got)
				}
			}
		})
	}
}

func TestSignalTrapDisarmed(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=normal", dirEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rec, err := (&Store{Dir: dir}).Load("nightly")
	if err != nil || rec.Status != OK || rec.Signal != "" {
		t.Errorf("record = %+v, %v", rec, err)
	}
	if got := readFile(t, filepath.Join(dir, "finished")); got != "ok 0 \"done\"\n" {
		t.Errorf("Store.Finished heard %q, want the ok record once", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met after 5s")
}

// TestKilledRunIsAbandoned: SIGKILL cannot be caught, so the record stays
// running; the dead pid is what gives it away, to the stale check and to
// the next run of the job.
func TestKilledRunIsAbandoned(t *testing.T) {
	dir := t.TempDir()
	cmd := startHelper(t, "kill", dir)
	s := &Store{Dir: dir}
	if _, err := s.Begin("nightly"); !errors.As(err, new(*RunningError)) {
		t.Fatalf("Begin while the helper runs = %v, want a RunningError", err)
	}
	if ab, _ := s.Abandoned(); len(ab) != 0 {
		t.Fatalf("live run reported abandoned: %+v", ab[0])
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Before Wait the child is a zombie: dead all the same.
	waitFor(t, func() bool {
		ab, _ := s.Abandoned()
		return len(ab) == 1 && ab[0].PID == cmd.Process.Pid
	})
	if code := waitExit(t, cmd, 5*time.Second); code != -1 {
		t.Errorf("exit code %d, want -1 (killed)", code)
	}
	rec, _ := s.Load("nightly")
	if rec.Status != Running {
		t.Errorf("record after SIGKILL = %+v, want still running", rec)
	}
	run, err := s.Begin("nightly")
	if err != nil {
		t.Fatal(err)
	}
	if run.Abandoned == nil || run.Abandoned.PID != cmd.Process.Pid || run.Abandoned.Status != Running {
		t.Errorf("Begin after the kill: Abandoned = %+v", run.Abandoned)
	}
	if err := run.Finish(OK, 0, "", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "borg.lock")
	cmd := startHelper(t, "lock", dir)
	start := time.Now()
	_, err := Lock(path, 300*time.Millisecond)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid || !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock while the helper holds it = %v", err)
	}
	if want := fmt.Sprintf("another borgkit job holds %s (pid %d)", path, cmd.Process.Pid); err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("waited %s for a 300ms wait", d)
	}
	// The kernel lets go when the holder dies, even by SIGKILL.
	cmd.Process.Kill()
	waitExit(t, cmd, 5*time.Second)
	l, err := Lock(path, 0)
	if err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	if got := holder(path); got != os.Getpid() {
		t.Errorf("lock file names pid %d, want ours %d", got, os.Getpid())
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if got := holder(path); got != 0 {
		t.Errorf("lock file still names pid %d after Unlock", got)
	}
	if err := l.Unlock(); err != nil {
		t.Errorf("second Unlock = %v", err)
	}
}

func TestLockTwoDescriptors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "borg.lock") // parent created on demand
	l1, err := Lock(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(path, 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock = %v, want ErrLocked", err)
	}

	// A waiter gets the lock when the holder lets go mid-wait.
	go func() {
		time.Sleep(150 * time.Millisecond)
		l1.Unlock()
	}()
	start := time.Now()
	l2, err := Lock(path, 5*time.Second)
	if err != nil {
		t.Fatalf("waiting Lock = %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("got the lock after %s, before it was released", d)
	}

	// A cancelled context ends the wait early.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = LockContext(ctx, path, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrLocked) {
		t.Errorf("LockContext = %v, want deadline and ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled wait took %s", d)
	}
	l2.Unlock()
}

func TestLockRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o600)
	path := filepath.Join(dir, "borg.lock")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if l, err := Lock(path, 0); err == nil {
		l.Unlock()
		t.Fatal("Lock followed a symlink")
	}
	if got := readFile(t, victim); got != "precious\n" {
		t.Errorf("victim now holds %q", got)
	}
}
