package host

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// sshAuth holds the keys a dial offers, and why other keys were left out, so
// that "unable to authenticate" can say which keys never got a chance.
type sshAuth struct {
	signers []ssh.Signer
	skipped []string
	agent   net.Conn
}

// loadAuth reads the identity files, then asks the agent. Files come first:
// servers cut off after a few tries (MaxAuthTries), and the configured key is
// the one meant for this host.
func loadAuth(files []string) (*sshAuth, error) {
	a := &sshAuth{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			a.skipped = append(a.skipped, err.Error())
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			a.skipped = append(a.skipped, f+" is encrypted (load it into ssh-agent)")
			continue
		case err != nil:
			a.skipped = append(a.skipped, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		a.signers = append(a.signers, s)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if err := a.addAgent(sock); err != nil {
			a.skipped = append(a.skipped, "ssh-agent: "+err.Error())
		}
	}
	if len(a.signers) == 0 {
		return nil, fmt.Errorf("no usable private key (%s)", a.why())
	}
	return a, nil
}

func (a *sshAuth) addAgent(sock string) error {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		return err
	}
	a.signers = append(a.signers, signers...)
	a.agent = conn // agent keys sign through it during the handshake
	return nil
}

func (a *sshAuth) methods() []ssh.AuthMethod {
	return []ssh.AuthMethod{ssh.PublicKeys(a.signers...)}
}

func (a *sshAuth) why() string {
	if len(a.skipped) == 0 {
		return "no identity file and no SSH_AUTH_SOCK"
	}
	return strings.Join(a.skipped, "; ")
}

// explain adds the skipped keys to an authentication failure.
func (a *sshAuth) explain(err error) error {
	if len(a.skipped) > 0 && strings.Contains(err.Error(), "unable to authenticate") {
		return fmt.Errorf("%w (keys not offered: %s)", err, a.why())
	}
	return err
}

func (a *sshAuth) close() {
	if a.agent != nil {
		a.agent.Close()
	}
}
