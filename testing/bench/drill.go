package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// drillSamples is how many files the drill extracts: a fifth of the data
// set, so six rounds fit the bench's time, drawn with a fixed seed so
// every round and borg extract take the very same files.
const drillSamples = 400

// drillRows is item 6: the drill's extraction from the offsite mirror,
// with only the recovery bundle, against a plain borg extract of the same
// files of the same archive from the same mirror.
func drillRows(ctx context.Context, s *Site, runs int) ([]Row, error) {
	bundle := s.path("bundle")
	if _, err := s.borgkit("--config", s.ProvConfig(), "recovery-bundle", "--to", bundle, "--root", s.Tree, "--host", provHost).Run(ctx); err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	mirror := s.path("mirror", hostKit)
	repo := mirror + "/" + repoName
	// borg on the mirror runs as on the machine that restores: with a
	// cache and security dir of its own, fresh each time, as the drill's.
	restore := func(args ...string) (Cmd, error) {
		base := s.path("restore-base")
		if err := os.RemoveAll(base); err != nil {
			return Cmd{}, err
		}
		c := s.borg(s.KitPass(), args...)
		c.Env = append(c.Env, "BORG_BASE_DIR="+base)
		return c, nil
	}
	list, err := restore("list", "--bypass-lock", "--last", "1", "--short", repo)
	if err != nil {
		return nil, err
	}
	res, err := list.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	latest := strings.TrimSpace(string(res.Stdout))
	work := s.path("extract")
	fresh := func() (string, error) {
		if err := os.RemoveAll(work); err != nil {
			return "", err
		}
		return work, os.MkdirAll(work, 0o700)
	}
	var paths []string // what the drill sampled, as the archive names them
	drill := func(ctx context.Context) (Result, error) {
		dir, err := fresh()
		if err != nil {
			return Result{}, err
		}
		res, err := s.borgkit("drill", "--json", "--bundle", bundle, "--mirror", mirror, "--repo", repoName,
			"--samples", fmt.Sprint(drillSamples), "--seed", "1", "--work-dir", dir,
			"--report-dir", s.path("drill-report"), "--state-dir", s.path("state", "drill")).Run(ctx)
		if err != nil {
			return res, err
		}
		var out struct {
			OK         bool    `json:"ok"`
			Bytes      int64   `json:"bytes"`
			Throughput float64 `json:"throughput_bytes_per_second"`
			Repos      []struct {
				Files []struct {
					Path string `json:"path"`
				} `json:"files"`
			} `json:"repos"`
		}
		// The JSON document comes first; "report: FILE" lines follow it.
		if err := json.NewDecoder(bytes.NewReader(res.Stdout)).Decode(&out); err != nil {
			return res, fmt.Errorf("drill --json: %w", err)
		}
		if paths == nil && len(out.Repos) == 1 {
			for _, f := range out.Repos[0].Files {
				paths = append(paths, strings.TrimPrefix(f.Path, "/"))
			}
		}
		if !out.OK || out.Throughput <= 0 {
			return res, fmt.Errorf("drill: not ok (throughput %v)", out.Throughput)
		}
		// Seconds is the drill's own extraction time, for bytes/second.
		res.Seconds = float64(out.Bytes) / out.Throughput
		res.Bytes = float64(out.Bytes)
		return res, nil
	}
	extract := func(ctx context.Context) (Result, error) {
		if len(paths) == 0 {
			return Result{}, fmt.Errorf("drill: the drill reported no files to extract")
		}
		dir, err := fresh()
		if err != nil {
			return Result{}, err
		}
		c, err := restore(append([]string{"extract", "--bypass-lock", repo + "::" + latest}, paths...)...)
		if err != nil {
			return Result{}, err
		}
		c.Dir = dir
		res, err := c.Run(ctx)
		if err != nil {
			return res, err
		}
		n, err := treeBytes(dir)
		res.Bytes = float64(n)
		return res, err
	}
	if err := os.MkdirAll(s.path("drill-report"), 0o700); err != nil {
		return nil, err
	}
	dr, br, err := pairs(ctx, runs, drill, extract)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	os.RemoveAll(work)
	rate := func(rs []Result) []float64 {
		out := make([]float64, len(rs))
		for i, r := range rs {
			out[i] = r.Bytes / r.Seconds
		}
		return out
	}
	d, b := rate(dr), rate(br)
	return []Row{{Item: "6", What: fmt.Sprintf("drill extraction from the offsite mirror (%d files, same for both): throughput of `borgkit drill` / `borg extract`", drillSamples),
		Kit: Bytes(Summarize(d).Median) + "/s", Peer: Bytes(Summarize(b).Median) + "/s", Ratio: Summarize(Ratios(d, b)), Goal: Goal{">=", 0.95}}}, nil
}
