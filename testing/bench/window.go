package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

// The nightly window's bench (item 10): the first seed's five repos on one
// backup disk, the data set split in five.
const (
	windowHost     = "five"
	windowRepos    = 5
	windowParallel = 2
)

var windowTmpl = template.Must(template.New("window").Parse(jobsHeader + `hosts:
  - name: ` + windowHost + `
    role: server
    address: 127.0.0.1
    nightly: {parallel: {{.Parallel}}}
    compaction: {weekdays: [{{.NotToday}}]}
    repos:
{{- range .Repos}}
      - name: {{.Name}}
        path: {{printf "%q" .Repo}}
        sources: [{{printf "%q" .Data}}]
        encryption: repokey-blake2
        compression: zstd
        passphrase_file: {{printf "%q" .Pass}}
{{- end}}
`))

// windowRepo is one of the five: its share of the data, borgkit's repo
// and the raw peer's.
type windowRepo struct {
	Name, Data, Repo, Pass string
	ds                     Dataset
	raw, rawPass           string
}

// windowBench runs borgkit's nightly of the five repos at parallel: 2
// against the same five raw borg create + prune one after another.
type windowBench struct {
	s     *Site
	repos []windowRepo
}

func newWindowBench(s *Site, ds Dataset) *windowBench {
	w := &windowBench{s: s}
	for i := range windowRepos {
		name := fmt.Sprintf("part%d", i+1)
		w.repos = append(w.repos, windowRepo{
			Name: name, Data: s.path("five", "data", name),
			Repo: s.path("five", "kit", name), Pass: s.path("five", "keys", name+".pass"),
			raw: s.path("five", "raw", name), rawPass: s.path("five", "keys", name+"-raw.pass"),
			// A fifth of the files and bytes, each part seeded apart.
			ds: Dataset{Seed: ds.Seed*100 + uint64(i), Files: ds.Files / windowRepos, Bytes: ds.Bytes / windowRepos},
		})
	}
	return w
}

func (w *windowBench) config() string { return w.s.path("five", "jobs.yaml") }

// setup generates the five parts, makes the ten repos and writes the
// config; the first, full backups are not measured.
func (w *windowBench) setup(ctx context.Context) error {
	for _, r := range w.repos {
		if err := r.ds.Generate(r.Data); err != nil {
			return err
		}
		for _, p := range [][2]string{{r.Repo, r.Pass}, {r.raw, r.rawPass}} {
			if err := w.s.initRepo(ctx, p[0], p[1]); err != nil {
				return err
			}
		}
	}
	err := writeConfig(w.config(), windowTmpl, struct {
		Parallel int
		NotToday string
		Repos    []windowRepo
	}{windowParallel, notToday(), w.repos})
	if err != nil {
		return err
	}
	return parallel(
		func() error { _, err := w.kit(ctx); return err },
		func() error { _, err := w.raw(ctx); return err })
}

// kit is one `borgkit job nightly` of the five repos.
func (w *windowBench) kit(ctx context.Context) (Result, error) {
	res, err := w.s.borgkit("--config", w.config(), "job", "nightly", "--host", windowHost,
		"--state-dir", w.s.path("five", "state"), "--log-dir", w.s.path("five", "log"), "--lock", w.s.path("five", "lock")).Run(ctx)
	if err != nil {
		return res, fmt.Errorf("borgkit job nightly of the five repos: %w", err)
	}
	return res, nil
}

// raw is the nightly's create and prune of each repo typed by hand, one
// repo after another: the very argv the job runs.
func (w *windowBench) raw(ctx context.Context) (Result, error) {
	var total Result
	for _, r := range w.repos {
		for _, args := range [][]string{
			{"create", "--stats", "--json", "--compression", "zstd", "--exclude-caches", r.raw + "::nightly-{now:%Y-%m-%dT%H:%M:%S}", r.Data},
			{"prune", "--list", "--glob-archives", "nightly-*", "--keep-daily", "1", "--keep-weekly", "0", "--keep-monthly", "0", r.raw},
		} {
			res, err := w.s.borg(r.rawPass, args...).Run(ctx)
			if err != nil {
				return total, err
			}
			total.Seconds += res.Seconds
		}
	}
	return total, nil
}

