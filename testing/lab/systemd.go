package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The lab hosts run no systemd: PID 1 is the machine's, and each host's
// own /run hides any systemd the machine may have. provisioning an offsite
// host always installs and starts its unlock timer, so each host gets a
// systemctl stand-in at /usr/local/bin/systemctl (ahead of /usr/bin in a
// root PATH): the lab's own executable, which acts as the stand-in when
// called by that name (see init). It keeps enablement real, by running the
// real systemctl for is-enabled/enable/disable (those work offline on the
// unit files), and models the live state a booted systemd has: which units
// are active, and whether a unit file changed since the last daemon-reload.
const (
	StandInSystemctl = "/usr/local/bin/systemctl"
	realSystemctl    = "/usr/bin/systemctl"
	// SystemdStateDir holds the stand-in's state on each host: active/UNIT
	// files, the last daemon-reload's time, calls.log (one call a line).
	SystemdStateDir = "/run/borgkit-lab-systemd"
	unitDir         = "/etc/systemd/system"
)

func init() {
	// A re-exec helper: os.Args[0] is only "systemctl" when a lab host runs
	// the stand-in installed by installStandIns.
	if filepath.Base(os.Args[0]) == "systemctl" {
		os.Exit(systemctlStandIn(os.Args[1:]))
	}
}

// installStandIns copies this executable to each host as its systemctl.
func (l *Lab) installStandIns() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("systemctl stand-in: %w", err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return fmt.Errorf("systemctl stand-in: %w", err)
	}
	for _, h := range l.hosts {
		if err := l.WriteFile(h.Name, StandInSystemctl, b, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// SystemctlCalls returns the systemctl command lines run on a host so far.
func (l *Lab) SystemctlCalls(host string) []string {
	b, err := l.ReadFile(host, SystemdStateDir+"/calls.log")
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func systemctlStandIn(args []string) int {
	if err := os.MkdirAll(filepath.Join(SystemdStateDir, "active"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "systemctl (lab stand-in):", err)
		return 1
	}
	if f, err := os.OpenFile(filepath.Join(SystemdStateDir, "calls.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
		fmt.Fprintln(f, strings.Join(args, " "))
		f.Close()
	}
	var opts, words, props []string
	now, value := false, false
	for _, a := range args {
		switch {
		case a == "--now":
			now = true
		case a == "--value":
			value = true
		case strings.HasPrefix(a, "--property="):
			props = append(props, strings.Split(strings.TrimPrefix(a, "--property="), ",")...)
		case strings.HasPrefix(a, "-"):
			opts = append(opts, a)
		default:
			words = append(words, a)
		}
	}
	if len(words) == 0 {
		fmt.Fprintln(os.Stderr, "systemctl (lab stand-in): no verb")
		return 1
	}
	verb, units := words[0], words[1:]
	offline := false
	for _, o := range opts {
		offline = offline || strings.HasPrefix(o, "--root")
	}
	switch verb {
	case "is-enabled":
		return realCtl(opts, verb, units)
	case "enable", "disable", "reenable":
		code := realCtl(opts, verb, units)
		if code == 0 && now && !offline {
			setActive(units, verb != "disable")
		}
		return code
	case "daemon-reload":
		return touch(filepath.Join(SystemdStateDir, "reloaded"))
	case "start", "restart", "reload-or-restart", "try-restart":
		setActive(units, true)
	case "stop":
		setActive(units, false)
	case "is-active":
		code := 0
		for _, u := range units {
			state := "inactive"
			if _, err := os.Stat(filepath.Join(SystemdStateDir, "active", u)); err == nil {
				state = "active"
			} else {
				code = 3
			}
			fmt.Println(state)
		}
		return code
	case "show":
		for _, u := range units {
			for _, p := range props {
				v, ok := showProperty(u, p)
				if !ok {
					fmt.Fprintf(os.Stderr, "systemctl (lab stand-in): property %s is not modelled\n", p)
					return 1
				}
				if value {
					fmt.Println(v)
				} else {
					fmt.Printf("%s=%s\n", p, v)
				}
			}
		}
	default:
		fmt.Fprintf(os.Stderr, "systemctl (lab stand-in): %q is not modelled (the lab hosts run no systemd)\n", verb)
		return 1
	}
	return 0
}

func showProperty(unit, prop string) (string, bool) {
	switch prop {
	case "NeedDaemonReload":
		fi, err := os.Stat(filepath.Join(unitDir, unit))
		if err != nil {
			return "no", true
		}
		r, err := os.Stat(filepath.Join(SystemdStateDir, "reloaded"))
		if err != nil || fi.ModTime().After(r.ModTime()) {
			return "yes", true
		}
		return "no", true
	case "ActiveState":
		if _, err := os.Stat(filepath.Join(SystemdStateDir, "active", unit)); err == nil {
			return "active", true
		}
		return "inactive", true
	}
	return "", false
}

func realCtl(opts []string, verb string, units []string) int {
	c := exec.Command(realSystemctl, append(append(append([]string{}, opts...), verb), units...)...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "systemctl (lab stand-in):", err)
	return 1
}

func setActive(units []string, on bool) {
	for _, u := range units {
		p := filepath.Join(SystemdStateDir, "active", u)
		if on {
			touch(p)
		} else {
			os.Remove(p)
		}
	}
}

func touch(p string) int {
	now := time.Now()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "systemctl (lab stand-in):", err)
		return 1
	}
	if err := os.Chtimes(p, now, now); err != nil {
		fmt.Fprintln(os.Stderr, "systemctl (lab stand-in):", err)
		return 1
	}
	return 0
}
