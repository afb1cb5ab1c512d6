package host

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

// OwnGroup makes cmd the leader of its own process group, killed whole
// when its context is cancelled (sh -c starting children, borg starting
// ssh) and by the kernel when borgkit itself dies, even by SIGKILL: a
// borg left running after its job would hold the repo's lock while the
// host's lock says it is free. The price of the group: the program is not
// in the terminal's foreground group, so it cannot prompt on /dev/tty —
// borgkit passes secrets through stdin or files anyway.
func OwnGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// Sent when the thread that started cmd ends: no goroutine of borgkit
	// ends locked to its thread (the one place that locks, the drill's
	// low-priority hasher, hands the thread back), so the runtime ends no
	// thread and that is when the process ends.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay
}

// Environ is this process's environment without the named variables.
func Environ(unset ...string) []string {
	env := os.Environ()
	if len(unset) == 0 {
		return env
	}
	return slices.DeleteFunc(env, func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(unset, name)
	})
}
