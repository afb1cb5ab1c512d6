package jobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/digest"
	"github.com/borgkit/borgkit/roles/jobs/alert"
	"github.com/borgkit/borgkit/roles/jobs/state"
)

// samplesPerRepo is how many unchanged files the restore test extracts
// from a repo without a canary.
const samplesPerRepo = 3

// maxSample bounds a sampled file: it is extracted into memory to hash, and
// a VM image would make the monthly test as long as a restore.
const maxSample = 64 << 20

// RestoreTest proves the latest archive of each repo is extractable and
// intact: the repo's canary file, or a few random files that have not
// changed since the archive was made, are extracted and compared with the
// live files by SHA-256.
func RestoreTest(ctx context.Context, e *Env) error {
	run, ctx, stop, err := e.Begin(ctx, "restore_test")
	if err != nil {
		return err
	}
	defer stop()
	lock, err := state.LockContext(ctx, e.LockPath, e.LockWait)
	if err != nil {
		return run.Finish(state.Failed, 1, "cannot take the borg lock: "+err.Error(), nil, nil)
	}
	defer lock.Unlock()
	var stats state.RestoreStats
	var failures []alert.RestoreTestReport
	for i := range e.Host.Repos {
		r := &e.Host.Repos[i]
		files, fails := e.restoreRepo(ctx, r)
		stats.Files = append(stats.Files, files...)
		failures = append(failures, fails...)
	}
	if len(failures) == 0 {
		return run.Finish(state.OK, 0, fmt.Sprintf("%d files restored and matched", len(stats.Files)), stats, nil)
	}
	for _, f := range failures {
		e.Mail(ctx, alert.RestoreTestFailed(f))
	}
	if err := run.Finish(state.Failed, 1, fmt.Sprintf("%d restore checks failed", len(failures)), stats, nil); err != nil {
		return err
	}
	return fmt.Errorf("restore test: %d failed", len(failures))
}

// restoreRepo tests the newest of the repo's own archives (when it backs
// up sources) and the newest archive of each of its guests.
func (e *Env) restoreRepo(ctx context.Context, r *config.Repo) ([]state.RestoredFile, []alert.RestoreTestReport) {
	var files []state.RestoredFile
	var fails []alert.RestoreTestReport
	if len(r.Sources) > 0 {
		files, fails = e.restoreArchive(ctx, r, r.ArchivePrefixOrDefault(), "", r.Canary)
	}
	for _, g := range r.Guests() {
		f, fl := e.restoreArchive(ctx, r, g.ArchivePrefix(), g.Kind+" "+g.Name, "")
		files, fails = append(files, f...), append(fails, fl...)
	}
	return files, fails
}

// restoreArchive extracts the canary, or a sample of unchanged files, from
// the newest archive starting with prefix; guest names the VM or container
// it belongs to.
func (e *Env) restoreArchive(ctx context.Context, r *config.Repo, prefix, guest, canary string) ([]state.RestoredFile, []alert.RestoreTestReport) {
	report := func(archive, file, problem string, code int, out string) alert.RestoreTestReport {
		if guest != "" {
			problem = guest + ": " + problem
		}
		return alert.RestoreTestReport{Repo: r.Path, Archive: archive, File: file, Started: e.Now(), Problem: problem,
			ExitCode: code, Output: out, LogPath: e.LogPath}
	}
	res, err := e.borg(ctx, r, "list", "--last", "1", "--short", "--glob-archives", prefix+"*", r.BorgLocation())
	archive := strings.TrimSpace(string(res.Stdout))
	if err != nil || archive == "" {
		return nil, []alert.RestoreTestReport{report("", "", "the repository has no archive to restore from", exitCode(res, err), tailText(res.Stderr, 8))}
	}
	var paths []string
	if canary != "" {
		paths = []string{canary}
	} else {
		paths, err = e.unchangedSample(ctx, r, archive)
		if err != nil {
			return nil, []alert.RestoreTestReport{report(archive, "", "listing the archive failed", 1, err.Error())}
		}
	}
	var files []state.RestoredFile
	var fails []alert.RestoreTestReport
	for _, p := range paths {
		f := state.RestoredFile{Repo: r.Name, Guest: guest, Archive: archive, Path: p, Status: "match"}
		// borg stores paths without the leading slash.
		res, err := e.borg(ctx, r, "extract", "--stdout", r.BorgLocation()+"::"+archive, strings.TrimPrefix(p, "/"))
		got := sha256.Sum256(res.Stdout)
		f.SHA256, f.Bytes = hex.EncodeToString(got[:]), int64(len(res.Stdout))
		switch {
		case err != nil:
			f.Status = "error"
			fails = append(fails, report(archive, p, "borg extract failed", exitCode(res, err), tailText(res.Stderr, 8)))
		default:
			live, _, lerr := digest.File(p)
			if lerr != nil || live != f.SHA256 {
				f.Status = "mismatch"
				why := fmt.Sprintf("the extracted file (sha256 %s, %d bytes) differs from the live file", f.SHA256[:16], f.Bytes)
				if lerr != nil {
					why = "the live file cannot be read to compare: " + lerr.Error()
				}
				fails = append(fails, report(archive, p, why, 0, ""))
			}
		}
		files = append(files, f)
	}
	return files, fails
}

// sameMicrosecond reports whether mtime is what borg's isomtime shows.
// borg rounds to the nearest microsecond (…56789 ns shows as …57 µs);
// formatting mtime would truncate, and lose about half of all files.
func sameMicrosecond(mtime time.Time, isomtime string) bool {
	at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", isomtime, time.Local)
	if err != nil {
		return false
	}
	d := mtime.Sub(at)
	return d > -time.Microsecond && d < time.Microsecond
}

// unchangedSample picks regular files whose live copy still has the size
// and mtime the archive recorded, so a difference means damage, not an
// edit made since.
func (e *Env) unchangedSample(ctx context.Context, r *config.Repo, archive string) ([]string, error) {
	res, err := e.borg(ctx, r, "list", "--format", "{type} {size} {isomtime} {path}{NL}", r.BorgLocation()+"::"+archive)
	if err != nil {
		return nil, fmt.Errorf("borg list: %s", tailText(res.Stderr, 4))
	}
	var candidates []string
	sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) != 4 || f[0] != "-" {
			continue
		}
		p := "/" + f[3]
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxSample || fmt.Sprint(fi.Size()) != f[1] ||
			!sameMicrosecond(fi.ModTime(), f[2]) {
			continue
		}
		candidates = append(candidates, p)
	}
	rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	if len(candidates) > samplesPerRepo {
		candidates = candidates[:samplesPerRepo]
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("no file in %s is unchanged since the archive; set a canary for repo %s", archive, r.Name)
	}
	return candidates, nil
}
