package snapshot

import (
	"math"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestSaveWithoutBeforeSaveKnowsNoLog pins what Options.BeforeSave's doc
// says a Store opened without it promises: its own file, nothing about a
// log. It saves a snapshot at any seq (it cannot tell the end of a log)
// and records no Anchor of its own, so replay has only the recorded time
// to tell the snapshot's last event from another at its seq. A log's
// snapshots are therefore saved only through evlog.Log.Snapshots or
// evlog.OpenSnapshotWriter, which set BeforeSave and Anchor; if Save ever
// learns to check a log itself, this test and that doc change together.
func TestSaveWithoutBeforeSaveKnowsNoLog(t *testing.T) {
	s := newStore(t, vfs.NewMem())
	m := meta("stats", math.MaxInt32) // far beyond the end of any test log
	got, err := s.Save(t.Context(), m, []byte("state"))
	if err != nil {
		t.Fatalf("Save at seq %d without BeforeSave: %v; the doc says a Store without it checks nothing about the log", m.Seq, err)
	}
	if got.Anchor != 0 {
		t.Errorf("Anchor %d recorded without Options.Anchor or Meta.Anchor; want 0 (not recorded)", got.Anchor)
	}
}
