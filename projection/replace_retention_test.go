package projection_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
)

// *evlog.Log tells the runner whether its events can expire.
var _ projection.RetentionSource = (*evlog.Log)(nil)

// TestRunnerKeepsOtherFoldCheckpointOnLogWithRetention: on a log with
// Retention, the runner of a new fold (a new SchemaVersion) whose view
// reaches the seq S of the old fold's checkpoint used to replace that
// checkpoint, because no event up to S had expired yet. An event up to S
// that expired afterwards (MaxAge as the clock moved, MaxCount as the log
// grew) then had its effect in no checkpoint of the old fold: that fold,
// rolled back to, folded from the first event without it, or failed with
// replay.ErrExpiredUnfolded. On a log whose events can expire the runner
// must keep the other fold's checkpoint, and the old fold must resume
// from it with its full view.
func TestRunnerKeepsOtherFoldCheckpointOnLogWithRetention(t *testing.T) {
	for _, tc := range []struct {
		name string
		// open opens the log; expire makes an event up to the old
		// fold's checkpoint read as gone, and returns the log's last seq.
		open    func(t *testing.T) (*evlog.Log, func(t *testing.T, l *evlog.Log) uint64)
		oldWant map[string]int // the old fold's view after expire
	}{
		{
			name: "MaxAge",
			open: func(t *testing.T) (*evlog.Log, func(*testing.T, *evlog.Log) uint64) {
				l, expire := expiringLog(t)
				return l, func(*testing.T, *evlog.Log) uint64 { expire(); return l.LastSeq() }
			},
			oldWant: map[string]int{"acct-1": 1, "other-1": 1, "acct-2": 1, "other-2": 1},
		},
		{
			name: "MaxCount",
			open: func(t *testing.T) (*evlog.Log, func(*testing.T, *evlog.Log) uint64) {
				l, err := evlog.Open(t.TempDir(), evlog.Options{Retention: map[string]evlog.Retention{"acct": {MaxCount: 1}}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				// A second event of acct-1 expires its first.
				return l, func(t *testing.T, l *evlog.Log) uint64 { return appendTo(t, l, "acct-1") }
			},
			oldWant: map[string]int{"acct-1": 2, "other-1": 1, "acct-2": 1, "other-2": 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, expire := tc.open(t)
			last := appendTo(t, l, "acct-1", "other-1", "acct-2", "other-2")
			store, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
			old := acctCount
			old.Name = "count"
			old.Categories = []string{"acct", "other"}
			runUntilCaughtUp(t, projection.NewRunner(old, l, store, decode, projection.RunnerOptions{}), last, false)
			before, err := store.List("projection/count")
			if err != nil || len(before) != 1 || before[0].Seq != last {
				t.Fatalf("the old fold's checkpoints: %v, %v; want one at seq %d", before, err, last)
			}

			// The new fold reaches the old fold's checkpoint's seq.
			cur := old
			cur.SchemaVersion++
			runUntilCaughtUp(t, projection.NewRunner(cur, l, store, decode, projection.RunnerOptions{}), last, false)
			got, err := store.List("projection/count")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, got); diff != "" {
				t.Errorf("checkpoints at seq %d after the new fold's runner reached it, on a log with Retention (-the old fold's +left):\n%s", last, diff)
			}

			// An event up to that seq expires; then the old fold again
			// (its SchemaVersion rolled back).
			end := expire(t, l)
			back := projection.NewRunner(old, l, store, decode, projection.RunnerOptions{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- back.Run(ctx) }()
			werr := projection.WaitGuarded(t, back, end, "the old fold's view to cover the log")
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("the old fold, rolled back to after an event expired: Run: %v (WaitFor: %v)", err, werr)
			}
			if view, _ := back.State(); !cmp.Equal(tc.oldWant, view) {
				var plan any = "none"
				if p := back.Plan(); p != nil {
					plan = fmt.Sprintf("checkpoint %v, fallbacks %+v", p.Snapshot, p.Fallbacks)
				}
				t.Errorf("the old fold, rolled back to after an event expired, serves %v, want %v (plan: %v)", view, tc.oldWant, plan)
			}
		})
	}
}

// TestRunnerKeepsOtherFoldCheckpointOverSourceThatCannotTell: a source
// that says which events expired (replay.Expirations) but not whether
// they can expire (no projection.RetentionSource) may expire them later:
// the runner keeps another fold's checkpoint at the seq of its view, as
// on a log with retention, unless ReplaceOtherFoldDespiteRetention.
func TestRunnerKeepsOtherFoldCheckpointOverSourceThatCannotTell(t *testing.T) {
	for _, optIn := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReplaceOtherFoldDespiteRetention=%v", optIn), func(t *testing.T) {
			l := openLog(t, t.TempDir())
			t.Cleanup(func() { l.Close() })
			last := appendTo(t, l, "acct-1", "acct-2")
			store, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
			runUntilCaughtUp(t, projection.NewRunner(acctCount, l, store, decode, projection.RunnerOptions{}), last, false)
			before, err := store.List("projection/acct")
			if err != nil || len(before) != 1 || before[0].Seq != last {
				t.Fatalf("the old fold's checkpoints: %v, %v; want one at seq %d", before, err, last)
			}
			src := struct {
				projection.Source
				replay.Expirations
			}{l, l}
			if _, ok := any(src).(projection.RetentionSource); ok {
				t.Fatal("the wrapped source still tells whether its events expire")
			}
			cur := acctCount
			cur.SchemaVersion++
			runUntilCaughtUp(t, projection.NewRunner(cur, src, store, decode, projection.RunnerOptions{ReplaceOtherFoldDespiteRetention: optIn}), last, false)
			got, err := store.List("projection/acct")
			if err != nil || len(got) != 1 {
				t.Fatalf("checkpoints: %v, %v; want one", got, err)
			}
			if kept := cmp.Equal(before, got); kept == optIn {
				t.Errorf("checkpoint at seq %d: %+v, the old fold's was %+v; want it replaced: %v", last, got[0], before[0], optIn)
			}
		})
	}
}
