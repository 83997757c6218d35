package projection_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/snapshot"
)

// runUntilCaughtUp runs (or, with rebuild, rebuilds) r until its view
// covers seq, then stops it (writing its final checkpoint).
func runUntilCaughtUp[S any](t *testing.T, r *projection.Runner[S, event.Envelope], seq uint64, rebuild bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		if rebuild {
			done <- r.Rebuild(ctx)
		} else {
			done <- r.Run(ctx)
		}
	}()
	if err := projection.WaitGuarded(t, r, seq, "the view to cover the log"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
}

// TestRebuildReplacesCheckpoints: after Rebuild (a fold fixed without a
// new schema version), a restart starts from the rebuilt view, not from a
// checkpoint of the old fold — even when no event came since the old
// checkpoint, so that the rebuilt one has the same seq.
func TestRebuildReplacesCheckpoints(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, "a", 4)
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	raw := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	buggy := typesCount
	buggy.Apply = func(m map[string]int, e event.Envelope) map[string]int { m[e.Type] += 2; return m }
	runUntilCaughtUp(t, projection.NewRunner(buggy, l, snaps, raw, projection.RunnerOptions{}), 4, false)

	runUntilCaughtUp(t, projection.NewRunner(typesCount, l, snaps, raw, projection.RunnerOptions{}), 4, true)

	r := projection.NewRunner(typesCount, l, snaps, raw, projection.RunnerOptions{})
	runUntilCaughtUp(t, r, 4, false)
	if got, _ := r.State(); got["a"] != 4 {
		t.Fatalf("after Rebuild, a restart's view is %v, want a:4 (plan %+v)", got, r.Plan())
	}
}

// pausedRemove pauses the first Remove (Rebuild dropping the old
// checkpoints) until release is closed, saying so on removing.
type pausedRemove struct {
	*snapshot.Store
	once              sync.Once
	removing, release chan struct{}
}

func (p *pausedRemove) Remove(ctx context.Context, m snapshot.Meta) error {
	p.once.Do(func() {
		close(p.removing)
		<-p.release
	})
	return p.Store.Remove(ctx, m)
}

// TestRebuildDoesNotServeTheOldView: a runner that started from a
// checkpoint of an old fold (fixed without a new schema version) and is
// then rebuilt must not go on serving that view, as the view at its seq,
// while the rebuild runs: State must be a true view at the seq it gives,
// and WaitFor must wait for the rebuilt view. The old view stayed in
// place, so WaitFor(seq) returned at once with the old fold's view and a
// caller stopping the rebuild then (as "caught up") never saw it run.
func TestRebuildDoesNotServeTheOldView(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, "a", 4)
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	raw := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	buggy := typesCount
	buggy.Apply = func(m map[string]int, e event.Envelope) map[string]int { m[e.Type] += 2; return m }
	runUntilCaughtUp(t, projection.NewRunner(buggy, l, snaps, raw, projection.RunnerOptions{}), 4, false)

	cps := &pausedRemove{Store: snaps, removing: make(chan struct{}), release: make(chan struct{})}
	r := projection.NewRunner(typesCount, l, cps, raw, projection.RunnerOptions{})
	runUntilCaughtUp(t, r, 4, false) // from the old fold's checkpoint: a:8

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Rebuild(ctx) }()
	<-cps.removing // the rebuild has started
	view, seq := r.State()
	want, err := projection.Compute(typesCount, l.Range(t.Context(), 1, seq))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, view); diff != "" {
		t.Errorf("while rebuilding, the view at seq %d is not the fold of the events up to it (-want +got):\n%s", seq, diff)
	}
	close(cps.release)
	if err := projection.WaitGuarded(t, r, 4, "the Rebuild, once the held checkpoint was released"); err != nil {
		t.Fatal(err)
	}
	if view, seq := r.State(); view["a"] != 4 || seq != 4 {
		t.Errorf("rebuilt view %v at seq %d, want a:4 at 4", view, seq)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Rebuild: %v", err)
	}
}
