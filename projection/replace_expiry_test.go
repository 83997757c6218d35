package projection_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
)

// TestRunnerReplaceKeepsCheckpointWhoseEventsExpireMeanwhile: the runner
// replaces another fold's checkpoint at the seq of its view only when no
// event up to that seq has expired (the other fold's view can then be
// folded again from the log). Retention by MaxAge expires events as the
// clock moves, with no write to the log: when the acct events the other
// fold's checkpoint folded expired between the runner's check and its
// Remove, the runner used to remove that checkpoint anyway, the only
// record of their effect, and the other fold (after a rollback of its
// Categories) then served a view without them. The checkpoint must be
// kept, and the other fold must serve its view as before. (On a log with
// retention the runner replaces another fold's checkpoint only with
// RunnerOptions.ReplaceOtherFoldDespiteRetention.)
func TestRunnerReplaceKeepsCheckpointWhoseEventsExpireMeanwhile(t *testing.T) {
	l, expire := expiringLog(t)
	last := appendTo(t, l, "acct-1", "other-1", "acct-2", "other-2")
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	old := acctCount
	old.Name = "count"
	old.Categories = []string{"acct", "other"}
	oldRunner := projection.NewRunner(old, l, store, decode, projection.RunnerOptions{})
	runUntilCaughtUp(t, oldRunner, last, false)
	oldView, _ := oldRunner.State()
	before, err := store.List("projection/count")
	if err != nil || len(before) != 1 || before[0].Seq != last {
		t.Fatalf("the old fold's checkpoints: %v, %v; want one at seq %d", before, err, last)
	}

	// The acct events expire (MaxAge passes) right before the runner's
	// Remove: after its check found nothing expired.
	cps := &interleavingStore{Store: store, before: expire}
	cur := old
	cur.Categories = []string{"other"}
	runUntilCaughtUp(t, projection.NewRunner(cur, l, cps, decode, projection.RunnerOptions{ReplaceOtherFoldDespiteRetention: true}), last, false)
	if cps.before != nil {
		t.Fatal("the runner did not try to replace the old fold's checkpoint: the interleaving did not happen")
	}

	got, err := store.List("projection/count")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, got); diff != "" {
		t.Errorf("checkpoints at seq %d after the events the old fold's checkpoint folded expired during its replacement (-the old fold's +left):\n%s", last, diff)
	}
	// The old fold again (its Categories rolled back): its view is the
	// one it had, expired events included.
	back := projection.NewRunner(old, l, store, decode, projection.RunnerOptions{})
	runUntilCaughtUp(t, back, last, false)
	if view, _ := back.State(); !cmp.Equal(oldView, view) {
		t.Errorf("the old fold, rolled back to, serves %v; it served %v before the replacement (the expired events' effect lost)", view, oldView)
	}
}

// retentionFlip is a log whose ExpiresEvents answer the test sets: a log
// whose writer records retention while the runner replaces a checkpoint
// (another process reopening it with Options.Retention).
type retentionFlip struct {
	*evlog.Log
	expires atomic.Bool
}

func (l *retentionFlip) ExpiresEvents(context.Context) (bool, error) { return l.expires.Load(), nil }

// TestRunnerReplaceKeepsCheckpointWhenRetentionRecordedMeanwhile: the
// runner replaces another fold's checkpoint only on a log whose events
// cannot expire, and asks again once it has removed it: when the log
// records retention between its first question and the removal, an event
// the removed checkpoint folded may expire later, so it must be saved back
// (same Meta) rather than replaced.
func TestRunnerReplaceKeepsCheckpointWhenRetentionRecordedMeanwhile(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	last := appendTo(t, l, "acct-1", "other-1", "acct-2")
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	old := acctCount
	old.Name = "count"
	runUntilCaughtUp(t, projection.NewRunner(old, l, store, decode, projection.RunnerOptions{}), last, false)
	before, err := store.List("projection/count")
	if err != nil || len(before) != 1 || before[0].Seq != last {
		t.Fatalf("the old fold's checkpoints: %v, %v; want one at seq %d", before, err, last)
	}

	src := &retentionFlip{Log: l}
	cps := &interleavingStore{Store: store, before: func() { src.expires.Store(true) }}
	cur := old
	cur.SchemaVersion++
	runUntilCaughtUp(t, projection.NewRunner(cur, src, cps, decode, projection.RunnerOptions{}), last, false)
	if cps.before != nil {
		t.Fatal("the runner did not try to replace the old fold's checkpoint: the interleaving did not happen")
	}
	got, err := store.List("projection/count")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, got); diff != "" {
		t.Errorf("checkpoints at seq %d after retention was recorded during their replacement (-the old fold's +left):\n%s", last, diff)
	}
}
