package lab

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
)

// Where the attack works.
const (
	// AttackDir holds the intruder's trees on john-ai.
	AttackDir = "/var/tmp/borgkit-lab-attack"
	// SnapshotPath is where the Pi keeps its snapshots.
	SnapshotPath = OffsiteMount + "/" + layout.SnapshotDir
)

// Attack is one push an intruder on john-ai made with the push key.
type Attack struct {
	Name     string
	Argv     []string
	ExitCode int
	// Output is rsync's last line, the reason it gave.
	Output string
}

// SnapshotCheck is a snapshot compared with the mirror it was taken of.
type SnapshotCheck struct {
	Name string
	// Trees are its repos' HashTree as taken, by repo.
	Trees map[string]map[string]string
	// Diffs are what changed in it since, "" for none.
	Diffs []string
	Err   error
}

// checkSnapshot compares the newest snapshot on the Pi with the mirror it
// was just taken of, repo by repo, and keeps its hashes.
func (s *scenario) checkSnapshot() {
	name, err := s.latestSnapshot()
	sc := &SnapshotCheck{Name: name, Trees: map[string]map[string]string{}, Err: err}
	s.r.Snapshot = sc
	if err != nil {
		s.progress(Offsite, "snapshot", "FAILED: "+err.Error())
		return
	}
	for _, repo := range []string{RepoSystem, RepoDocker} {
		mirror, err := s.l.HashTree(Offsite, OffsitePath+"/"+repo)
		if err != nil {
			sc.Err = err
			break
		}
		snap, err := s.l.HashTree(Offsite, SnapshotPath+"/"+name+"/"+repo)
		if err != nil {
			sc.Err = err
			break
		}
		sc.Trees[repo] = snap
		for _, d := range DiffTrees(mirror, snap) {
			sc.Diffs = append(sc.Diffs, repo+"/"+d)
		}
	}
	status := fmt.Sprintf("%s holds the mirror as it arrived", name)
	switch {
	case sc.Err != nil:
		status = "FAILED: " + sc.Err.Error()
	case len(sc.Diffs) > 0:
		status = "DIFFERS from the mirror: " + strings.Join(first(sc.Diffs, 5), ", ")
	}
	s.progress(Offsite, "snapshot", status)
}

