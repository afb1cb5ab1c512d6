package steps_test

import (
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/layout"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
)

const marker = "Managed by borgkit"

// The marker proves ownership only where the README promises it: starting
// the first line, after the comment sign. Found on the second line or
// inside a sentence it was trusted, and the user's file was overwritten.
func TestMarkerMustStartTheFile(t *testing.T) {
	for _, tc := range []struct {
		existing string
		ours     bool
	}{
		{"# Managed by borgkit from /etc/borgkit/borgkit.yaml; local edits are overwritten.\nold\n", true},
		{"#Managed by borgkit\n", true},
		{"  # Managed by borgkit.\n", true},
		{"Managed by borgkit\n", true},
		{"# my own cron file\n# Managed by borgkit from /etc/borgkit/borgkit.yaml\n", false},
		{"# This file is not Managed by borgkit at all\n", false},
		{"# Managed by borgkitten\n", false},
		{"# Managed by borgkit-like tools\n", false},
		{"", false},
		{"\n# Managed by borgkit\n", false},
	} {
		if got := layout.MarkedBy([]byte(tc.existing), marker); got != tc.ours {
			t.Errorf("layout.MarkedBy(%q) = %v", tc.existing, got)
		}
		h, dir := rooted(t)
		write(t, dir, "/etc/cron.d/borgkit", tc.existing, 0o644)
		f := &steps.File{Path: "/etc/cron.d/borgkit", Content: []byte("# " + marker + "\nnew\n"), Mode: 0o644, Owner: host.Root, Marker: marker}
		c := check(t, h, f)
		if ours := c.Action != plan.Conflict; ours != tc.ours {
			t.Errorf("%q: file step %v %s", tc.existing, c.Action, c.Reason)
		}
		a := &steps.Absent{Path: "/etc/cron.d/borgkit", Marker: marker}
		if removes := check(t, h, a).Action == plan.Modify; removes != tc.ours {
			t.Errorf("%q: absent step removes it: %v", tc.existing, removes)
		}
		if !tc.ours && read(t, dir, "/etc/cron.d/borgkit") != tc.existing {
			t.Errorf("%q was changed", tc.existing)
		}
	}
}

// A program has no first line: the installed binary is ours when it is an
// ELF built from borgkit's module.
func TestForeignUnlessBuiltFrom(t *testing.T) {
	rule := steps.ForeignUnlessBuiltFrom("github.com/borgkit/borgkit")
	for in, foreign := range map[string]bool{
		"\x7fELF...github.com/borgkit/borgkit...":   false,
		"#!/bin/sh\n# github.com/borgkit/borgkit\n": true,
		"\x7fELF...github.com/other/tool...":        true,
	} {
		if got := rule([]byte(in)) != ""; got != foreign {
			t.Errorf("%q: foreign %v", in, got)
		}
	}
	if !strings.Contains(rule([]byte("x")), "not a program built from") {
		t.Error(rule([]byte("x")))
	}
}
