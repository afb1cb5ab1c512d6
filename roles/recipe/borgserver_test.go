package recipe

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/testing/sshd"
	"github.com/borgkit/borgkit/testing/sysuser"
)

// borgClient is one client of the test's borg server: its key, and borg
// run with that key as BORG_RSH.
type borgClient struct {
	t    *testing.T
	name string
	pub  string
	rsh  string
	base string
}

func newBorgClient(t *testing.T, name string) *borgClient {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	return &borgClient{t: t, name: name, pub: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " borgkit-repo@" + name,
		rsh: "ssh -i " + key + " -o IdentitiesOnly=yes -o BatchMode=yes", base: dir}
}

// borg runs borg as this client; the error carries its output.
func (c *borgClient) borg(args ...string) (string, error) {
	cmd := exec.Command("borg", args...)
	cmd.Env = append(os.Environ(), "BORG_RSH="+c.rsh, "BORG_BASE_DIR="+c.base, "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes",
		"BORG_RELOCATED_REPO_ACCESS_IS_OK=yes")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *borgClient) must(args ...string) string {
	c.t.Helper()
	out, err := c.borg(args...)
	if err != nil {
		c.t.Fatalf("%s: borg %s: %v\n%s", c.name, strings.Join(args, " "), err, out)
	}
	return out
}

// TestBorgServerKeysConfine: the borg-server role's authorized_keys, with
// a real sshd and real borg on both sides. A client appends to its own
// repo; its delete is undone by the server's owner from the transaction
// log (append-only is real); it cannot list another client's repo; a
// client over its quota is refused.
func TestBorgServerKeysConfine(t *testing.T) {
	if _, err := exec.LookPath("borg"); err != nil {
		t.Skip("borg is not installed")
	}
	u := sysuser.New(t, "bkborg")
	top := t.TempDir()
	// The test's directories are 0700: the borg user must reach its own.
	os.Chmod(filepath.Dir(top), 0o755)
	os.Chmod(top, 0o755)
	root := filepath.Join(top, "srv")
	a, b := newBorgClient(t, "laptop"), newBorgClient(t, "desk")
	bs := &config.BorgServer{Root: root, Clients: []config.BorgClient{{Name: a.name, PublicKey: a.pub, Quota: "100M"}, {Name: b.name, PublicKey: b.pub, Quota: "10M"}}}
	keys, err := BorgServerKeys(bs)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(keys)), "\n")[1:] // after the marker
	os.MkdirAll(root, 0o755)
	for _, c := range bs.Clients {
		d := bs.Dir(c)
		os.Mkdir(d, 0o700)
		os.Chown(d, u.UID, u.GID)
	}
	// borg serve's own config and cache, in the user's home as the role makes them.
	for _, d := range []string{".config", ".cache"} {
		os.Mkdir(filepath.Join(u.Home, d), 0o700)
		os.Chown(filepath.Join(u.Home, d), u.UID, u.GID)
	}
	srv := sshd.Start(t, sshd.Options{UserKeys: map[string][]string{u.Name: lines}})
	for _, c := range []*borgClient{a, b} {
		c.rsh += " -o UserKnownHostsFile=" + srv.KnownHostsPath + " -o StrictHostKeyChecking=yes"
	}
	repo := func(c config.BorgClient) string {
		return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s/repo", u.Name, srv.Port, bs.Dir(c))
	}
	ra, rb := repo(bs.Clients[0]), repo(bs.Clients[1])
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("tonight's data\n"), 0o644)

	a.must("init", "-e", "none", ra)
	a.must("create", ra+"::one", src)
	a.must("create", ra+"::two", src)
	serverRepo := filepath.Join(bs.Dir(bs.Clients[0]), "repo")
	good := lastTransaction(t, serverRepo)
	a.must("delete", ra+"::one")
	a.must("prune", "--keep-last", "1", ra) // would leave only "two"... and compact frees nothing
	a.borg("compact", ra)
	if out := a.must("list", "--short", ra); strings.Contains(out, "one") {
		t.Fatalf("the client's delete did not show: %s", out)
	}
	// The server's owner rolls the repo back to the last good transaction,
	// as borg's documentation of append-only mode says.
	rollBack(t, serverRepo, good)
	local := &borgClient{t: t, name: "server owner", base: t.TempDir()}
	if out := local.must("list", "--short", serverRepo); !strings.Contains(out, "one") || !strings.Contains(out, "two") {
		t.Fatalf("after the roll back the archives are: %q, want one and two", out)
	}

	// A client cannot reach another's repo, not even to list it.
	b.must("init", "-e", "none", rb)
	if out, err := a.borg("list", rb); err == nil || !strings.Contains(out, "not allowed") {
		t.Errorf("laptop listed desk's repo: %v\n%s", err, out)
	}
	// Over its quota, a client's create fails and says so.
	big := make([]byte, 16<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	if out, err := b.borg("create", "--compression", "none", rb+"::big", src); err == nil || !strings.Contains(strings.ToLower(out), "quota") {
		t.Errorf("desk's create over its 10M quota: %v\n%s", err, out)
	}
}

var transactionRE = regexp.MustCompile(`(?m)^transaction (\d+),`)

// lastTransaction is the number of the repo's last committed transaction.
func lastTransaction(t *testing.T, repo string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "transactions"))
	if err != nil {
		t.Fatal(err)
	}
	m := transactionRE.FindAllStringSubmatch(string(b), -1)
	if len(m) == 0 {
		t.Fatalf("no transaction in %s", b)
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// rollBack removes every segment and index written after transaction n.
func rollBack(t *testing.T, repo string, n int) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(repo, "data", "*", "*"))
	for _, s := range segs {
		if i, err := strconv.Atoi(filepath.Base(s)); err == nil && i > n {
			os.Remove(s)
		}
	}
	for _, kind := range []string{"hints", "index", "integrity"} {
		files, _ := filepath.Glob(filepath.Join(repo, kind+".*"))
		for _, f := range files {
			if i, err := strconv.Atoi(strings.TrimPrefix(filepath.Ext(f), ".")); err == nil && i > n {
				os.Remove(f)
			}
		}
	}
}
