package projection_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// savedAt is a checkpoint store that reports the seq of every checkpoint
// of subject name it saves (on a channel that is never waited on by the
// store: the latest one is kept).
type savedAt struct {
	*snapshot.Store
	name  string
	saved chan uint64
}

func (s *savedAt) Save(ctx context.Context, m snapshot.Meta, state []byte) (snapshot.Meta, error) {
	out, err := s.Store.Save(ctx, m, state)
	if err == nil && m.Name == s.name {
		select {
		case <-s.saved: // keep only the latest
		default:
		}
		s.saved <- m.Seq
	}
	return out, err
}

// TestRunnerServesNoViewAfterHistoryLost: once a Run has ended with
// replay.ErrHistoryLost (a deletion in the view's scope, after events the
// view folded expired), the runner does not serve the view it had: it
// holds data of the deleted events and misses the deletion, yet it used to
// be served at its old seq (State, Read) and WaitFor for that seq returned
// nil, as if it were current. The view is the empty view at seq 0 and
// WaitFor and View report the loss, through the next Runs too (they fail
// the same way), until Rebuild, on the same runner, folds what is left.
func TestRunnerServesNoViewAfterHistoryLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		// running: the deletion is met by a running Run (its refold
		// fails); else by the next Run (its plan fails).
		running bool
	}{
		{"deletion met while running", true},
		{"deletion met by the next run", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, expire := expiringLog(t)
			last := appendTo(t, l, "acct-1", "acct-2", "other-1")
			store, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			cps := &savedAt{Store: store, name: "projection/acct", saved: make(chan uint64, 1)}
			decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
			r := projection.NewRunner(acctCount, l, cps, decode, projection.RunnerOptions{})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			if err := projection.WaitGuarded(t, r, last, "the last event"); err != nil {
				t.Fatal(err)
			}
			if !tc.running {
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("Run ended with %v", err)
				}
			}
			expire()
			pos, _, err := l.DeleteStream(t.Context(), "acct-1")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.running {
				go func() { done <- r.Run(t.Context()) }()
			}
			if err := <-done; !errors.Is(err, replay.ErrHistoryLost) {
				t.Fatalf("Run after the deletion at seq %d ended with %v, want ErrHistoryLost", pos.Seq, err)
			}
			cancel()

			checkLost := func(when string) {
				t.Helper()
				err := projection.WaitGuarded(t, r, last, "the view's HistoryLostError")
				if _, ok := errors.AsType[*replay.HistoryLostError](err); !ok || !errors.Is(err, replay.ErrHistoryLost) {
					t.Errorf("%s: WaitFor(%d): %v, want an error matching ErrHistoryLost (a *replay.HistoryLostError)", when, last, err)
				}
				if view, seq := r.State(); seq != 0 || len(view) != 0 {
					t.Errorf("%s: State() = %v at seq %d, want the empty view at seq 0 (the old view holds deleted data)", when, view, seq)
				}
				err = r.View(func(view map[string]int, seq uint64) {
					t.Errorf("%s: View served %v at seq %d, want the loss reported", when, view, seq)
				})
				if hl, ok := errors.AsType[*replay.HistoryLostError](err); !ok || hl.DeletionSeq != pos.Seq {
					t.Errorf("%s: View: %v, want a *replay.HistoryLostError naming the deletion at seq %d", when, err, pos.Seq)
				}
			}
			checkLost("after the Run that lost history")
			if err := r.Run(t.Context()); !errors.Is(err, replay.ErrHistoryLost) {
				t.Fatalf("the next Run ended with %v, want ErrHistoryLost", err)
			}
			checkLost("after the next Run")

			// Rebuild, on the same runner, is the way past.
			rctx, rcancel := context.WithCancel(t.Context())
			defer rcancel()
			go func() { done <- r.Rebuild(rctx) }()
		wait:
			for {
				select {
				case seq := <-cps.saved:
					if seq >= pos.Seq {
						break wait
					}
				case err := <-done:
					t.Fatalf("Rebuild ended with %v before checkpointing the rebuilt view", err)
				}
			}
			// The rebuilt view is checkpointed: it is served.
			if err := projection.WaitGuarded(t, r, pos.Seq, "the deletion, after the Rebuild"); err != nil {
				t.Fatalf("WaitFor(%d) after Rebuild: %v", pos.Seq, err)
			}
			// What is left: acct-2's event expired too.
			err = r.View(func(view map[string]int, seq uint64) {
				if seq != pos.Seq || !cmp.Equal(view, map[string]int{}) {
					t.Errorf("rebuilt view %v at seq %d, want the empty map at seq %d", view, seq, pos.Seq)
				}
			})
			if err != nil {
				t.Errorf("View after Rebuild: %v", err)
			}
			rcancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Rebuild ended with %v", err)
			}
			// A restart starts from the rebuilt checkpoint.
			r2 := projection.NewRunner(acctCount, l, store, decode, projection.RunnerOptions{})
			runUntilCaughtUp(t, r2, pos.Seq, false)
			if p := r2.Plan(); p.Snapshot == nil || p.Snapshot.Seq != pos.Seq {
				t.Errorf("restart started from %+v (fallbacks %+v), want the rebuilt checkpoint at seq %d", p.Snapshot, p.Fallbacks, pos.Seq)
			}
		})
	}
}
