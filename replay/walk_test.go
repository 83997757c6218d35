package replay_test

import (
	"iter"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// walkCounter counts the entries MakePlan takes from the store's
// Candidates.
type walkCounter struct {
	*snapshot.Store
	taken int
}

func (w *walkCounter) Candidates(name string, maxSeq uint64) iter.Seq2[snapshot.Candidate, error] {
	return func(yield func(snapshot.Candidate, error) bool) {
		for e, err := range w.Store.Candidates(name, maxSeq) {
			w.taken++
			if !yield(e, err) {
				return
			}
		}
	}
}

// MakePlan reads snapshot headers newest first and stops at the first
// usable snapshot: with one every 10 events, planning the state at seq 95
// takes one entry (the snapshot at 90), however many older ones there are.
func TestPlanStopsAtFirstUsable(t *testing.T) {
	f := newFixture(t)
	store := rawStore(t, f.dir)
	for seq := 10; seq <= 110; seq += 10 {
		if seq != goodSeq {
			saveStats(t, store, f.logID, statsSubject, f.events, seq)
		}
	}
	ro := openRO(t, f.dir, evlog.Options{})
	w := &walkCounter{Store: snapshots(t, ro)}
	p, err := replay.MakePlan(t.Context(), ro, w, statsSubject, replay.AtSeq(95), replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Snapshot == nil || p.Snapshot.Seq != 90 || len(p.Fallbacks) != 0 {
		t.Fatalf("plan uses %v with fallbacks %v, want the snapshot at 90 and none", p.Snapshot, p.Fallbacks)
	}
	if w.taken != 1 {
		t.Errorf("MakePlan took %d entries from Candidates, want 1", w.taken)
	}
}
