package evlog

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

var (
	_ replay.Anchors         = (*Log)(nil)
	_ replay.StreamDeletions = (*Log)(nil)
	_ replay.Deletions       = (*Log)(nil)
)

// TestReplayKeepsExpiredEventsInSnapshot: a checkpoint of the whole log
// (a projection's) whose last event has since expired by retention is
// still used: the view keeps the expired events' effect across a restart.
// It used to be passed over ("its last event is not in the log") and the
// view was folded again from what still reads, silently losing them.
func TestReplayKeepsExpiredEventsInSnapshot(t *testing.T) {
	ctx := t.Context()
	l, snaps, expire := expiringView(t, Options{}, "keep-1", "old-1", "old-2")
	expire() // old-1 and old-2 expire
	res, err := replay.State(ctx, l, snaps, viewSubject, replay.Latest(), derivedSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"keep-1", "old-1", "old-2"}; !slices.Equal(res.State, want) || res.Plan.Snapshot == nil {
		t.Fatalf("view %q (snapshot %v, fallbacks %+v), want %q from the snapshot", res.State, res.Plan.Snapshot, res.Plan.Fallbacks, want)
	}
}

// viewSubject is the subject of expiringView's snapshot.
var viewSubject = replay.Subject{Name: "view"}

// expiringView opens a log (opts, with a clock of its own and retention of
// an hour for category "old") holding an event in each of streams (payload:
// the stream's name), saves the snapshot of viewSubject (derivedSpec)
// through the last, and returns the log, its store and a function that
// moves the clock two hours on. The log is closed when the test ends.
func expiringView(t *testing.T, opts Options, streams ...string) (*Log, *snapshot.Store, func()) {
	t.Helper()
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	opts.Clock = func() time.Time { return time.Unix(0, now.Load()).UTC() }
	opts.Retention = map[string]Retention{"old": {MaxAge: time.Hour}}
	l := openMem(t, vfs.NewMem(), opts)
	t.Cleanup(func() { l.Close() })
	for _, s := range streams {
		if _, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "e", Data: []byte(s)}); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	res, err := replay.State(ctx, l, snaps, viewSubject, replay.Latest(), derivedSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := replay.Save(ctx, snaps, l.LogID(), viewSubject, derivedSpec, res); err != nil {
		t.Fatal(err)
	}
	return l, snaps, func() { now.Store(t0.Add(2 * time.Hour).UnixNano()) }
}
