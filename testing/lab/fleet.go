package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
)

// A fleet is issue 18's site past one house: one borg server (role
// borg-server) and many clients (role server, each with one repo on that
// server), every one an extra host of the lab (Options.Extra) with its own
// sshd. john-ai is the admin's machine: it holds the config and runs
// `borgkit provision --all` and `status --all` over SSH, and it is not in
// the config; it also relays the hosts' mail to the lab's listener.
// TestLabFleet and the bench's item 11 share this setup.
const (
	// FleetServer is the borg server; FleetRoot its borg_server.root, one
	// directory per client below it; FleetUser the user clients log in as.
	FleetServer = "vault"
	FleetRoot   = "/srv/borg"
	FleetUser   = config.DefaultBorgUser
	// FleetQuota is every client's quota but the last one's, which is
	// FleetSmallQuota (borg serve's least), for a night over it.
	FleetQuota      = "200M"
	FleetSmallQuota = "10M"
	// FleetSource is each client's one source directory.
	FleetSource = "/home"
)

// FleetClients are the names of n clients: client1 ... clientN.
func FleetClients(n int) []string {
	var c []string
	for i := 1; i <= n; i++ {
		c = append(c, fmt.Sprintf("client%d", i))
	}
	return c
}

// FleetOptions is o with the fleet's hosts (the borg server and n
// clients) as the lab's extra hosts.
func FleetOptions(o Options, n int) Options {
	o.Extra = append([]string{FleetServer}, FleetClients(n)...)
	return o
}

// Fleet is a lab set up for a fleet run: borgkit and the fleet's config on
// john-ai, its admin key authorized on every host, each client's repo
// identity made and listed in the config, a little data in each client's
// /home. Nothing is provisioned yet.
type Fleet struct {
	L       *Lab
	Clients []string
	// Config is the fleet's config as installed on john-ai.
	Config []byte
}

// Hosts are the fleet's hosts as the config lists them: the server, then
// the clients.
func (f *Fleet) Hosts() []string { return append([]string{FleetServer}, f.Clients...) }

// Quota is the client's quota on the server.
func (f *Fleet) Quota(client string) string {
	if client == f.Clients[len(f.Clients)-1] {
		return FleetSmallQuota
	}
	return FleetQuota
}

// RepoDir is the client's repository as the server sees it.
func (f *Fleet) RepoDir(client string) string { return path.Join(FleetRoot, client, "repo") }

// RepoURL is the client's repository as its config names it.
func (f *Fleet) RepoURL(client string) string {
	return fmt.Sprintf("ssh://%s@%s:22%s", FleetUser, f.L.Addr(FleetServer), f.RepoDir(client))
}

