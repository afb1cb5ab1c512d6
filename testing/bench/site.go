package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/borgkit/borgkit/provision/config"
)

// Site is the bench's world, all under one work directory: the data set,
// a server provisioned by borgkit into a tree (--root), the repos of the
// peers, the mirrors, and the configs that tie them together.
type Site struct {
	Dir     string
	Data    string // the data set every tool backs up
	Tree    string // the server john-ai, provisioned with --root
	Borgkit string // the binary under test
	// Env is every tool's environment: one borg cache and security dir for
	// the whole run, none of the user's own.
	Env []string
}

// The server's config as provisioning sees it (paths inside the tree).
const (
	provHost = "john-ai"
	repoName = "home"
	provRepo = "/mnt/backup/" + repoName
)

func (s *Site) path(p ...string) string { return filepath.Join(append([]string{s.Dir}, p...)...) }

// ProvConfig is the server's config file, provisioned under Tree.
func (s *Site) ProvConfig() string { return s.path("prov.yaml") }

// JobsConfig is the config the jobs run with: the provisioned repo at its
// real path in the tree, and the twins of the compaction bench.
func (s *Site) JobsConfig() string { return s.path("jobs.yaml") }

// KitRepo is the provisioned repo, as the jobs reach it.
func (s *Site) KitRepo() string { return filepath.Join(s.Tree, provRepo) }

// KitPass is its generated passphrase file.
func (s *Site) KitPass() string {
	return filepath.Join(s.Tree, "/etc/borgkit/keys", repoName+".pass")
}

// A Twin is a repo of its own with its own host in the jobs config, so
// it can have its own compaction policy.
type Twin struct {
	Host, Repo, Pass, Mirror string
	Weekdays                 []string
	Threshold                int
}

var provTmpl = template.Must(template.New("prov").Parse(`# The bench's server: what borgkit provisions with --root into a tree and
# the Ansible playbook manages in another.
version: 1
site: bench
alerts:
  to: bench@example.com
  from: bench@example.com
  smtp:
    host: smtp.example.com
    port: 587
    user: bench@example.com
    password_file: /etc/borgkit/smtp.pass
retention: {daily: 1, weekly: 0, monthly: 0}
hosts:
  - name: ` + provHost + `
    role: server
    address: 127.0.0.1
    disks:
      - name: usb-backup
        uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f
        mountpoint: /mnt/backup
        options: [nofail]
        backup: true
    repos:
      - name: ` + repoName + `
        path: ` + provRepo + `
        sources: [/srv/data]
        encryption: repokey-blake2
`))

// jobsHeader begins every config the bench's jobs run with: mail goes
// nowhere, and retention keeps one archive a day.
const jobsHeader = `version: 1
site: bench
alerts:
  to: bench@example.com
  from: bench@example.com
  sendmail: [/bin/true]
retention: {daily: 1, weekly: 0, monthly: 0}
`

// jobsTmpl keeps one archive a day (daily: 1): each night prunes the night
// before whole, the steady state of a retention window sliding by one
// archive a night, within a bench that runs in minutes.
var jobsTmpl = template.Must(template.New("jobs").Funcs(template.FuncMap{
	"join": func(s []string) string { return strings.Join(s, ", ") },
}).Parse(jobsHeader + `hosts:
{{- range .Twins}}
  - name: {{.Host}}
    role: server
    address: 127.0.0.1
    repos:
      - name: ` + repoName + `
        path: {{printf "%q" .Repo}}
        sources: [{{printf "%q" $.Data}}]
        encryption: repokey-blake2
        compression: zstd
        passphrase_file: {{printf "%q" .Pass}}
    mirrors:
      - name: offsite
        path: {{printf "%q" .Mirror}}
    compaction: {weekdays: [{{join .Weekdays}}], threshold: {{.Threshold}}}
{{- end}}
`))

// writeConfig renders t into path and checks borgkit's own parser takes it.
func writeConfig(path string, t *template.Template, data any) error {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("rendering %s: %w", path, err)
	}
	if _, err := config.Parse(path, []byte(b.String())); err != nil {
		return fmt.Errorf("bench config %s: %w", path, err)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// WriteJobsConfig writes the jobs config for the twins.
func (s *Site) WriteJobsConfig(twins []Twin) error {
	return writeConfig(s.JobsConfig(), jobsTmpl, struct {
		Data  string
		Twins []Twin
	}{s.Data, twins})
}

// today and notToday are weekday names for a policy that compacts
// tonight, and one that does not.
func today() string    { return config.Weekdays[time.Now().Weekday()] }
func notToday() string { return config.Weekdays[(time.Now().Weekday()+1)%7] }

// everyDay is every weekday: compaction every night, as before the policy.
func everyDay() []string { return config.Weekdays[:] }

// newPass writes a random passphrase, 0600, for a repo the bench inits.
func newPass(path string) error {
	b := make([]byte, 24)
	rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}

// borgEnv is the environment for borg on a repo with passphrase file pass:
// the passphrase reaches borg through a command, never argv.
func (s *Site) borgEnv(pass string) []string {
	return append(append([]string(nil), s.Env...), "BORG_PASSCOMMAND=cat "+pass, "BORG_DISPLAY_PASSPHRASE=no")
}

// borg is borg on the repo with passphrase file pass.
func (s *Site) borg(pass string, args ...string) Cmd {
	return Cmd{Argv: append([]string{"borg"}, args...), Env: s.borgEnv(pass)}
}

// borgkit is the binary under test with args.
func (s *Site) borgkit(args ...string) Cmd {
	return Cmd{Argv: append([]string{s.Borgkit}, args...), Env: s.Env}
}

// job is `borgkit job NAME` for a twin's host, with state, log and lock
// of its own under the work directory.
func (s *Site) job(name, host string) Cmd {
	return s.borgkit("--config", s.JobsConfig(), "job", name, "--host", host,
		"--state-dir", s.path("state", host), "--log-dir", s.path("log", host), "--lock", s.path("lock", host))
}

// initRepo makes a repo for a peer, encrypted like the provisioned one.
func (s *Site) initRepo(ctx context.Context, repo, pass string) error {
	if err := newPass(pass); err != nil {
		return err
	}
	_, err := s.borg(pass, "init", "--encryption=repokey-blake2", "--make-parent-dirs", repo).Run(ctx)
	return err
}
