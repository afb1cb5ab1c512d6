package drill

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/borgkit/borgkit/recovery/bundle"
)

// reportDir is the bundle's drill-log directory when it is writable, else
// opts.ReportDir. The owner-write bit is honoured even for root: a bundle
// sealed 0500 is meant to stay as written, and only its owner's chmod
// invites the report in.
func reportDir(opts Options) (string, error) {
	logDir := filepath.Join(opts.Bundle, bundle.DrillLogDir)
	if fi, err := os.Stat(logDir); err == nil && fi.IsDir() && fi.Mode().Perm()&0o200 != 0 && syscall.Access(logDir, 2) == nil {
		return logDir, nil
	}
	dir := opts.ReportDir
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("report directory: %w", err)
	}
	return dir, nil
}

// writeReports writes drill-TIME.md and drill-TIME.json. Neither holds a
// secret: file names, hashes of sampled files, timings.
func writeReports(res *Result, opts Options) ([]string, error) {
	dir, err := reportDir(opts)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(dir, "drill-"+res.Started.UTC().Format("20060102T150405Z"))
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	var md strings.Builder
	WriteMarkdown(&md, res)
	var files []string
	for _, f := range []struct {
		path string
		data []byte
	}{{base + ".json", append(js, '\n')}, {base + ".md", []byte(md.String())}} {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return files, fmt.Errorf("write report: %w", err)
		}
		files = append(files, f.path)
	}
	return files, nil
}

// WriteMarkdown renders the drill report.
func WriteMarkdown(w io.Writer, r *Result) {
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED"
	}
	site := r.Site
	if site == "" {
		site = r.Server
	}
	fmt.Fprintf(w, "# Recovery drill — %s: %s\n\n", site, verdict)
	fmt.Fprintf(w, "- Bundle: `%s`\n- Restored from: %s `%s`\n", r.Bundle, r.Source, r.Target)
	fmt.Fprintf(w, "- Started: %s, took %s\n", r.Started.UTC().Format("2006-01-02 15:04:05 UTC"), roundDur(r.Duration))
	fmt.Fprintf(w, "- Sample: %d random files per repository and the canaries, seed %d (repeat with `--seed %d`)\n\n", r.Samples, r.Seed, r.Seed)

	fmt.Fprintf(w, "## Figures\n\n| Figure | Value |\n| --- | --- |\n")
	fmt.Fprintf(w, "| RPO: age of the newest archive (worst repository) | %s |\n", roundDur(r.RPO))
	fmt.Fprintf(w, "| First file restored, from the start of the drill | %s |\n", roundDur(r.TimeToFirstFile))
	fmt.Fprintf(w, "| RTO: last sampled file restored and verified | %s |\n", roundDur(r.RTO))
	fmt.Fprintf(w, "| Files restored | %d (%s) |\n", r.Files, humanBytes(r.Bytes))
	fmt.Fprintf(w, "| Extraction throughput | %s/s |\n\n", humanBytes(int64(r.Throughput)))

	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "## Problems\n\n")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "- %s\n", oneLine(p))
		}
		fmt.Fprintln(w)
	}
	if d := r.Disk; d != nil {
		fmt.Fprintf(w, "## Disk %s\n\n- Device: `%s`, LUKS UUID `%s`\n- Unlocked and mounted read-only in %s", d.ID, d.Device, d.LUKSUUID, roundDur(d.UnlockDuration))
		if d.HeaderBackup {
			fmt.Fprintf(w, ", **with the header backup**: %s", oneLine(d.Note))
		}
		fmt.Fprintf(w, "\n\n```sh\n%s\n```\n\n", strings.Join(d.Commands, "\n"))
	}
	if len(r.Repos) > 0 {
		fmt.Fprintf(w, "## Repositories\n\n| Repository | Status | Check | Archives | Newest | RPO | Files | First file | RTO | Throughput | Full restore (est.) |\n")
		fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, rr := range r.Repos {
			check := "ok"
			if !rr.CheckOK {
				check = "FAILED"
			}
			if rr.Status == "skipped" || rr.Copy == "" {
				check = "—"
			}
			fmt.Fprintf(w, "| %s/%s | %s | %s | %d | %s | %s | %d (%s) | %s | %s | %s/s | %s |\n",
				rr.Host, rr.Name, rr.Status, check, rr.Archives, cell(rr.Latest), roundDur(rr.RPO), len(rr.Files), humanBytes(rr.Bytes),
				roundDur(rr.TimeToFirstFile), roundDur(rr.RTO), humanBytes(int64(rr.Throughput)), roundDur(rr.EstimatedFullRestore))
		}
		fmt.Fprintln(w)
		for _, rr := range r.Repos {
			if len(rr.Files) == 0 && len(rr.Problems) == 0 {
				continue
			}
			fmt.Fprintf(w, "### %s/%s\n\n", rr.Host, rr.Name)
			if rr.Copy != "" {
				fmt.Fprintf(w, "Copy `%s`, archive `%s` (%d files, %s).\n\n", rr.Copy, rr.Latest, rr.ArchiveFiles, humanBytes(rr.ArchiveBytes))
			}
			for _, p := range rr.Problems {
				fmt.Fprintf(w, "- **%s**\n", oneLine(p))
			}
			if len(rr.Problems) > 0 {
				fmt.Fprintln(w)
			}
			if len(rr.Files) == 0 {
				continue
			}
			fmt.Fprintf(w, "| File | Size | SHA-256 | Status | Live |\n| --- | --- | --- | --- | --- |\n")
			for _, f := range rr.Files {
				name := "`" + cell(f.Path) + "`"
				if f.Canary {
					name += " (canary)"
				}
				fmt.Fprintf(w, "| %s | %s | `%s` | %s | %s |\n", name, humanBytes(f.Size), short(f.SHA256), f.Status, cell(f.Live))
			}
			fmt.Fprintln(w)
		}
	}
	if r.Verify != nil {
		fmt.Fprintf(w, "## Bundle verification\n\n")
		for _, it := range r.Verify.Items {
			fmt.Fprintf(w, "- %s %s %s: %s\n", it.Status, it.Kind, it.Name, oneLine(it.Detail))
		}
		for _, warn := range r.Verify.Warnings {
			fmt.Fprintf(w, "- warning: %s\n", oneLine(warn))
		}
	}
}

// cell makes a value safe inside a Markdown table cell.
func cell(s string) string {
	if s == "" {
		return "—"
	}
	return strings.NewReplacer("|", `\|`, "\n", " ", "\t", "␉", "`", "'").Replace(s)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// roundDur shows a duration at a precision a person reads.
func roundDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
