package bench

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, got)
	}
}

func sampleReport() *Report {
	return &Report{
		Started: time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC),
		Version: "v1.2.3 (go1.26.0, linux/amd64)",
		Machine: Machine{CPUs: 2, CPUModel: "AMD EPYC", MemGiB: 23.5, OS: "Debian GNU/Linux 12 (bookworm)", Kernel: "6.1.0",
			LoadStart: "1.00 0.50 0.25", LoadEnd: "2.00 1.00 0.50", Tools: []string{"borg 1.2.4", "borgmatic 1.7.7"}},
		Data: "2000 files, 300.0 MiB",
		Runs: 5,
		Rows: []Row{
			{Item: "1", What: "nightly: a | b", Kit: Seconds(3.2), Peer: Seconds(3.1), Ratio: Summarize([]float64{1.01, 1.02, 0.99, 1.05, 1.03}), Goal: Goal{"<=", 1.03}},
			{Item: "2", What: "provisioning", Kit: Seconds(0.09), Peer: Seconds(17), Ratio: Summarize([]float64{190, 200, 210, 150, 400}), Goal: Goal{">=", 30}},
			{Item: "4", What: "re-send share", Kit: Bytes(12 << 20), Peer: Bytes(250 << 20), Ratio: Summarize([]float64{0.05, 0.9, 0}), Percent: true},
			{Item: "4", What: "week", Kit: Bytes(0), Peer: Bytes(3 << 30), Ratio: Summarize([]float64{0}), Goal: Goal{"<=", 1}, GoalText: "< 1"},
			{Item: "4", What: "bound", Unmeasured: "the compaction night freed nothing", Goal: Goal{"<=", 3}},
			{Item: "6", What: "drill", Kit: Bytes(40<<20) + "/s", Peer: Bytes(44<<20) + "/s", Ratio: Summarize([]float64{0.9, 0.91}), Goal: Goal{">=", 0.95}},
			{Item: "8", What: "link, no change", Kit: Seconds(0.8), Peer: Seconds(26), Ratio: Summarize([]float64{32, 30, 35}), Goal: Goal{">=", 25}, Limit: 1, KitSeconds: 0.8},
			{Item: "8", What: "link, slow no change", Kit: Seconds(1.2), Peer: Seconds(36), Ratio: Summarize([]float64{30, 30, 30}), Goal: Goal{">=", 25}, Limit: 1, KitSeconds: 1.2},
			{Item: "8", What: "link, first run", Kit: Seconds(9), Peer: Seconds(40), Ratio: Summarize([]float64{4.4, 4.5, 4.6}), Limit: 8, KitSeconds: 9},
			{Item: "7", What: "start-up", Kit: Seconds(0.0042), Peer: Seconds(0.7), Ratio: Summarize([]float64{12.5, 166})},
		},
		Notes: []string{"a note"},
		Wall:  9*time.Minute + 12*time.Second,
	}
}

func TestMarkdownGolden(t *testing.T) {
	var b bytes.Buffer
	sampleReport().Markdown(&b)
	golden(t, "table.md", b.Bytes())
}

func TestGoalVerdicts(t *testing.T) {
	var b bytes.Buffer
	sampleReport().Markdown(&b)
	out := b.String()
	for _, want := range []string{
		"| 1.02× (0.99× – 1.05×, n=5) | ≤ 1.03 | yes |",
		"| 200× (150× – 400×, n=5) | ≥ 30 | yes |",
		"| 0.91× (0.90× – 0.91×, n=2) | ≥ 0.95 | **no** |",
		"| not measured: the compaction night freed nothing | ≤ 3 | — |",
		"| 32.0× (30.0× – 35.0×, n=3) | ≥ 25; borgkit ≤ 1 s | yes |",
		"| 30.0× (30.0× – 30.0×, n=3) | ≥ 25; borgkit ≤ 1 s | **no** |",
		"| 4.50× (4.40× – 4.60×, n=3) | borgkit ≤ 8 s | **no** |",
		"nightly: a \\| b",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestReplaceBetweenMarkers(t *testing.T) {
	doc := []byte("# x\n\n## Performance\n\nintro\n\n" + beginMarker + "\nold table\n" + endMarker + "\n\n## Next\n")
	got, err := replaceBetween(doc, []byte("new table\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# x\n\n## Performance\n\nintro\n\n" + beginMarker + "\nnew table\n" + endMarker + "\n\n## Next\n"
	if string(got) != want {
		t.Fatalf("got:\n%s", got)
	}
	if _, err := replaceBetween([]byte("no markers"), nil); err == nil {
		t.Fatal("no error without markers")
	}
}

func TestToolVersion(t *testing.T) {
	for line, want := range map[string]string{
		"borg 1.2.4":                        "borg 1.2.4",
		"ansible-playbook [core 2.14.18]":   "ansible-playbook 2.14.18",
		"rsync  version 3.2.7  protocol 31": "rsync 3.2.7",
	} {
		name, _, _ := strings.Cut(line, " ")
		if got := toolVersion(name, line); got != want {
			t.Errorf("toolVersion(%q) = %q, want %q", line, got, want)
		}
	}
}

func TestCompareItems(t *testing.T) {
	items := []string{"10", "2", "x", "9", "1", "4"}
	slices.SortStableFunc(items, compareItems)
	if want := []string{"1", "2", "4", "9", "10", "x"}; !slices.Equal(items, want) {
		t.Fatalf("sorted %v, want %v", items, want)
	}
}
