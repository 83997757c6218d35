package projection_test

import (
	"testing"
	"time"

	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/snapshot"
)

// TestCheckpointFold: the fold key the runner prunes its checkpoints by
// (and evlogctl snapshots --prune too) tells checkpoints apart by log,
// schema version and scope, and by nothing else.
func TestCheckpointFold(t *testing.T) {
	base := snapshot.Meta{Name: "projection/p", LogID: [16]byte{1}, Seq: 7, Time: time.Unix(7, 0), SchemaVersion: 2, Scope: 3, File: "a"}
	tests := []struct {
		name string
		edit func(*snapshot.Meta)
		same bool
	}{
		{"other log", func(m *snapshot.Meta) { m.LogID[15] = 9 }, false},
		{"other schema version", func(m *snapshot.Meta) { m.SchemaVersion++ }, false},
		{"other scope", func(m *snapshot.Meta) { m.Scope = 0 }, false},
		{"other seq, time, file, sizes", func(m *snapshot.Meta) {
			m.Seq, m.Time, m.File, m.RawSize, m.CompressedSize = 9, time.Unix(9, 0), "b", 1, 2
		}, true},
		{"other unfolded ranges", func(m *snapshot.Meta) { m.Unfolded = snapshot.MakeSeqRanges(snapshot.SeqRange{From: 1, To: 2}) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			tc.edit(&m)
			if got := projection.CheckpointFold(m) == projection.CheckpointFold(base); got != tc.same {
				t.Errorf("CheckpointFold(%+v) == CheckpointFold(%+v): %v, want %v", m, base, got, tc.same)
			}
		})
	}
}
