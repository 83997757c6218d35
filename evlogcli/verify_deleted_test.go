package evlogcli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyReplayBesideDeletions: verify --replay compares each stats
// snapshot with a replay of the events, folded as the snapshot was. A
// deletion must not make a sound snapshot look corrupt: the deletion
// marker (an event of the system stream $$deletions, which folds skip)
// is not counted, a snapshot from before the deletion (which folded the
// events deleted since, as it should have; plans pass over it) is not
// compared with a replay that no longer yields them, and neither is one
// whose last event was deleted — before and after compaction replaces the
// deleted events by placeholders.
func TestVerifyReplayBesideDeletions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	mustRun(t, "load", dir, "--count", "60", "--size", "40", "--batch", "3", "--streams", "3", "--segment-size", "4096")
	mustRun(t, "snapshot", dir) // seq 60: its last event is s-2's, deleted below
	mustRun(t, "delete", dir, "s-2", "--before", "5")
	mustRun(t, "load", dir, "--count", "10", "--size", "40", "--batch", "2", "--streams", "3", "--segment-size", "4096")
	mustRun(t, "snapshot", dir) // after the deletion
	mustRun(t, "delete", dir, "s-1")
	mustRun(t, "snapshot", dir) // its last event is the marker
	mustRun(t, "load", dir, "--count", "6", "--size", "40", "--batch", "2", "--streams", "3", "--segment-size", "4096")
	mustRun(t, "snapshot", dir) // after both markers
	for _, step := range []string{"before compaction", "after compaction"} {
		if step == "after compaction" {
			mustRun(t, "compact", dir, "--compress")
		}
		r := run1(t, "verify", dir, "--replay")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "ok ") {
			t.Errorf("%s: verify --replay: exit %d\n%s%s", step, r.code, r.stdout, r.stderr)
		}
		// The two snapshots from the newest deletion on are compared.
		r = run1(t, "verify", dir, "--replay", "--format", "json")
		if !strings.Contains(r.stdout, `"replayed":2`) {
			t.Errorf("%s: verify --replay compared other snapshots than the two from the newest deletion on:\n%s", step, r.stdout)
		}
	}
}
