package steps_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/testing/recorder"
)

// zfsReplies answers `zfs get -H -p -o property,value PROPS NAME` from a
// table of existing datasets, the way zfs prints it; every other zfs call
// succeeds silently and is only recorded.
func zfsReplies(datasets map[string]map[string]string) func([]string) (host.Result, error) {
	return func(argv []string) (host.Result, error) {
		if len(argv) < 2 || argv[0] != "zfs" {
			return host.Result{ExitCode: 127}, errors.New("unexpected program " + argv[0])
		}
		if argv[1] != "get" {
			return host.Result{}, nil
		}
		name := argv[len(argv)-1]
		props, ok := datasets[name]
		if !ok {
			stderr := fmt.Sprintf("cannot open '%s': dataset does not exist\n", name)
			return host.Result{ExitCode: 1, Stderr: []byte(stderr)}, &host.ExitError{Argv: argv, ExitCode: 1}
		}
		var out strings.Builder
		for _, p := range strings.Split(argv[len(argv)-2], ",") {
			fmt.Fprintf(&out, "%s\t%s\n", p, props[p])
		}
		return host.Result{Stdout: []byte(out.String())}, nil
	}
}

func TestZFSDatasetArgv(t *testing.T) {
	want := map[string]string{"compression": "zstd", "atime": "off", "recordsize": "1M"}
	tests := []struct {
		name     string
		existing map[string]map[string]string
		action   plan.Action
		reason   string
		apply    []string // the argv Apply must run after its own zfs get
	}{
		{"missing", nil, plan.Create, "",
			[]string{"zfs", "create", "-p", "-o", "atime=off", "-o", "compression=zstd", "-o", "recordsize=1M", "tank/Secure/Borg"}},
		{"as wanted (sizes in bytes)", map[string]map[string]string{"tank/Secure/Borg": {"compression": "zstd", "atime": "off", "recordsize": "1048576"}},
			plan.OK, "", nil},
		{"one differs", map[string]map[string]string{"tank/Secure/Borg": {"compression": "lz4", "atime": "off", "recordsize": "1048576"}},
			plan.Modify, "", []string{"zfs", "set", "compression=zstd", "tank/Secure/Borg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := recorder.New(host.NewRooted("archive", t.TempDir()), zfsReplies(tt.existing))
			z := &steps.ZFSDataset{Name: "tank/Secure/Borg", Properties: want}
			c, err := z.Check(context.Background(), h)
			if err != nil || c.Action != tt.action {
				t.Fatalf("check: %v %+v", err, c)
			}
			getArgv := "zfs get -H -p -o property,value atime,compression,recordsize tank/Secure/Borg"
			if calls := h.Calls(); len(calls) != 1 || strings.Join(calls[0], " ") != getArgv {
				t.Fatalf("check ran %q", calls)
			}
			if tt.apply == nil {
				return
			}
			if err := z.Apply(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			calls := h.Calls()
			if len(calls) != 2 || strings.Join(calls[1], " ") != strings.Join(tt.apply, " ") {
				t.Fatalf("apply ran %q, want %q", calls, tt.apply)
			}
		})
	}
	t.Run("creation-time property differs", func(t *testing.T) {
		h := recorder.New(host.NewRooted("archive", t.TempDir()), zfsReplies(map[string]map[string]string{
			"tank/Secure/Borg": {"encryption": "off"}}))
		z := &steps.ZFSDataset{Name: "tank/Secure/Borg", Properties: map[string]string{"encryption": "aes-256-gcm"}}
		c, _ := z.Check(context.Background(), h)
		if c.Action != plan.Conflict || !strings.Contains(c.Reason, "fixed at creation") {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("skipped under --root", func(t *testing.T) {
		z := &steps.ZFSDataset{Name: "tank/x"}
		c, _ := z.Check(context.Background(), host.NewRooted("archive", t.TempDir()))
		if c.Action != plan.Skip {
			t.Fatalf("%+v", c)
		}
	})
}
