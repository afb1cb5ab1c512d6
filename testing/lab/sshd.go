package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

func (l *Lab) startSSHDs(ctx context.Context) error {
	for _, h := range l.hosts {
		if err := l.StartSSHD(h.Name); err != nil {
			return err
		}
	}
	return nil
}

// StartSSHD starts the host's OpenSSH server (sshd -D, logging to a file in
// the lab directory) and waits for its banner on the host's address.
func (l *Lab) StartSSHD(host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sshd != nil {
		return fmt.Errorf("lab: %s: sshd is already running (pid %d)", host, h.sshd.Process.Pid)
	}
	log, err := os.OpenFile(h.sshdLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("lab: %s: sshd log: %w", host, err)
	}
	defer log.Close() // the child has its own copy
	c := command(context.Background(), hostEnv, append(h.nsenter(), sshdProg, "-D", "-e", "-f", "/etc/ssh/sshd_config")...)
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		return fmt.Errorf("lab: %s: start sshd: %w", host, err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	h.sshd, h.sshdDone = c, done
	if err := l.waitBanner(h, done, 10*time.Second); err != nil {
		h.stopSSHD()
		b, _ := os.ReadFile(h.sshdLog)
		return fmt.Errorf("lab: %s: sshd: %w\nsshd log:\n%s", host, err, b)
	}
	return nil
}

// StopSSHD kills the host's sshd listener and its connection processes
// (its process group), as a crashed or stopped sshd.
func (l *Lab) StopSSHD(host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sshd == nil {
		return fmt.Errorf("lab: %s: sshd is not running", host)
	}
	h.stopSSHD()
	return nil
}

func (h *Host) stopSSHD() {
	_ = syscall.Kill(-h.sshd.Process.Pid, syscall.SIGKILL)
	select {
	case <-h.sshdDone:
	case <-time.After(10 * time.Second):
	}
	h.sshd = nil
}

// SSHDLog returns what the host's sshd logged so far.
func (l *Lab) SSHDLog(host string) string {
	h := l.Host(host)
	if h == nil {
		return ""
	}
	b, _ := os.ReadFile(h.sshdLog)
	return string(b)
}

// waitBanner connects from inside the host's namespace until sshd answers.
func (l *Lab) waitBanner(h *Host, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	addr := net.JoinHostPort(h.Addr, "22")
	for {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited")
		default:
		}
		err := probeBanner(h.NetNS, addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SSH banner on %s after %v: %w", addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func probeBanner(netns, addr string) error {
	var conn net.Conn
	err := inNetNS(netns, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, time.Second)
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}
