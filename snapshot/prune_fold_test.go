package snapshot

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestPruneByFold: with PrunePolicy.Fold, the snapshots of one subject
// are judged fold by fold: KeepLast 1 keeps the newest of each fold, and
// neither fold's only snapshot is removed for the other's.
func TestPruneByFold(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	save := func(seq, schema uint64) Meta {
		t.Helper()
		m := meta("projection/p", seq)
		m.SchemaVersion = schema
		out, err := s.Save(t.Context(), m, stateOf("projection/p", seq))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Fold 1 at 1, 2; fold 2 at 3, 4, 5 (newer).
	f1a, f1b := save(1, 1), save(2, 1)
	_, _, f2c := save(3, 2), save(4, 2), save(5, 2)
	p := PrunePolicy{KeepLast: 1, Now: t0, Fold: func(m Meta) string { return string(rune('0' + m.SchemaVersion)) }}
	removed, err := s.Prune(t.Context(), "projection/p", p)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 || removed[0] != f1a || removed[0].Seq != 1 || removed[1].Seq != 3 || removed[2].Seq != 4 {
		t.Errorf("removed %v, want seqs 1, 3, 4 (oldest first)", removed)
	}
	left, err := s.List("projection/p")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Meta{f1b, f2c}, left); diff != "" {
		t.Errorf("left (-the newest of each fold +got):\n%s", diff)
	}
}
