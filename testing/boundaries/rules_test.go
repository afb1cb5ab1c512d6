package boundaries

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// deps lists every package of the module with its transitive
// dependencies, as the go command resolves them (tests left out: a test
// may well tie two siblings together).
func deps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps", Module+"/...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		m[p.ImportPath] = p.Deps
	}
	if len(m) < 20 {
		t.Fatalf("go list found %d packages; the module has more", len(m))
	}
	return m
}

func TestTheModuleKeepsItsBoundaries(t *testing.T) {
	for _, v := range Violations(deps(t), Rules) {
		t.Error(v)
	}
}

// The checker itself: a graph that breaks rules is caught, rule by rule.
func TestViolationsAreFound(t *testing.T) {
	p := func(rel string) string { return Module + "/" + rel }
	graph := map[string][]string{
		p("roles/recipe"):         {p("provision/plan"), p("roles/jobs/state"), "fmt"},
		p("roles/jobs"):           {p("provision/steps"), p("provision/layout")},
		p("recovery/bundle"):      {p("roles/recipe"), p("provision/layout")},
		p("provision/config"):     {p("provision/layout"), p("provision/host")},
		p("recovery/luks2"):       {"crypto/sha256"},
		p("provision/host"):       {p("testing/sshd")},
		p("testing/lab"):          {p("testing/sshd"), p("roles/jobs")},
		p("provision/layout"):     nil,
		p("recovery/drill"):       {p("roles/jobs/state")},
		p("roles/jobs/status"):    {p("roles/jobs")},
		p("cmd/borgkit"):          {p("roles/recipe"), p("roles/jobs")},
		p("roles/recipe/subpart"): {p("roles/jobs/alert")},
	}
	got := Violations(graph, Rules)
	want := []string{
		"provision/config depends on provision/host: " + Rules[2].Why,
		"provision/host depends on testing/sshd: " + Rules[0].Why,
		"provision/host depends on testing/sshd: " + Rules[8].Why,
		"recovery/bundle depends on roles/recipe: " + Rules[5].Why,
		"recovery/bundle depends on roles/recipe: " + Rules[6].Why,
		"roles/jobs depends on provision/steps: " + Rules[4].Why,
		"roles/recipe depends on roles/jobs/state: " + Rules[3].Why,
		"roles/recipe/subpart depends on roles/jobs/alert: " + Rules[3].Why,
	}
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("violations:\n got %q\nwant %q", got, want)
	}
}
