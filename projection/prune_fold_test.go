package projection_test

import (
	"context"
	"errors"
	"testing"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/snapshot"
)

// TestRunnerPrunesOnlyItsFold: the runner prunes its checkpoints after
// saving one, and used to count every checkpoint of its Name, of any
// fold: with KeepLast 1, the only checkpoint of another fold (the
// projection's other SchemaVersion, run by another deployment) was
// removed for the runner's newer one, which cannot replace it; and the
// newest N could as well be another fold's, removing the runner's only
// usable one. Each fold is now judged on its own.
func TestRunnerPrunesOnlyItsFold(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	opts := projection.RunnerOptions{CheckpointRetention: snapshot.PrunePolicy{KeepLast: 1}}
	other := acctCount
	other.SchemaVersion = 2
	runUntilCaughtUp(t, projection.NewRunner(other, l, store, decode, opts), appendTo(t, l, "acct-1", "acct-2"), false)
	theirs, err := store.List("projection/acct")
	if err != nil || len(theirs) != 1 {
		t.Fatalf("the other fold's checkpoints: %v, %v; want one", theirs, err)
	}

	// Each run saves a checkpoint after catching up and prunes; the test
	// waits for that prune before it stops the run, so that each run's
	// prune sees the checkpoints as that run left them.
	cps := &prunedAt{Store: store, pruned: make(chan struct{}, 1)}
	for _, stream := range []string{"acct-3", "acct-4"} {
		appendTo(t, l, stream)
		r := projection.NewRunner(acctCount, l, cps, decode, opts)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		select {
		case <-cps.pruned:
		case err := <-done:
			t.Fatalf("Run: %v", err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v", err)
		}
		select { // a later prune of this run is not the next run's
		case <-cps.pruned:
		default:
		}
	}
	got, err := store.List("projection/acct")
	if err != nil {
		t.Fatal(err)
	}
	var mine, kept int
	for _, m := range got {
		switch m.SchemaVersion {
		case acctCount.SchemaVersion:
			mine++
		case other.SchemaVersion:
			kept++
		}
	}
	if mine != 1 || kept != 1 {
		t.Errorf("checkpoints after the runner pruned with KeepLast 1: %v; want the newest of each fold (one of schema %d, the other fold's at seq %d)", got, acctCount.SchemaVersion, theirs[0].Seq)
	}
}

// prunedAt is a checkpoint store that says on pruned when a Prune of the
// projection's checkpoints succeeded (the latest one is kept).
type prunedAt struct {
	*snapshot.Store
	pruned chan struct{}
}

func (s *prunedAt) Prune(ctx context.Context, name string, p snapshot.PrunePolicy) ([]snapshot.Meta, error) {
	out, err := s.Store.Prune(ctx, name, p)
	if err == nil && name == "projection/acct" {
		select {
		case s.pruned <- struct{}{}:
		default:
		}
	}
	return out, err
}
