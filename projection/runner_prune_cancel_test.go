package projection_test

import (
	"context"
	"errors"
	"testing"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/snapshot"
)

// cancelAfterSave is a checkpoint store that cancels Run's context right
// after it saved a checkpoint, and records whether each Prune was called
// with a live context.
type cancelAfterSave struct {
	*snapshot.Store
	cancel context.CancelFunc
	// pruneCtxErr: ctx.Err() of each Prune at its call.
	pruneCtxErr []error
}

func (s *cancelAfterSave) Save(ctx context.Context, m snapshot.Meta, state []byte) (snapshot.Meta, error) {
	got, err := s.Store.Save(ctx, m, state)
	s.cancel()
	return got, err
}

func (s *cancelAfterSave) Prune(ctx context.Context, name string, p snapshot.PrunePolicy) ([]snapshot.Meta, error) {
	s.pruneCtxErr = append(s.pruneCtxErr, ctx.Err())
	return s.Store.Prune(ctx, name, p)
}

// TestRunnerPrunesAfterCancelledCheckpoint: Run's context cancelled right
// after a checkpoint is saved (a deployment stopping) must not skip the
// prune that goes with it. The runner pruned with Run's context, which
// pruned nothing once cancelled, and the final checkpoint (nothing folded
// since) did not prune either: checkpoints piled up until the next prune.
// The prune now runs with a context of its own, bounded by StopTimeout.
func TestRunnerPrunesAfterCancelledCheckpoint(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	opts := projection.RunnerOptions{CheckpointRetention: snapshot.PrunePolicy{KeepLast: 1}}
	runUntilCaughtUp(t, projection.NewRunner(acctCount, l, store, decode, opts), appendTo(t, l, "acct-1"), false)
	before, err := store.List("projection/acct")
	if err != nil || len(before) != 1 {
		t.Fatalf("checkpoints after the first run: %v, %v; want one", before, err)
	}

	last := appendTo(t, l, "acct-2")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cps := &cancelAfterSave{Store: store, cancel: cancel}
	r := projection.NewRunner(acctCount, l, cps, decode, opts)
	if err := r.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	got, err := store.List("projection/acct")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Seq != last {
		t.Errorf("checkpoints after Run was cancelled right after saving one at seq %d: %v; want only that one (KeepLast 1; Prune called with ctx errors %v)", last, got, cps.pruneCtxErr)
	}
}
