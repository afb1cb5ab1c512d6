package state

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/borgkit/borgkit/provision/layout"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func TestTextfileGolden(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 6, 12, h, m, 0, 0, time.UTC) }
	recs := map[string]*Record{
		"nightly": {Job: "nightly", Status: OK, Started: at(0, 0), Finished: at(0, 42), ExitCode: 0,
			Duration: 42*time.Minute + 500*time.Millisecond, LastSuccess: at(0, 42)},
		"sync": {Job: "sync", Status: Running, Started: at(2, 0), LastSuccess: time.Date(2026, 6, 11, 2, 20, 0, 0, time.UTC)},
		"check": {Job: "check", Status: Failed, Started: at(9, 0), Finished: at(9, 15), ExitCode: 1,
			Duration: 15 * time.Minute},
		"restore_test": {Job: "restore_test", Status: Terminated, Started: at(10, 0), ExitCode: -1},
		"verify": {Job: "verify", Status: Terminated, Signal: "SIGTERM", Started: at(3, 0), Finished: at(3, 5), ExitCode: 143,
			Duration: 5 * time.Minute, LastSuccess: time.Date(2026, 5, 15, 5, 0, 0, 0, time.UTC)},
	}
	dir := filepath.Join(t.TempDir(), "textfile")
	if err := WriteTextfile(dir, recs); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, layout.TextfileName))
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, layout.TextfileName))
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only %s", len(ents), layout.TextfileName)
	}
	golden := filepath.Join("testdata", "borgkit.prom")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("textfile differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
	if len(Textfile(nil)) == 0 {
		t.Error("no HELP/TYPE lines without records")
	}
}

func TestLabelValue(t *testing.T) {
	if got := labelValue("a\"b\\c\nd"); got != `a\"b\\c\nd` {
		t.Errorf("labelValue = %s", got)
	}
}
