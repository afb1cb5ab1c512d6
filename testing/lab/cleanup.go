package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// labNSRE matches the namespaces a lab creates: PREFIX<8 hex>-<host>.
var labNSRE = regexp.MustCompile(`^([0-9a-f]{8})-([a-z0-9-]+)$`)

// Cleanup removes what crashed lab runs left behind: the processes in
// their namespaces (killed by pid), their loop devices, their namespaces
// (those named prefix<8 hex>-<host>; prefix "" means NSPrefix) and their
// directories. A lab whose owning process is still alive is left alone, so
// it is safe to call while another lab runs. Start calls it first.
func Cleanup(prefix string) error {
	if prefix == "" {
		prefix = NSPrefix
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error

	// Registered labs: owner pid and directory.
	dirs := map[string]string{}
	live := map[string]bool{}
	ents, _ := os.ReadDir(registryDir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(registryDir, e.Name()))
		if err != nil {
			continue
		}
		f := strings.Split(strings.TrimSpace(string(b)), "\n")
		pid, _ := strconv.Atoi(f[0])
		// The owner is alive if that pid still runs the process that
		// registered (not a zombie, not a reused pid). This process's own
		// labs count as live too: a test may hold one while starting another.
		if start := procStart(pid); start != "" && (len(f) < 3 || f[2] == start) {
			live[e.Name()] = true
			continue
		}
		if len(f) > 1 {
			dirs[e.Name()] = f[1]
		}
	}

	// Namespaces of dead labs: kill everything in them, then delete them.
	var nsGone []string
	nss, _ := os.ReadDir(netnsDir)
	for _, e := range nss {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		m := labNSRE.FindStringSubmatch(rest)
		if !ok || m == nil || live[m[1]] {
			continue
		}
		if _, ok := dirs[m[1]]; !ok {
			dirs[m[1]] = "" // unregistered: the directory is found below, if any
		}
		if id, err := statNS(filepath.Join(netnsDir, e.Name())); err == nil {
			if left := killNS("net", id, 10*time.Second); len(left) > 0 {
				errs = append(errs, fmt.Errorf("%s: processes %v survived SIGKILL", e.Name(), left))
			}
		}
		nsGone = append(nsGone, e.Name())
	}

	// Loop devices whose image is in a dead lab's directory. With the
	// namespaces' processes gone their mounts are gone, so they detach.
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, bf := range loops {
		b, err := os.ReadFile(bf)
		if err != nil {
			continue
		}
		img := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		id, ok := labIDOfPath(img)
		if !ok || live[id] {
			continue
		}
		dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(bf)))
		var err2 error
		for range 50 {
			if _, _, err2 = run(ctx, "", nil, os.Environ(), nil, nil, losetupProg, "--detach", dev); err2 == nil || !attached(dev) {
				err2 = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err2 != nil {
			errs = append(errs, err2)
		}
		if _, ok := dirs[id]; !ok {
			dirs[id] = ""
		}
		if dirs[id] == "" {
			dirs[id] = labDirOf(img, id)
		}
	}
	for _, ns := range nsGone {
		if _, _, err := run(ctx, "", nil, os.Environ(), nil, nil, ipProg, "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}
	for id, dir := range dirs {
		if dir == "" {
			dir = filepath.Join(os.TempDir(), dirPrefix+id)
		}
		if filepath.Base(dir) != dirPrefix+id {
			errs = append(errs, fmt.Errorf("lab registry entry %s names %q, not a lab directory; left alone", id, dir))
			continue
		}
		if _, err := os.Stat(dir); err == nil {
			if err := removeLabDir(dir); err != nil {
				errs = append(errs, err)
			}
		}
		if err := os.Remove(filepath.Join(registryDir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// labIDOfPath finds the lab id in a path below a lab directory.
func labIDOfPath(p string) (string, bool) {
	for _, part := range strings.Split(p, "/") {
		if id, ok := strings.CutPrefix(part, dirPrefix); ok && len(id) == 8 {
			if _, err := strconv.ParseUint(id, 16, 32); err == nil {
				return id, true
			}
		}
	}
	return "", false
}

// labDirOf is the lab directory part of a path below it.
func labDirOf(p, id string) string {
	i := strings.Index(p, "/"+dirPrefix+id)
	if i < 0 {
		return ""
	}
	return p[:i+len(dirPrefix+id)+1]
}