// SetupFleet prepares a lab started with FleetOptions for `borgkit
// provision --all` on john-ai (see Fleet). binary is the borgkit to
// install.
func SetupFleet(ctx context.Context, l *Lab, binary string) (*Fleet, error) {
	f := &Fleet{L: l}
	for _, h := range l.Hosts() {
		if strings.HasPrefix(h.Name, "client") {
			f.Clients = append(f.Clients, h.Name)
		}
	}
	if l.Host(FleetServer) == nil || len(f.Clients) == 0 {
		return nil, fmt.Errorf("fleet: the lab was not started with FleetOptions")
	}
	s := &scenario{l: l, o: ScenarioOptions{Out: io.Discard, Start: time.Now()}, r: &Report{}}
	if err := s.packages(ctx); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("fleet: borgkit binary: %w", err)
	}
	priv, pub, err := newKey("lab-admin@" + Server)
	if err != nil {
		return nil, err
	}
	// Each client's repo identity, made before the first run as an admin
	// does who wants one run to provision the server and its clients: the
	// server's authorized_keys needs the keys, and provisioning keeps a key
	// it finds (it makes one only where there is none).
	keys := map[string]string{}
	for _, c := range f.Clients {
		cpriv, cpub, err := newKey("borgkit-repo@" + c)
		if err != nil {
			return nil, err
		}
		keys[c] = strings.TrimSpace(string(cpub))
		if err := l.WriteFile(c, layout.RepoIdentity, cpriv, 0o600); err != nil {
			return nil, err
		}
		if err := l.WriteFile(c, layout.RepoIdentity+".pub", cpub, 0o644); err != nil {
			return nil, err
		}
		if err := os.Chmod(mustPath(l, c, layout.SSHDir), 0o700); err != nil {
			return nil, err
		}
		for i := range 5 {
			body := strings.Repeat(fmt.Sprintf("%s's document %d\n", c, i), 400)
			if err := l.WriteFile(c, fmt.Sprintf("%s/user/doc%d.txt", FleetSource, i), []byte(body), 0o644); err != nil {
				return nil, err
			}
		}
	}
	if f.Config, err = f.config(keys); err != nil {
		return nil, err
	}
	if err := l.WriteFile(Server, "/usr/local/bin/borgkit", bin, 0o755); err != nil {
		return nil, err
	}
	if err := l.WriteFile(Server, ConfigPath, f.Config, 0o640); err != nil {
		return nil, err
	}
	if err := l.WriteFile(Server, "/root/.ssh/id_ed25519", priv, 0o600); err != nil {
		return nil, err
	}
	for _, h := range f.Hosts() {
		if err := l.WriteFile(h, "/root/.ssh/authorized_keys", append([]byte(adminKeyNote), pub...), 0o600); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func mustPath(l *Lab, host, p string) string {
	real, err := l.Path(host, p)
	if err != nil {
		return "/nonexistent" + p // Chmod then fails with the path in its error
	}
	return real
}

var fleetTemplate = template.Must(template.New("fleet").Parse(`# borgkit lab fleet {{.ID}}: generated by testing/lab (fleet.go), validated with config.Parse.
version: 1
site: lab-fleet-{{.ID}}

alerts:
  to: ` + MailTo + `
  from: fleet@lab.example
  sendmail: [/usr/bin/msmtp, -C, /etc/msmtprc, --read-envelope-from, -t]

retention:
  daily: 3
  weekly: 2
  monthly: 6

hosts:
  - name: ` + FleetServer + `
    role: borg-server
    address: {{.ServerAddr}}
    ssh:
      host_key: {{.ServerFP}}
    borg_server:
      root: ` + FleetRoot + `
      clients:
{{- range .Clients}}
        - name: {{.Name}}
          public_key: {{.Key}}
          quota: {{.Quota}}
{{- end}}
{{range .Clients}}
  - name: {{.Name}}
    role: server
    address: {{.Addr}}
    ssh:
      host_key: {{.FP}}
    alerts:
      from: {{.Name}}@lab.example
    repos:
      - name: {{.Name}}
        path: {{.URL}}
        host_key: {{$.ServerKey}}
        sources: [` + FleetSource + `]
        encryption: repokey-blake2
{{end}}`))

// config is the fleet's config: the borg server with every client's key
// and quota, each client with its repo there; every host's SSH key
// pinned by fingerprint, so john-ai needs no known_hosts.
func (f *Fleet) config(keys map[string]string) ([]byte, error) {
	type client struct{ Name, Addr, FP, Key, Quota, URL string }
	srv := f.L.Host(FleetServer)
	data := struct {
		ID, ServerAddr, ServerFP, ServerKey string
		Clients                             []client
	}{ID: f.L.ID, ServerAddr: srv.Addr, ServerFP: srv.HostKeyFingerprint,
		ServerKey: strings.Join(strings.Fields(srv.HostPublicKey)[:2], " ")}
	for _, c := range f.Clients {
		h := f.L.Host(c)
		data.Clients = append(data.Clients, client{Name: c, Addr: h.Addr, FP: h.HostKeyFingerprint, Key: keys[c], Quota: f.Quota(c), URL: f.RepoURL(c)})
	}
	var b bytes.Buffer
	if err := fleetTemplate.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("fleet config: %w", err)
	}
	if _, err := config.Parse(ConfigPath, b.Bytes()); err != nil {
		return nil, fmt.Errorf("fleet config does not validate: %w\n%s", err, b.String())
	}
	return b.Bytes(), nil
}

// adminKeyNote heads the authorized_keys the lab writes for its admin key.
const adminKeyNote = "# the lab's admin key, not borgkit's\n"

// ProvisionAll runs `borgkit provision --all` on john-ai with args after it.
func (f *Fleet) ProvisionAll(ctx context.Context, args ...string) (stdout, stderr []byte, err error) {
	return f.L.RunContext(ctx, Server, append([]string{"borgkit", "provision", "--all"}, args...)...)
}

// Nightlies runs every client's `borgkit job nightly` at once; the error
// names the first client whose nightly failed, with its output.
func (f *Fleet) Nightlies(ctx context.Context) error {
	errs := make([]error, len(f.Clients))
	var wg sync.WaitGroup
	for i, c := range f.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, stderr, err := f.L.RunContext(ctx, c, "borgkit", "job", "nightly"); err != nil {
				errs[i] = fmt.Errorf("%s: job nightly: %w\n%s\n%s", c, err, out, stderr)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ServerBorg runs borg as root on the borg server against the client's
// repo directory, with the client's passphrase in a file of the server's
// root (never argv) and a borg home of its own; --bypass-lock keeps
// root's borg from leaving a root-owned lock in the borg user's repo.
func (f *Fleet) ServerBorg(ctx context.Context, client string, args ...string) (stdout, stderr []byte, err error) {
	pass, err := f.L.ReadFile(client, path.Join(layout.KeysDir, client+".pass"))
	if err != nil {
		return nil, nil, err
	}
	pf := "/root/fleet-" + client + ".pass"
	if err := f.L.WriteFile(FleetServer, pf, pass, 0o600); err != nil {
		return nil, nil, err
	}
	argv := append([]string{"env", "BORG_PASSCOMMAND=cat " + pf, "BORG_BASE_DIR=/root/fleet-borg", "BORG_EXIT_CODES=legacy",
		"BORG_RELOCATED_REPO_ACCESS_IS_OK=yes", "borg"}, args...)
	return f.L.RunContext(ctx, FleetServer, argv...)
}
