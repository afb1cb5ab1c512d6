package lab_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/borg"
	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/testing/lab"
)

// The remote repo of TestLabRemoteRepo: john-ai backs up into a borg
// repo on pi, which here is a plain borg server (real sshd, real borg
// serve behind a restricted authorized_keys line), not an offsite host.
const (
	remoteDir  = "/var/lib/borgsrv/john-ai" // pi's own /var, not the machine's
	remoteRepo = "john-ai-remote"
)

// remoteConfig is a site of one server whose only repo is on pi's borg
// server, with hostKey pinned.
func remoteConfig(l *lab.Lab, hostKey string) []byte {
	return []byte(fmt.Sprintf(`version: 1
site: lab-remote-%s
alerts:
  to: %s
  from: john-ai@lab.example
  sendmail: [/usr/bin/msmtp, -C, /etc/msmtprc, --read-envelope-from, -t]
retention: {daily: 3, weekly: 2, monthly: 6}
hosts:
  - name: %s
    role: server
    address: %s
    repos:
      - name: %s
        path: ssh://root@%s:22%s
        host_key: %s
        sources: [/home]
        encryption: repokey-blake2
        canary: %s
`, l.ID, lab.MailTo, lab.Server, lab.ServerAddr, remoteRepo, lab.OffsiteAddr, remoteDir, hostKey, lab.Canary))
}

// serveLine is the authorized_keys line a borg server gives one client:
// borg serve confined to the client's directory, append-only, with a quota.
func serveLine(pub, quota string) string {
	return fmt.Sprintf(`restrict,command="borg serve --restrict-to-path %s --append-only --storage-quota %s" %s`, remoteDir, quota, strings.TrimSpace(pub))
}

