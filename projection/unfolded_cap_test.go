package projection_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// TestRunnerUnfoldedCap: a view folded from the first event records the
// holes in the log (expired events) as its Unfolded ranges, at most
// snapshot.MaxUnfolded of them. At the cap every hole is recorded, and a
// deletion in the view's scope after a restart from its checkpoint folds
// again, losing nothing. One hole more is never merged into a range (a
// range claims no event there was folded: a merged one would cover folded
// events, and their later expiry would go unreported, their effect lost
// silently); it is left out, counted as possibly folded, so the deletion
// reports replay.ErrHistoryLost naming it (the safe side) instead of
// folding again.
func TestRunnerUnfoldedCap(t *testing.T) {
	for _, holes := range []int{snapshot.MaxUnfolded, snapshot.MaxUnfolded + 1} {
		t.Run(fmt.Sprint(holes), func(t *testing.T) {
			l := countingLog(t) // acct keeps the newest event of each stream
			// seq 1 the retention record (a system event: not folded, so
			// in the first range), then seq 2i acct-i (expired by 2i+1),
			// 2i+1 acct-i: a hole at each even seq.
			var streams []string
			for i := range holes {
				s := fmt.Sprintf("acct-%d", i+1)
				streams = append(streams, s, s)
			}
			last := appendTo(t, l, streams...)
			store, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
			runUntilCaughtUp(t, projection.NewRunner(acctCount, l, store, decode, projection.RunnerOptions{}), last, true)

			var want []snapshot.SeqRange
			for i := range min(holes, snapshot.MaxUnfolded) {
				want = append(want, snapshot.SeqRange{From: uint64(2*i + 2), To: uint64(2*i + 2)})
				if i == 0 {
					want[0].From = 1 // and the record
				}
			}
			cps, err := store.List("projection/acct")
			if err != nil || len(cps) != 1 || cps[0].Seq != last {
				t.Fatalf("checkpoints %v, %v; want one at seq %d", cps, err, last)
			}
			if diff := cmp.Diff(want, cps[0].Unfolded.Slice()); diff != "" {
				t.Errorf("Unfolded of the checkpoint after %d holes (-want +got):\n%s", holes, diff)
			}

			r := projection.NewRunner(acctCount, l, store, decode, projection.RunnerOptions{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			if err := projection.WaitGuarded(t, r, last, "the last event"); err != nil {
				t.Fatal(err)
			}
			pos, _, err := l.DeleteStream(t.Context(), "acct-1")
			if err != nil {
				t.Fatal(err)
			}
			err = projection.WaitGuarded(t, r, pos.Seq, "the deletion (or its HistoryLostError)")
			if holes <= snapshot.MaxUnfolded {
				if err != nil {
					t.Fatalf("WaitFor(%d), the deletion after %d holes, all recorded: %v, want the view folded again", pos.Seq, holes, err)
				}
				return
			}
			left := uint64(2*snapshot.MaxUnfolded + 2) // the first hole not recorded
			if hl, ok := errors.AsType[*replay.HistoryLostError](err); !ok || hl.ExpiredSeq != left {
				t.Fatalf("WaitFor(%d), the deletion after %d holes: %v, want a *replay.HistoryLostError naming seq %d, the hole left out", pos.Seq, holes, err, left)
			}
			if err := <-done; !errors.Is(err, replay.ErrHistoryLost) {
				t.Errorf("Run ended with %v, want ErrHistoryLost", err)
			}
		})
	}
}
