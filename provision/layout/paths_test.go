package layout

import (
	"testing"
	"time"
)

func TestSnapshotNames(t *testing.T) {
	at := time.Date(2026, 11, 22, 3, 15, 7, 999, time.FixedZone("CET", 3600))
	name := SnapshotName(at)
	if name != "2026-11-22T021507Z" {
		t.Fatalf("SnapshotName = %q", name)
	}
	got, ok := SnapshotTime(name)
	if !ok || !got.Equal(at.Truncate(time.Second)) {
		t.Fatalf("SnapshotTime(%q) = %s, %v", name, got, ok)
	}
	for _, bad := range []string{"", ".partial-2026-11-22T021507Z", "2026-11-22T02:15:07Z", "2026-11-22T021507Z.old", "2026-13-22T021507Z"} {
		if _, ok := SnapshotTime(bad); ok {
			t.Errorf("SnapshotTime(%q) took it for a snapshot", bad)
		}
	}
}