// Rows measures the rounds: each changes the five parts as a night does,
// then runs both sides, alternating which goes first.
func (w *windowBench) Rows(ctx context.Context, runs int, logf func(string, ...any)) ([]Row, error) {
	logf("10: the five repos' first backups")
	if err := w.setup(ctx); err != nil {
		return nil, err
	}
	var kit, raw []float64
	for i := range Warmup + runs {
		logf("10: round %d of %d", i+1, Warmup+runs)
		for _, r := range w.repos {
			if _, err := r.ds.Night(r.Data, i+1); err != nil {
				return nil, err
			}
		}
		sides := []func() (Result, error){func() (Result, error) { return w.kit(ctx) }, func() (Result, error) { return w.raw(ctx) }}
		var k, p Result
		var err error
		if i%2 == 0 {
			if k, err = sides[0](); err == nil {
				p, err = sides[1]()
			}
		} else {
			if p, err = sides[1](); err == nil {
				k, err = sides[0]()
			}
		}
		if err != nil {
			return nil, err
		}
		if i >= Warmup {
			kit, raw = append(kit, k.Seconds), append(raw, p.Seconds)
		}
	}
	if err := w.sameArchives(ctx); err != nil {
		return nil, err
	}
	return []Row{{Item: "10",
		What: fmt.Sprintf("nightly window: `borgkit job nightly` of the first seed's five repos at `parallel: %d` / the same five raw `borg create` + `prune` one after another", windowParallel),
		Kit:  Seconds(Summarize(kit).Median), Peer: Seconds(Summarize(raw).Median),
		Ratio: Summarize(Ratios(kit, raw)), Goal: Goal{"<=", 0.7}}}, nil
}

// sameArchives checks both sides did the same work: in each pair of repos
// the same archives (one, retention keeps a day) of the same files.
func (w *windowBench) sameArchives(ctx context.Context) error {
	type info struct {
		Archives []struct {
			Stats struct {
				NFiles       int64 `json:"nfiles"`
				OriginalSize int64 `json:"original_size"`
			} `json:"stats"`
		} `json:"archives"`
	}
	look := func(repo, pass string) (string, error) {
		res, err := w.s.borg(pass, "info", "--json", "--glob-archives", "nightly-*", repo).Run(ctx)
		if err != nil {
			return "", err
		}
		var v info
		if err := json.Unmarshal(res.Stdout, &v); err != nil {
			return "", fmt.Errorf("borg info %s: %w", repo, err)
		}
		var parts []string
		for _, a := range v.Archives {
			parts = append(parts, fmt.Sprintf("%d files, %d bytes", a.Stats.NFiles, a.Stats.OriginalSize))
		}
		return strings.Join(parts, "; "), nil
	}
	for _, r := range w.repos {
		k, err := look(r.Repo, r.Pass)
		if err != nil {
			return err
		}
		p, err := look(r.raw, r.rawPass)
		if err != nil {
			return err
		}
		if k != p || k == "" {
			return fmt.Errorf("10: %s: borgkit's archives (%s) are not the raw borg's (%s)", r.Name, k, p)
		}
	}
	if _, err := os.Stat(w.s.path("five", "state", "nightly.json")); err != nil {
		return fmt.Errorf("10: the nightly left no record: %w", err)
	}
	return nil
}

// windowNote says how item 10 is measured.
const windowNote = "10: the data set split in five (a fifth of its files and bytes each, seeded apart), one repo each, all on one disk as in the first seed. Each round changes every part as a night does, then borgkit's nightly backs the five up at `parallel: 2` (so two at once on the one disk) and the raw borg commands (the argv the job runs) back up the same parts into five repos of their own one after another, alternating which side goes first. No compaction on either side (the policy's weekday is not today). After the rounds every pair of repos must hold the same archives of the same files and bytes. The gain needs a CPU left idle: borg is CPU-bound here, and Linux's autogroup scheduler gives a session its share of a busy machine however many processes it runs, so on a machine saturated by other work two borgs at once each take twice as long and the ratio tends to 1."
