package projection_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
)

// TestRunnerRebuiltViewDeletionNoFalseLoss: events of the view's scope
// that expired before a fold from the first event (Rebuild) were never
// folded into the view, so a later deletion in its scope folds again
// losing nothing. The runner counted them as folded and failed with
// replay.ErrHistoryLost at every deletion after the Rebuild, forever; so
// did a restart from a checkpoint of the rebuilt view (the deletion met
// while running, or while stopped). An event the rebuilt view did fold
// that expires afterwards is still a loss.
func TestRunnerRebuiltViewDeletionNoFalseLoss(t *testing.T) {
	for _, tc := range []struct {
		name string
		// restart: the deletion is met by a new runner starting from the
		// checkpoint of the rebuilt view (deleteStopped: deleted before it
		// starts).
		restart, deleteStopped bool
		// foldedExpires: an event the rebuilt view folded expires before
		// the deletion (a true loss).
		foldedExpires bool
	}{
		{name: "same runner"},
		{name: "restart, deletion while running", restart: true},
		{name: "restart, deletion while stopped", restart: true, deleteStopped: true},
		{name: "same runner, a folded event expires", foldedExpires: true},
		{name: "restart, deletion while stopped, a folded event expires", restart: true, deleteStopped: true, foldedExpires: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := countingLog(t) // acct keeps the newest event of each stream
			// seq 1 the retention record, 2 acct-1, 3 acct-2 (expired by
			// 4), 4 acct-2, 5 acct-3
			last := appendTo(t, l, "acct-1", "acct-2", "acct-2", "acct-3")
			store, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
			r := projection.NewRunner(acctCount, l, store, decode, projection.RunnerOptions{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Rebuild(ctx) }()
			if err := projection.WaitGuarded(t, r, last, "the rebuilt view up to the last event"); err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"acct-1": 1, "acct-2": 1}
			if tc.foldedExpires {
				last = appendTo(t, l, "acct-1") // expires seq 2, which the view folded
				if err := projection.WaitGuarded(t, r, last, "the event that expires seq 2"); err != nil {
					t.Fatal(err)
				}
			}
			if tc.restart {
				cancel() // the final checkpoint is of the rebuilt view
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("Rebuild ended with %v", err)
				}
			}
			var del uint64
			deleteStream := func() {
				t.Helper()
				pos, _, err := l.DeleteStream(t.Context(), "acct-3")
				if err != nil {
					t.Fatal(err)
				}
				del = pos.Seq
			}
			if tc.deleteStopped {
				deleteStream()
			}
			if tc.restart {
				r = projection.NewRunner(acctCount, l, store, decode, projection.RunnerOptions{})
				ctx, cancel = context.WithCancel(t.Context())
				defer cancel()
				go func() { done <- r.Run(ctx) }()
				if !tc.deleteStopped {
					if err := projection.WaitGuarded(t, r, last, "the last event, after the restart"); err != nil {
						t.Fatalf("restart: %v", err)
					}
				}
			}
			if !tc.deleteStopped {
				deleteStream()
			}
			err = projection.WaitGuarded(t, r, del, "the deletion after the Rebuild (or its HistoryLostError)")
			if tc.foldedExpires {
				if hl, ok := errors.AsType[*replay.HistoryLostError](err); !ok || hl.ExpiredSeq != 2 {
					t.Fatalf("WaitFor(%d), the deletion after an event the rebuilt view folded expired: %v, want a *replay.HistoryLostError naming seq 2", del, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("WaitFor(%d), the deletion after the Rebuild: %v, want the view folded again (seq 3 expired before the rebuilt view folded it)", del, err)
			}
			var got map[string]int
			if err := r.View(func(v map[string]int, _ uint64) { got = maps.Clone(v) }); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("view after the deletion (-want +got):\n%s", diff)
			}
			// And the next deletion too: the refolded view records what it
			// did not fold.
			pos, _, err := l.DeleteStream(t.Context(), "acct-1")
			if err != nil {
				t.Fatal(err)
			}
			if err := projection.WaitGuarded(t, r, pos.Seq, "the second deletion"); err != nil {
				t.Fatalf("WaitFor(%d), the second deletion: %v", pos.Seq, err)
			}
		})
	}
}
