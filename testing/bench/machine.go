package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Machine is what the table ran on: a shared, noisy machine makes
// absolute times move, so its load is part of the result.
type Machine struct {
	CPUs      int
	CPUModel  string
	MemGiB    float64
	OS        string
	Kernel    string
	LoadStart string // /proc/loadavg's 1, 5, 15 minute averages
	LoadEnd   string
	Tools     []string // "borg 1.2.4", ...
}

func (m Machine) String() string {
	s := fmt.Sprintf("%d vCPUs (%s), %.1f GiB RAM, %s, Linux %s; load average %s at the start, %s at the end",
		m.CPUs, m.CPUModel, m.MemGiB, m.OS, m.Kernel, m.LoadStart, m.LoadEnd)
	if len(m.Tools) > 0 {
		s += "; " + strings.Join(m.Tools, ", ")
	}
	return s + "."
}

// Load reads the load averages.
func Load() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// ThisMachine describes the machine and the versions of the peers.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), CPUModel: "unknown", OS: "unknown", Kernel: "unknown", LoadStart: Load()}
	if v := field("/proc/cpuinfo", "model name", ':'); v != "" {
		m.CPUModel = v
	}
	if v := field("/proc/meminfo", "MemTotal", ':'); v != "" {
		var kib float64
		fmt.Sscanf(v, "%f", &kib)
		m.MemGiB = kib / (1 << 20)
	}
	if v := field("/etc/os-release", "PRETTY_NAME", '='); v != "" {
		m.OS = strings.Trim(v, `"`)
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	for _, t := range [][]string{
		{"borg", "--version"}, {"borgmatic", "--version"}, {"ansible-playbook", "--version"},
		{"rsync", "--version"}, {"cryptsetup", "--version"},
	} {
		out, err := exec.Command(t[0], t[1:]...).Output()
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(string(out), "\n")
		m.Tools = append(m.Tools, toolVersion(t[0], line))
	}
	return m
}

// toolVersion turns a tool's first --version line into "NAME VERSION".
func toolVersion(name, line string) string {
	for _, f := range strings.Fields(line) {
		f = strings.Trim(f, "[]")
		if f != "" && f[0] >= '0' && f[0] <= '9' {
			return name + " " + f
		}
	}
	return strings.TrimSpace(line)
}

// field is the value of the first "key<sep>value" line of a file.
func field(path, key string, sep byte) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), string(sep))
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
