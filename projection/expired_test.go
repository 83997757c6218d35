package projection_test

import (
	"context"
	"errors"
	"iter"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
)

// countingLog opens a log whose categories "acct" and "other" keep only
// the newest event of each stream (Retention MaxCount 1): appending to a
// stream expires its previous event at once.
func countingLog(t *testing.T) *evlog.Log {
	t.Helper()
	l, err := evlog.Open(t.TempDir(), evlog.Options{Retention: map[string]evlog.Retention{"acct": {MaxCount: 1}, "other": {MaxCount: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// gatedLog is a log whose subscriptions start only once gate is closed,
// after saying so on subscribed (the first one: buffered): the test
// appends while the runner has not read.
type gatedLog struct {
	*evlog.Log
	subscribed chan uint64
	gate       chan struct{}
}

func (g *gatedLog) Subscribe(ctx context.Context, from uint64) iter.Seq2[event.Envelope, error] {
	select {
	case g.subscribed <- from:
	default: // a later subscription (after a checkpoint interval)
	}
	<-g.gate
	return g.Log.Subscribe(ctx, from)
}

// TestRunnerRefoldKeepsExpiredEffect: a deletion in the view's scope
// makes the runner fold its view again; when an event the view held in
// memory folded has expired since, folding again silently dropped its
// effect — with no checkpoint store (nothing to check at all), and with
// one whose newest checkpoint is older than the expired event (only the
// checkpoint was checked). Run must end with replay.ErrHistoryLost, as it
// does when the stale checkpoint itself folded an expired event.
func TestRunnerRefoldKeepsExpiredEffect(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store bool
	}{
		{"no checkpoint store", false},
		{"checkpoint older than the expired event", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := countingLog(t)
			first := appendTo(t, l, "acct-1")
			var cps projection.Checkpoints
			if tc.store {
				s, err := l.Snapshots()
				if err != nil {
					t.Fatal(err)
				}
				cps = s
			}
			decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
			r := projection.NewRunner(acctCount, l, cps, decode, projection.RunnerOptions{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			if err := projection.WaitGuarded(t, r, first, "the first event"); err != nil {
				t.Fatal(err)
			}
			folded := appendTo(t, l, "acct-2")
			if err := projection.WaitGuarded(t, r, folded, "the event that will expire"); err != nil {
				t.Fatal(err)
			}
			last := appendTo(t, l, "acct-2") // expires the one folded
			if err := projection.WaitGuarded(t, r, last, "the event that expires the one folded"); err != nil {
				t.Fatal(err)
			}
			pos, _, err := l.DeleteStream(t.Context(), "acct-1")
			if err != nil {
				t.Fatal(err)
			}
			// A view folded again (without the expired event) covers the
			// marker: WaitFor returns nil.
			err = projection.WaitGuarded(t, r, pos.Seq, "the deletion (or its HistoryLostError)")
			hl, ok := errors.AsType[*replay.HistoryLostError](err)
			if !ok || hl.ExpiredSeq != folded || hl.DeletionSeq != pos.Seq {
				view, seq := r.State()
				t.Fatalf("WaitFor(%d), the deletion: %v (view %v at seq %d), want a *replay.HistoryLostError naming the expired event %d", pos.Seq, err, view, seq, folded)
			}
			if err := <-done; !errors.Is(err, replay.ErrHistoryLost) {
				t.Fatalf("Run ended with %v, want ErrHistoryLost", err)
			}
			if err := r.View(func(map[string]int, uint64) {}); !errors.Is(err, replay.ErrHistoryLost) {
				t.Errorf("View after the loss: %v, want ErrHistoryLost", err)
			}
		})
	}
}

// TestRunnerExpiredBeforeFolded: events of the view's scope that expire
// before the runner folds them (it was stopped, or lagged) used to be
// skipped silently — restarted from its checkpoint, or following live
// appends, the view went on without them. Run must end with
// replay.ErrExpiredUnfolded naming the first such event, unless the
// expired events are of other categories than the view's.
func TestRunnerExpiredBeforeFolded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		running bool     // the runner lags (else it is stopped) meanwhile
		streams []string // appended meanwhile
		wantErr bool
	}{
		{"stopped, an acct event expired", false, []string{"acct-2", "acct-2"}, true},
		{"lagging, an acct event expired", true, []string{"acct-2", "acct-2"}, true},
		{"stopped, an event of another category expired", false, []string{"other-1", "other-1", "acct-2"}, false},
		{"lagging, an event of another category expired", true, []string{"other-1", "other-1", "acct-2"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := countingLog(t)
			first := appendTo(t, l, "acct-1")
			store, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			src := &gatedLog{Log: l, subscribed: make(chan uint64, 1), gate: make(chan struct{})}
			decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
			r := projection.NewRunner(acctCount, src, store, decode, projection.RunnerOptions{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			<-src.subscribed // caught up to first, checkpointed
			if !tc.running {
				cancel()
				close(src.gate)
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("Run: %v", err)
				}
			}
			last := appendTo(t, l, tc.streams...)
			expired := first + 1
			if tc.running {
				close(src.gate)
			} else {
				r = projection.NewRunner(acctCount, src, store, decode, projection.RunnerOptions{})
				ctx, cancel = context.WithCancel(t.Context())
				defer cancel()
				go func() { done <- r.Run(ctx) }()
				select {
				case <-src.subscribed: // caught up
				case err := <-done:
					if eu, ok := errors.AsType[*replay.ExpiredUnfoldedError](err); !ok || eu.ExpiredSeq != expired {
						t.Fatalf("restart ended with %v, want a *replay.ExpiredUnfoldedError naming seq %d", err, expired)
					}
					if !tc.wantErr {
						t.Fatalf("restart ended with %v", err)
					}
					return
				}
			}
			err = projection.WaitGuarded(t, r, last, "the last event (or the runner's end)")
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				got, _ := r.State()
				if want := map[string]int{"acct-1": 1, "acct-2": 1}; !cmp.Equal(want, got) {
					t.Errorf("view %v, want %v", got, want)
				}
				return
			}
			eu, ok := errors.AsType[*replay.ExpiredUnfoldedError](err)
			if !ok || eu.ExpiredSeq != expired || !errors.Is(err, projection.ErrStopped) {
				view, seq := r.State()
				t.Fatalf("WaitFor(%d): %v (view %v at seq %d), want ErrStopped with a *replay.ExpiredUnfoldedError naming seq %d", last, err, view, seq, expired)
			}
		})
	}
}
