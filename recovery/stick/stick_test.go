package stick

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/testing/loopdev"
)

// The layout as data: device sizes and sector sizes in, partitions out,
// each MiB-aligned, the kit first, the LUKS partition ending before the
// backup table.
func TestLayoutGPT(t *testing.T) {
	for _, tc := range []struct {
		name              string
		size              int64
		ss                int
		kit               int64
		wantKit, wantLUKS int64 // MiB
		err               error
	}{
		{"512-byte sectors", 256 * mib, 512, 100*mib + 1, 101, 256 - 1 - 101 - 1, nil},
		{"4096-byte sectors", 256 * mib, 4096, 16 * mib, 16, 256 - 1 - 16 - 1, nil},
		{"a kit that leaves no room", 64 * mib, 512, 40 * mib, 0, 0, errTooSmall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := layoutGPT(tc.size, tc.ss, tc.kit, uuid.New(), uuid.New(), uuid.New())
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			k, p := l.Parts[0], l.Parts[1]
			if k.Start != mib || k.Size != tc.wantKit*mib || p.Start != k.Start+k.Size || p.Size != tc.wantLUKS*mib {
				t.Fatalf("parts %+v", l.Parts)
			}
			if got := int64(len(l.Primary)); got != int64(tc.ss)*2+gptEntries*gptEntrySize {
				t.Fatalf("primary table %d bytes", got)
			}
			if l.BackupAt+int64(len(l.Backup)) != tc.size {
				t.Fatalf("backup table ends at %d, the device at %d", l.BackupAt+int64(len(l.Backup)), tc.size)
			}
		})
	}
}

// Partition on a real loop device: the table it writes is one sfdisk
// verifies and the kernel reads as two partitions of the planned sizes;
// blkid sees the GPT on the whole device, so the guard refuses it next
// time unless --wipe names it.
func TestPartitionLoop(t *testing.T) {
	d := loopdev.NewPartitioned(t, 128*mib)
	// A used stick: an old filesystem the wipe must take away.
	d.Run(t, "mkfs.ext4", "-q", "-F", d.Path)
	h := host.NewLocal("stick")
	ctx := context.Background()
	if err := guard(ctx, h, Options{Device: d.Path, Passphrase: []byte("long enough passphrase")}); err == nil || !strings.Contains(err.Error(), "--wipe "+d.Path) {
		t.Fatalf("a used stick without --wipe: %v", err)
	}
	kit, luks, err := Partition(ctx, h, d.Path, 20*mib)
	if err != nil {
		t.Fatal(err)
	}
	if kit != d.Path+"p1" || luks != d.Path+"p2" {
		t.Fatalf("partitions %s %s", kit, luks)
	}
	if out, err := exec.Command("sfdisk", "--verify", d.Path).CombinedOutput(); err != nil {
		t.Fatalf("sfdisk --verify: %v\n%s", err, out)
	}
	out, err := exec.Command("sfdisk", "--dump", d.Path).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v %s", err, out)
	}
	dump := string(out)
	for _, want := range []string{"label: gpt", "start=        2048, size=       40960, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4", "start=       43008, size=      217088, type=CA7D7CCB-63ED-4C53-861C-1742536059CC", `name="BORGKIT-KIT"`} {
		if !strings.Contains(dump, want) {
			t.Errorf("sfdisk --dump lacks %q:\n%s", want, dump)
		}
	}
	for _, p := range []string{kit, luks} {
		if out, _ := exec.Command("blkid", "-p", "-s", "TYPE", "-o", "value", p).CombinedOutput(); len(out) > 0 {
			t.Errorf("%s still carries a filesystem: %s", p, out)
		}
	}
	if err := guard(ctx, h, Options{Device: d.Path, Passphrase: []byte("long enough passphrase")}); err == nil || !strings.Contains(err.Error(), "PTTYPE=gpt") {
		t.Fatalf("the partitioned stick without --wipe: %v", err)
	}
	if err := guard(ctx, h, Options{Device: d.Path, Wipe: true, Passphrase: []byte("long enough passphrase")}); err != nil {
		t.Fatalf("the partitioned stick with --wipe: %v", err)
	}
}
