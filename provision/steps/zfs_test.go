package steps_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/steps"
	"github.com/borgkit/borgkit/testing/recorder"
)

// zfsReplies answers `zfs get -H -p -o property,value,source PROPS NAME`
// from a table of existing datasets, the way zfs prints it; a value may
// carry its source after a '|' ("lz4|inherited from tank"; default
// "local"). Every other zfs call succeeds silently and is only recorded.
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
			v, src, ok := strings.Cut(props[p], "|")
			if !ok {
				src = "local"
			}
			if props[p] == "" {
				v, src = "-", "default"
			}
			fmt.Fprintf(&out, "%s\t%s\t%s\n", p, v, src)
		}
		return host.Result{Stdout: []byte(out.String())}, nil
	}
}

func TestZFSDatasetArgv(t *testing.T) {
	const name = "tank/Secure/Borg"
	seed := map[string]string{"compression": "zstd", "atime": "off", "recordsize": "1M"}
	keyfile := map[string]string{"encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": "file:///etc/borgkit/keys/borg.key"}
	prompt := map[string]string{"encryption": "on", "keyformat": "passphrase", "keylocation": "prompt"}
	tests := []struct {
		name     string
		want     map[string]string
		received bool
		existing map[string]string // nil: the dataset does not exist
		action   plan.Action
		summary  string // part of the check's summary or reason
		apply    string // the argv Apply runs after its own zfs get; "" none
		applyErr string // part of Apply's error, when it must refuse
	}{
		{name: "missing", want: seed, action: plan.Create,
			apply: "zfs create -p -o atime=off -o compression=zstd -o recordsize=1M " + name},
		{name: "as wanted (sizes in bytes)", want: seed, existing: map[string]string{"compression": "zstd", "atime": "off", "recordsize": "1048576"},
			action: plan.OK},
		{name: "in force by inheritance is left alone", want: seed,
			existing: map[string]string{"compression": "zstd|inherited from tank", "atime": "off|inherited from tank", "recordsize": "1048576"},
			action:   plan.OK},
		{name: "only what differs is set", want: seed,
			existing: map[string]string{"compression": "lz4|inherited from tank", "atime": "off", "recordsize": "1048576"},
			action:   plan.Modify, summary: "zfs set compression=zstd; now compression=lz4 (inherited from tank)",
			apply: "zfs set compression=zstd " + name},
		{name: "two differ", want: seed, existing: map[string]string{"compression": "lz4", "atime": "on|default", "recordsize": "1048576"},
			action: plan.Modify, summary: "now atime=on (default), compression=lz4 (local)",
			apply: "zfs set atime=off compression=zstd " + name},
		{name: "encrypted with a keyfile, missing", want: keyfile, action: plan.Create,
			apply: "zfs create -p -o encryption=aes-256-gcm -o keyformat=raw -o keylocation=file:///etc/borgkit/keys/borg.key " + name},
		{name: "encryption differs: conflict, never a destroy", want: keyfile,
			existing: map[string]string{"encryption": "off|default", "keyformat": "none|default", "keylocation": "none|default"},
			action:   plan.Conflict, summary: `encryption is "off", config wants "aes-256-gcm"; keyformat is "none", config wants "raw"; these are fixed at creation, and borgkit never destroys`,
			applyErr: "fixed at creation"},
		{name: "encryption differs beside a settable property: nothing is set", want: map[string]string{"encryption": "aes-256-gcm", "compression": "zstd"},
			existing: map[string]string{"encryption": "off", "compression": "lz4"},
			action:   plan.Conflict, summary: "fixed at creation", applyErr: "fixed at creation"},
		{name: "keylocation=prompt cannot be created unattended", want: prompt, action: plan.Conflict,
			summary: "run `zfs create -p -o encryption=on -o keyformat=passphrase -o keylocation=prompt " + name + "` yourself"},
		// zfs reports the cipher encryption=on chose, never "on".
		{name: "keylocation=prompt, existing", want: prompt, existing: map[string]string{"encryption": "aes-256-gcm", "keyformat": "passphrase", "keylocation": "prompt"},
			action: plan.OK},
		{name: "encryption=on on an unencrypted dataset", want: prompt, existing: map[string]string{"encryption": "off|default", "keyformat": "passphrase", "keylocation": "prompt"},
			action: plan.Conflict, summary: `encryption is "off", config wants "on"`},
		// A locked or unmounted dataset hides its files: anything made on
		// its mountpoint would land on the parent (a second, empty repo).
		{name: "locked after a boot: key not loaded", want: keyfile,
			existing: map[string]string{"encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": "file:///etc/borgkit/keys/borg.key",
				"keystatus": "unavailable", "mounted": "no", "canmount": "on|default"},
			action: plan.Conflict, summary: "is locked (keystatus unavailable)"},
		{name: "key loaded, not mounted", want: seed,
			existing: map[string]string{"compression": "zstd", "atime": "off", "recordsize": "1048576", "keystatus": "available", "mounted": "no", "canmount": "on|default"},
			action:   plan.Conflict, summary: "is not mounted"},
		{name: "canmount=off is never mounted, and that is fine", want: map[string]string{"canmount": "off"},
			existing: map[string]string{"canmount": "off", "mounted": "no"},
			action:   plan.OK},
		{name: "pull target before the first pull", want: nil, received: true, action: plan.Skip,
			summary: "made by the first pull", applyErr: "made by the first pull"},
		{name: "pull target after it", want: map[string]string{"atime": "off"}, received: true, existing: map[string]string{"atime": "on|received"},
			action: plan.Modify, apply: "zfs set atime=off " + name},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			existing := map[string]map[string]string{}
			if tt.existing != nil {
				existing[name] = tt.existing
			}
			h := recorder.New(host.NewRooted("archive", t.TempDir()), zfsReplies(existing))
			z := &steps.ZFSDataset{Name: name, Properties: tt.want, Received: tt.received}
			c, err := z.Check(context.Background(), h)
			if err != nil || c.Action != tt.action || !strings.Contains(c.Summary+c.Reason, tt.summary) {
				t.Fatalf("check: %v %+v, want %v with %q", err, c, tt.action, tt.summary)
			}
			// The configured properties, and the state that says whether
			// the dataset's files are there (never set).
			props := strings.Join(slices.Compact(slices.Sorted(slices.Values(append(slices.Collect(maps.Keys(tt.want)),
				"canmount", "keystatus", "mounted")))), ",")
			get := "zfs get -H -p -o property,value,source " + props + " " + name
			if calls := h.Calls(); len(calls) != 1 || strings.Join(calls[0], " ") != get {
				t.Fatalf("check ran %q, want %q", calls, get)
			}
			if tt.apply == "" && tt.applyErr == "" {
				return
			}
			err = z.Apply(context.Background(), h)
			calls := h.Calls()
			if tt.applyErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.applyErr) {
					t.Fatalf("apply: %v, want a refusal with %q", err, tt.applyErr)
				}
				if len(calls) != 1 {
					t.Fatalf("a refused apply ran %q", calls[1:])
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(calls) != 2 || strings.Join(calls[1], " ") != tt.apply {
				t.Fatalf("apply ran %q, want get then %q", calls, tt.apply)
			}
		})
	}
	t.Run("apply with nothing to set runs no zfs set", func(t *testing.T) {
		h := recorder.New(host.NewRooted("archive", t.TempDir()), zfsReplies(map[string]map[string]string{name: {"atime": "off"}}))
		if err := (&steps.ZFSDataset{Name: name, Properties: map[string]string{"atime": "off"}}).Apply(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		if calls := h.Calls(); len(calls) != 1 {
			t.Fatalf("ran %q", calls)
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