// latestSnapshot is the name of the Pi's newest snapshot.
func (s *scenario) latestSnapshot() (string, error) {
	dir, err := s.l.Path(Offsite, SnapshotPath)
	if err != nil {
		return "", err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range ents {
		if _, ok := layout.SnapshotTime(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("no snapshot in %s", SnapshotPath)
	}
	sort.Strings(names)
	return names[len(names)-1], nil
}

// attack is the intruder on john-ai: with the push key (root's ssh config
// logs in to pi as the push user, as the sync does) it tries everything
// rrsync lets through to destroy the offsite copy. Then the Pi restores
// from its snapshot with borgkit drill, the snapshot is compared with what
// it held before, and a clean sync repairs the mirror.
func (s *scenario) attack(ctx context.Context) {
	sc := s.r.Snapshot
	if sc == nil || sc.Err != nil || sc.Name == "" {
		s.progress(Server, "attack", "skipped: no snapshot to attack")
		return
	}
	trees, err := s.attackTrees()
	if err != nil {
		s.r.Actions = append(s.r.Actions, &Action{Host: Server, Name: "attack: prepare", Err: err})
		return
	}
	dest := func(p string) string { return Offsite + ":" + p }
	repos := []string{RepoSystem, RepoDocker}
	var attacks [][]string
	add := func(name string, argv ...string) { attacks = append(attacks, append([]string{name}, argv...)) }
	for _, r := range repos {
		add("--inplace, same size, new bytes: "+r, "rsync", "-r", "--inplace", "-I", trees["same"]+"/"+r+"/", dest(r+"/"))
		add("--inplace, truncated: "+r, "rsync", "-r", "--inplace", "-I", "--no-whole-file", trees["short"]+"/"+r+"/", dest(r+"/"))
		add("--append: "+r, "rsync", "-r", "--append", trees["long"]+"/"+r+"/", dest(r+"/"))
		add("modes, owner, times (-a --super --inplace): "+r, "rsync", "-a", "--super", "--inplace", "-I", trees["same"]+"/"+r+"/", dest(r+"/"))
		add("hard links to the frozen files (--link-dest, -H): "+r, "rsync", "-a", "-H", "--link-dest=/"+r, "--inplace", trees["copy"]+"/"+r+"/", dest("linked-"+r+"/"))
		add("symlinks planted over the segments: "+r, "rsync", "-rl", trees["links"]+"/"+r+"/", dest(r+"/"))
		add("overwrite every file: "+r, "rsync", "-r", "-I", trees["long"]+"/"+r+"/", dest(r+"/"))
	}
	add("a forged heartbeat", "rsync", "-r", "-I", trees["long"]+"/"+layout.HeartbeatDir+"/", dest(layout.HeartbeatDir+"/"))
	add("--delete everything", "rsync", "-r", "--delete", "--force", trees["empty"]+"/", dest(""))
	for _, a := range attacks {
		st := &Action{Host: Server, Name: "attack: " + a[0], Argv: a[1:]}
		t0 := time.Now()
		st.Stdout, st.Stderr, st.Err = s.l.RunContext(ctx, Server, a[1:]...)
		st.Duration = time.Since(t0)
		at := Attack{Name: a[0], Argv: a[1:], Output: lastLine(st.Stderr)}
		if st.Err != nil {
			at.ExitCode = ExitCode(st.Err)
		}
		s.r.Attacks = append(s.r.Attacks, at)
		s.progress(Server, "attack: "+a[0], fmt.Sprintf("rsync exit %d %s", at.ExitCode, at.Output))
	}
	left, _ := s.l.HashTree(Offsite, OffsitePath)
	s.progress(Offsite, "mirror after the attack", fmt.Sprintf("%d entries left", len(left)))

	// The restore, on the Pi, from the newest snapshot, with the bundle
	// carried there; the restored files compared with john-ai's own.
	if err := s.carryBundle(); err != nil {
		s.r.Actions = append(s.r.Actions, &Action{Host: Offsite, Name: "drill from the snapshot", Err: err})
	} else {
		live, _ := s.l.Path(Server, "/")
		s.exec(ctx, Offsite, "drill from the snapshot", false, "borgkit", "drill", "--bundle", BundleDir, "--mirror", OffsitePath,
			"--snapshot", "latest", "--samples", "10", "--compare-live", "--live-root", live, "--report-dir", "/var/tmp")
	}
	// The snapshot is as it was, byte for byte.
	for _, repo := range []string{RepoSystem, RepoDocker} {
		now, err := s.l.HashTree(Offsite, SnapshotPath+"/"+sc.Name+"/"+repo)
		if err != nil {
			sc.Err = err
			continue
		}
		for _, d := range DiffTrees(sc.Trees[repo], now) {
			sc.Diffs = append(sc.Diffs, "after the attack: "+repo+"/"+d)
		}
	}
	if len(sc.Diffs) == 0 && sc.Err == nil {
		s.progress(Offsite, "snapshot "+sc.Name, "unchanged by the attack")
	} else {
		s.progress(Offsite, "snapshot "+sc.Name, fmt.Sprintf("CHANGED: %v %s", sc.Err, strings.Join(first(sc.Diffs, 5), ", ")))
	}
	// With the heartbeat deleted there is no push to keep: the snapshot job
	// takes nothing and, above all, removes nothing.
	s.exec(ctx, Offsite, "job snapshot (after the attack)", false, "borgkit", "job", "snapshot")
	if name, err := s.latestSnapshot(); err != nil || name != sc.Name {
		sc.Diffs = append(sc.Diffs, fmt.Sprintf("after the attack the newest snapshot is %q (%v), not %s", name, err, sc.Name))
	}
	// Once john-ai is clean again, its next sync repairs the mirror.
	if s.job(ctx, "sync").Err == nil {
		before := len(s.r.Mirrors)
		s.checkMirrors()
		s.r.Repaired = append(s.r.Repaired, s.r.Mirrors[before:]...)
		s.r.Mirrors = s.r.Mirrors[:before]
	}
}

// carryBundle copies the recovery bundle from john-ai to the Pi, as the
// USB stick would be carried there.
func (s *scenario) carryBundle() error {
	from, err := s.l.Path(Server, BundleDir)
	if err != nil {
		return err
	}
	to, err := s.l.Path(Offsite, BundleDir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(to); err != nil {
		return err
	}
	if _, err := s.l.local(context.Background(), "cp", "-a", from, to); err != nil {
		return fmt.Errorf("carry the bundle to %s: %w", Offsite, err)
	}
	return nil
}

// attackTrees are the intruder's trees on john-ai, with the names of the
// repos' files: same (same sizes, random bytes), short (a third), long
// (4 KiB longer), copy (the repos as they are), links (every file a
// symlink to /etc/shadow, every directory to the snapshots), empty.
func (s *scenario) attackTrees() (map[string]string, error) {
	trees := map[string]string{}
	for _, kind := range []string{"same", "short", "long", "copy", "links", "empty"} {
		trees[kind] = AttackDir + "/" + kind
		p, err := s.l.Path(Server, trees[kind])
		if err != nil {
			return nil, err
		}
		if err := os.RemoveAll(p); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, err
		}
	}
	fill := map[string]func(rel string, b []byte) []byte{
		"same":  func(_ string, b []byte) []byte { return random(len(b)) },
		"short": func(_ string, b []byte) []byte { return random(len(b) / 3) },
		"long":  func(_ string, b []byte) []byte { return random(len(b) + 4096) },
		"copy":  func(_ string, b []byte) []byte { return b },
	}
	for _, repo := range []string{RepoSystem, RepoDocker, layout.HeartbeatDir} {
		src, err := s.l.Path(Offsite, OffsitePath+"/"+repo)
		if err != nil {
			return nil, err
		}
		err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			rel = path.Join(repo, filepath.ToSlash(rel))
			for kind, f := range fill {
				dst, _ := s.l.Path(Server, trees[kind]+"/"+rel)
				if d.IsDir() {
					if err := os.MkdirAll(dst, 0o700); err != nil {
						return err
					}
					continue
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if err := os.WriteFile(dst, f(rel, b), 0o600); err != nil {
					return err
				}
			}
			// Symlinks are made, never followed: an absolute one met on the
			// way through /proc/ANCHOR/root would resolve on this machine.
			links, _ := s.l.Path(Server, trees["links"]+"/"+rel)
			switch {
			case rel == repo:
				if err := os.MkdirAll(links, 0o700); err != nil {
					return err
				}
				return os.Symlink("/mnt/backup/"+layout.SnapshotDir, links+"/escape")
			case d.IsDir():
				return os.MkdirAll(links, 0o700)
			default:
				return os.Symlink("/etc/shadow", links)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("attack trees: %w", err)
		}
	}
	return trees, nil
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
