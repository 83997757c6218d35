package projection_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
)

// acctCount counts the events of each stream of category "acct".
var acctCount = projection.Projection[map[string]int, event.Envelope]{
	Name:          "acct",
	SchemaVersion: 1,
	Categories:    []string{"acct"},
	Init:          func() map[string]int { return map[string]int{} },
	Apply: func(m map[string]int, e event.Envelope) map[string]int {
		m[e.Stream]++
		return m
	},
}

// expiringLog opens a log in a temporary directory whose category "acct"
// keeps its events for an hour of the returned clock, and a function that
// moves the clock two hours on.
func expiringLog(t *testing.T) (*evlog.Log, func()) {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	l, err := evlog.Open(t.TempDir(), evlog.Options{Clock: clock, Retention: map[string]evlog.Retention{"acct": {MaxAge: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, func() { now.Store(t0.Add(2 * time.Hour).UnixNano()) }
}

func appendTo(t *testing.T, l *evlog.Log, streams ...string) uint64 {
	t.Helper()
	var pos event.Position
	for _, s := range streams {
		var err error
		if pos, err = l.Append(t.Context(), s, evlog.ExpectAny, event.Envelope{Type: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	return pos.Seq
}

// TestRunnerKeepsCheckpointAcrossUnrelatedDeletion: a projection scoped
// to category "acct" keeps its checkpoint, and its running view, when a
// stream of another category is deleted after it. Both used to be folded
// again from the events for any deletion (a checkpoint "before the
// deletion at seq N" was passed over, and a running view was refolded at
// every marker), which lost the effect of the acct events retention had
// expired since the checkpoint.
func TestRunnerKeepsCheckpointAcrossUnrelatedDeletion(t *testing.T) {
	l, expire := expiringLog(t)
	last := appendTo(t, l, "acct-1", "acct-1", "other-1", "acct-2", "other-2")
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	want := map[string]int{"acct-1": 2, "acct-2": 1}
	run := func(wait func(uint64), seqs ...uint64) *projection.Runner[map[string]int, event.Envelope] {
		t.Helper()
		r := projection.NewRunner(acctCount, l, snaps, decode, projection.RunnerOptions{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		for _, seq := range seqs {
			if seq == 0 {
				wait(0)
				continue
			}
			if err := projection.WaitGuarded(t, r, seq, "the view to cover the seq"); err != nil {
				t.Fatal(err)
			}
			r.Read(func(m map[string]int, at uint64) {
				if diff := cmp.Diff(want, m); diff != "" {
					t.Errorf("view at seq %d (-want +got):\n%s\nplan: checkpoint %v, fallbacks %+v", at, diff, r.Plan().Snapshot, r.Plan().Fallbacks)
				}
			})
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run ended with %v", err)
		}
		return r
	}
	run(nil, last) // checkpoints the view at last
	expire()
	pos, _, err := l.DeleteStream(t.Context(), "other-1")
	if err != nil {
		t.Fatal(err)
	}
	var pos2 event.Position
	r := run(func(uint64) {
		// A deletion met while running.
		if pos2, _, err = l.DeleteStream(t.Context(), "other-2"); err != nil {
			t.Fatal(err)
		}
	}, pos.Seq, 0, pos.Seq+1)
	if p := r.Plan(); p.Snapshot == nil || p.Snapshot.Seq != last {
		t.Errorf("the runner started from %+v (fallbacks %+v), want the checkpoint at seq %d", p.Snapshot, p.Fallbacks, last)
	}
	if pos2.Seq != pos.Seq+1 {
		t.Fatalf("second deletion at seq %d, want %d", pos2.Seq, pos.Seq+1)
	}
}

// TestRunnerStopsWhenADeletionMeetsExpiredHistory: a deletion of a stream
// in the view's scope, after events the view folded have expired, cannot
// be applied by folding again (the expired events' effect would be lost
// silently): Run ends with replay.ErrHistoryLost, and so does the next Run
// (from its checkpoint before the deletion), until Rebuild folds what is
// left; meanwhile the view is not served.
func TestRunnerStopsWhenADeletionMeetsExpiredHistory(t *testing.T) {
	l, expire := expiringLog(t)
	last := appendTo(t, l, "acct-1", "acct-2", "other-1")
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	r := projection.NewRunner(acctCount, l, snaps, decode, projection.RunnerOptions{})
	done := make(chan error, 1)
	go func() { done <- r.Run(t.Context()) }()
	if err := projection.WaitGuarded(t, r, last, "the last event"); err != nil {
		t.Fatal(err)
	}
	expire()
	pos, _, err := l.DeleteStream(t.Context(), "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, replay.ErrHistoryLost) {
		t.Fatalf("Run after the deletion at seq %d ended with %v, want ErrHistoryLost", pos.Seq, err)
	}
	// The view it had holds the deleted acct-1 event: not served
	// (TestRunnerServesNoViewAfterHistoryLost).
	if m, seq := r.State(); len(m) != 0 || seq != 0 {
		t.Errorf("view %v at seq %d after the failed refold, want the empty view at seq 0", m, seq)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := r.Run(ctx); !errors.Is(err, replay.ErrHistoryLost) {
		t.Fatalf("the next Run ended with %v, want ErrHistoryLost", err)
	}
	// A fresh runner: WaitFor on r would see its failed Run's end.
	r = projection.NewRunner(acctCount, l, snaps, decode, projection.RunnerOptions{})
	go func() { done <- r.Rebuild(ctx) }()
	if err := projection.WaitGuarded(t, r, pos.Seq, "the deletion, after the Rebuild"); err != nil {
		t.Fatal(err)
	}
	r.Read(func(m map[string]int, seq uint64) {
		if len(m) != 0 {
			t.Errorf("rebuilt view %v, want what is left: nothing", m)
		}
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Rebuild ended with %v", err)
	}
}
