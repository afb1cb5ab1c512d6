package recipe_test

import (
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/roles/recipe"
)

const remoteHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1ng9zpMTlcnu2h7OJdqBaCh3GmknPhO+Mmc5czoopO"

// TestRemoteRepoSteps: a repo on a borg server gets borgkit's repo key,
// a known_hosts of exactly its pinned key (without the key's comment),
// a RemoteBorgRepo step instead of a local init, and an export over SSH.
func TestRemoteRepoSteps(t *testing.T) {
	cfg := example(t, "        path: /mnt/backup/john-ai-containers\n",
		"        path: ssh://borg@backup.example.net:2222/./john-ai/containers\n        host_key: "+remoteHostKey+" root@backup\n")
	ss, err := recipe.Steps(cfg, "john-ai", recipe.Options{ConfigData: []byte("config\n")})
	if err != nil {
		t.Fatal(err)
	}
	var key, kh, repo, export bool
	for _, s := range ss {
		switch s := s.(type) {
		case *steps.SSHKey:
			key = key || s.Path == layout.RepoIdentity
		case *steps.Block:
			if s.Path == layout.RepoKnownHosts {
				kh = true
				if want := "[backup.example.net]:2222 " + remoteHostKey + "\n"; string(s.Lines) != want {
					t.Errorf("known_hosts lines %q, want %q", s.Lines, want)
				}
			}
		case *steps.RemoteBorgRepo:
			repo = true
			if s.Location != "ssh://borg@backup.example.net:2222/./john-ai/containers" || s.Addr != "backup.example.net:2222" || s.User != "borg" {
				t.Errorf("remote repo step %+v", s)
			}
		case *steps.BorgRepo:
			if strings.Contains(s.Path, "ssh://") || s.Name == "john-ai-containers" {
				t.Errorf("a local repo step for the remote repo: %+v", s)
			}
		case *steps.BorgKeyExport:
			if s.Repo == "john-ai-containers" {
				export = s.Remote && s.RepoPath == "ssh://borg@backup.example.net:2222/./john-ai/containers"
			}
		}
	}
	if !key || !kh || !repo || !export {
		t.Errorf("steps: repo key %v, known_hosts %v, remote repo %v, export over SSH %v", key, kh, repo, export)
	}
	// A tree under --root never reaches out to the server.
	_, out, err := runPlan(t, cfg, t.TempDir(), true)
	if err != nil || !strings.Contains(out, "is opened or created when this host is provisioned live") {
		t.Errorf("plan of a rooted tree: %v\n%s", err, out)
	}
}