// TestLabRemoteRepo: john-ai's nightly backs up into an ssh:// repo on
// pi, served by real borg serve behind a restricted authorized_keys line
// of pi's real sshd, the host key pinned from the config; check, verify,
// restore-test and status run against it; a wrong host key and a full
// quota each fail with a mail that says so.
func TestLabRemoteRepo(t *testing.T) {
	l := lab.StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := lab.Install(ctx, l, lab.ScenarioOptions{Binary: borgkitBinary(t)}); err != nil {
		t.Fatal(err)
	}
	pi := l.Host(lab.Offsite)
	hostKey := strings.Join(strings.Fields(pi.HostPublicKey)[:2], " ")
	if err := l.WriteFile(lab.Server, lab.ConfigPath, remoteConfig(l, hostKey), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse("remote.yaml", remoteConfig(l, hostKey)); err != nil {
		t.Fatalf("the test's config does not validate: %v", err)
	}
	for i := range 20 {
		if err := l.WriteFile(lab.Server, fmt.Sprintf("/home/user/doc%02d.txt", i), []byte(strings.Repeat(fmt.Sprintf("remote doc %d\n", i), 300)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WriteFile(lab.Server, lab.Canary, []byte("the canary sings on the borg server\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// First provisioning makes borgkit's repo key and known_hosts; the
	// server does not know the key yet, so the repo step says to
	// authorize it and nothing is created there.
	out, stderr, err := l.Run(lab.Server, "borgkit", "provision", lab.Server, "--local")
	if err == nil || !strings.Contains(string(out)+string(stderr), layout.RepoIdentity+".pub") {
		t.Fatalf("provision before the key is authorized: err %v, want a failure naming %s.pub\n%s\n%s", err, layout.RepoIdentity, out, stderr)
	}
	kh, err := l.ReadFile(lab.Server, layout.RepoKnownHosts)
	if err != nil || !strings.Contains(string(kh), lab.OffsiteAddr+" "+hostKey) {
		t.Fatalf("%s does not pin pi's host key (%v):\n%s", layout.RepoKnownHosts, err, kh)
	}
	pub, err := l.ReadFile(lab.Server, layout.RepoIdentity+".pub")
	if err != nil {
		t.Fatal(err)
	}
	setQuota := func(q string) {
		t.Helper()
		if err := l.WriteFile(lab.Offsite, "/root/.ssh/authorized_keys", []byte(serveLine(string(pub), q)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setQuota("200M")
	mustRun(t, l, lab.Offsite, "mkdir", "-p", remoteDir)
	out, stderr, err = l.Run(lab.Server, "borgkit", "provision", lab.Server, "--local")
	if err != nil {
		t.Fatalf("provision once the key is authorized: %v\n%s\n%s", err, out, stderr)
	}
	if cfgFile, err := l.ReadFile(lab.Offsite, remoteDir+"/config"); err != nil || !borg.IsRepoConfig(cfgFile) {
		t.Fatalf("provision made no repo on pi's borg server (%v):\n%s", err, out)
	}

	// The nightly, over SSH into borg serve.
	for _, job := range []string{"nightly", "check", "verify", "restore-test"} {
		if out, stderr, err := l.Run(lab.Server, "borgkit", "job", job); err != nil {
			t.Fatalf("job %s: %v\n%s\n%s\n%s", job, err, out, stderr, jobLog(l, job))
		}
	}
	list := mustRun(t, l, lab.Server, "env", "BORG_PASSCOMMAND=cat /etc/borgkit/keys/"+remoteRepo+".pass", "BORG_EXIT_CODES=legacy",
		"BORG_RSH="+borg.RSH(layout.RepoIdentity, layout.RepoKnownHosts), "borg", "list", "--short",
		fmt.Sprintf("ssh://root@%s:22%s", lab.OffsiteAddr, remoteDir))
	if len(strings.Fields(list)) != 1 || !strings.HasPrefix(list, "nightly-") {
		t.Fatalf("archives on the borg server: %q, want one nightly-", list)
	}
	// The server is append-only: what the client's borg did is in its log.
	if tx, err := l.ReadFile(lab.Offsite, remoteDir+"/config"); err != nil || !strings.Contains(string(tx), "append_only") {
		t.Logf("repo config on pi: %s (%v)", tx, err)
	}

	// status reads the records: the repo, its URL and last backup, at once.
	stdout, _, err := l.Run(lab.Server, "borgkit", "status", "--json")
	if err != nil {
		t.Fatalf("status --json: %v\n%s", err, stdout)
	}
	var st struct {
		Repos []struct {
			Name, Path, Status, Level string
			Server                    string
			LastArchive               string `json:"last_archive"`
			Archives                  int
		} `json:"repos"`
	}
	if err := json.Unmarshal(stdout, &st); err != nil || len(st.Repos) != 1 {
		t.Fatalf("status --json: %v\n%s", err, stdout)
	}
	if r := st.Repos[0]; r.Name != remoteRepo || !strings.HasPrefix(r.Path, "ssh://") || r.Status != "ok" || r.Archives != 1 ||
		r.Server != lab.OffsiteAddr+":22" || strings.TrimSpace(list) != r.LastArchive {
		t.Errorf("status of the remote repo: %+v", r)
	}

	// The nightly vouches for the repo: a no-change plan trusts its
	// records instead of running borg info on both ends, and says so.
	out, stderr, err = l.Run(lab.Server, "borgkit", "plan", lab.Server, "--local", "--detailed-exitcode")
	if err != nil || !strings.Contains(string(out), "in use: the nightly of") {
		t.Errorf("plan after the nightly: %v, want the repo in use by the nightly\n%s\n%s", err, out, stderr)
	}
	// The records give the repository id, so an export of another repo's
	// key is found stale, set aside, and exported afresh.
	export := layout.KeyExport(remoteRepo)
	good, err := l.ReadFile(lab.Server, export)
	if err != nil {
		t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(good), "\n")
	if err := l.WriteFile(lab.Server, export, []byte("BORG_KEY "+strings.Repeat("0", 64)+"\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = l.Run(lab.Server, "borgkit", "plan", lab.Server, "--local")
	if err != nil || !strings.Contains(string(out), "does not open repo "+remoteRepo) {
		t.Errorf("plan with another repo's key export: %v, want it found stale\n%s\n%s", err, out, stderr)
	}
	mustRun(t, l, lab.Server, "borgkit", "provision", lab.Server, "--local")
	if got, err := l.ReadFile(lab.Server, export); err != nil || !strings.HasPrefix(string(got), first+"\n") {
		t.Errorf("the key export after provision: %v\n%.80s", err, got)
	}
	if kept := mustRun(t, l, lab.Server, "sh", "-c", "ls "+export+".replaced-*"); strings.TrimSpace(kept) == "" {
		t.Errorf("the stale export was not kept beside the new one")
	}

	// A host key other than the pinned one: ssh refuses, and the nightly's
	// mail says why.
	_, wrongPriv, _ := ed25519.GenerateKey(rand.Reader)
	wrongSigner, _ := ssh.NewSignerFromKey(wrongPriv)
	wrong := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(wrongSigner.PublicKey())))
	if err := l.WriteFile(lab.Server, lab.ConfigPath, remoteConfig(l, wrong), 0o640); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := l.Run(lab.Server, "borgkit", "provision", lab.Server, "--local"); err == nil || !strings.Contains(string(out)+string(stderr), "does not show the host key pinned") {
		t.Errorf("provision with a wrong host_key: err %v\n%s\n%s", err, out, stderr)
	}
	l.ResetMails()
	if _, _, err := l.Run(lab.Server, "borgkit", "job", "nightly"); err == nil {
		t.Errorf("nightly against a server whose host key is not the pinned one succeeded")
	}
	if mails, err := l.WaitMails(1, 30*time.Second); err != nil || !strings.Contains(mails[0].Body, "HOST KEY MISMATCH") {
		t.Errorf("mail after a wrong host key: %v\n%+v", err, mails)
	}

	// ssh itself pins the key: with the config right but borgkit's
	// known_hosts holding another key, borg's ssh refuses the server.
	if err := l.WriteFile(lab.Server, lab.ConfigPath, remoteConfig(l, hostKey), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFile(lab.Server, layout.RepoKnownHosts, []byte(lab.OffsiteAddr+" "+wrong+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.ResetMails()
	if out, _, err := l.Run(lab.Server, "borgkit", "job", "nightly"); err == nil {
		t.Errorf("nightly with another key in %s succeeded: ssh does not check host keys strictly\n%s", layout.RepoKnownHosts, out)
	}
	if mails, err := l.WaitMails(1, 30*time.Second); err != nil || !strings.Contains(mails[0].Body, "Connection closed by remote host") {
		t.Errorf("mail after ssh refused the host key: %v\n%+v", err, mails)
	}

	// Provisioning puts the pinned key back; the server's quota is
	// smaller than tonight's new data: borg serve refuses, and the mail
	// says it is the quota.
	mustRun(t, l, lab.Server, "borgkit", "provision", lab.Server, "--local")
	setQuota("10M") // borg serve's least
	noise := make([]byte, 16<<20)
	_, _ = rand.Read(noise)
	if err := l.WriteFile(lab.Server, "/home/user/photo.raw", noise, 0o644); err != nil {
		t.Fatal(err)
	}
	l.ResetMails()
	if out, _, err := l.Run(lab.Server, "borgkit", "job", "nightly"); err == nil {
		t.Errorf("nightly over the quota succeeded:\n%s", out)
	}
	mails, err := l.WaitMails(1, 30*time.Second)
	if err != nil || !strings.Contains(mails[0].Body, "STORAGE QUOTA EXCEEDED") || !strings.Contains(mails[0].Body, "storage quota") {
		t.Errorf("mail over the quota: %v\n%+v\n%s", err, mails, jobLog(l, "nightly"))
	}
}
