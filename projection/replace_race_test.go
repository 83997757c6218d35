package projection_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/snapshot"
)

// interleavingStore runs before once, then removes: another writer acting
// between the runner's read of a checkpoint and its Remove of it.
type interleavingStore struct {
	*snapshot.Store
	before func()
}

func (s *interleavingStore) Remove(ctx context.Context, m snapshot.Meta) error {
	if f := s.before; f != nil {
		s.before = nil
		f()
	}
	return s.Store.Remove(ctx, m)
}

// TestRunnerReplaceKeepsConcurrentCheckpoint: the runner replaces another
// fold's checkpoint at the seq of its view (see
// TestRunnerCheckpointsOverOtherFoldAtTheSameSeq) by removing the one it
// read. When another writer replaced that file meanwhile (same name and
// seq, so the same file name), the runner's Remove used to remove the
// other writer's new checkpoint, whose header it never read: snapshot's
// Remove compared only Name and Seq. The other writer's checkpoint must
// be kept.
func TestRunnerReplaceKeepsConcurrentCheckpoint(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	last := appendTo(t, l, "acct-1", "acct-2")
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	old := acctCount
	runUntilCaughtUp(t, projection.NewRunner(old, l, store, decode, projection.RunnerOptions{}), last, false)
	read, err := store.List("projection/acct")
	if err != nil || len(read) != 1 || read[0].Seq != last {
		t.Fatalf("the old fold's checkpoints: %v, %v; want one at seq %d", read, err, last)
	}
	var theirs snapshot.Meta
	cps := &interleavingStore{Store: store, before: func() {
		// Another writer (a runner of the current fold in another
		// process, whose checkpoint the runner would keep) replaces the
		// old fold's checkpoint at the same seq.
		if err := store.Remove(t.Context(), read[0]); err != nil {
			t.Error(err)
		}
		m := read[0]
		m.SchemaVersion, m.RawSize, m.CompressedSize, m.File = 2, 0, 0, ""
		if theirs, err = store.Save(t.Context(), m, []byte{0x80}); err != nil {
			t.Error(err)
		}
	}}
	cur := acctCount
	cur.SchemaVersion = 2 // the same fold as the other writer's
	runUntilCaughtUp(t, projection.NewRunner(cur, l, cps, decode, projection.RunnerOptions{}), last, false)
	if cps.before != nil {
		t.Fatal("the runner did not replace the old fold's checkpoint: the interleaving did not happen")
	}
	got, err := store.List("projection/acct")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]snapshot.Meta{theirs}, got); diff != "" {
		t.Errorf("checkpoints at seq %d after the runner replaced the one it read while another writer replaced it too (-the other writer's +left):\n%s", last, diff)
	}
}
