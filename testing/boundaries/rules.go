package boundaries

import (
	"fmt"
	"sort"
	"strings"
)

// Module is the import path every rule is relative to.
const Module = "github.com/borgkit/borgkit"

// Rule says that no package under From (but those under Exempt) may
// depend, directly or through others, on a package under any of Never
// but those under Allow. Paths are relative to Module; a path covers
// itself and everything below it, "" the whole module.
type Rule struct {
	From   string
	Exempt []string
	Never  []string
	Allow  []string
	Why    string
}

// Rules are the boundaries the layout relies on.
var Rules = []Rule{
	{From: "provision", Never: []string{"roles", "recovery", "cmd", "testing", "templates"},
		Why: "the engine (config, layout, host, plan, steps, borg, tools) is the ground floor: it knows no role, job or recovery tool"},
	{From: "provision/layout", Never: []string{""},
		Why: "the host's contract stands alone, so everything can ask it"},
	{From: "provision/config", Never: []string{""}, Allow: []string{"provision/layout"},
		Why: "the config schema depends only on the host's contract"},
	{From: "roles/recipe", Never: []string{"roles/jobs"},
		Why: "provisioning recipes and the runtime jobs are siblings that never import each other"},
	{From: "roles/jobs", Never: []string{"roles/recipe", "provision/steps", "provision/plan"},
		Why: "the runtime jobs never reach into provisioning; what both need lives in provision/layout, provision/borg, provision/host"},
	{From: "recovery", Never: []string{"roles/recipe"},
		Why: "the recovery tools do not provision"},
	{From: "recovery/bundle", Never: []string{"roles"},
		Why: "the bundle takes paths from provision/layout, not from the roles or the jobs"},
	{From: "recovery/luks2", Never: []string{""},
		Why: "the LUKS2 verifier is a leaf: it reads a header, nothing else"},
	{From: "", Exempt: []string{"testing"}, Never: []string{"testing"},
		Why: "shipped code never depends on a test harness"},
}

// under reports whether import path p is rel or below it ("" is every
// package of the module).
func under(p, rel string) bool {
	full := Module
	if rel != "" {
		full += "/" + rel
	}
	return p == full || strings.HasPrefix(p, full+"/")
}

// Violations lists, for deps (a package's import path → its transitive
// dependencies), every dependency that breaks a rule.
func Violations(deps map[string][]string, rules []Rule) []string {
	var out []string
	for pkg, ds := range deps {
		for _, r := range rules {
			if !under(pkg, r.From) || anyUnder(pkg, r.Exempt) {
				continue
			}
			for _, d := range ds {
				if !under(d, "") || anyUnder(d, r.Allow) {
					continue
				}
				for _, n := range r.Never {
					if under(d, n) {
						out = append(out, fmt.Sprintf("%s depends on %s: %s", rel(pkg), rel(d), r.Why))
						break
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func anyUnder(p string, rels []string) bool {
	for _, r := range rels {
		if under(p, r) {
			return true
		}
	}
	return false
}

func rel(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, Module), "/") }
