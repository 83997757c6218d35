package projection_test

import (
	"context"
	"errors"
	"testing"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
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
	if err := r.WaitFor(t.Context(), seq); err != nil {
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
