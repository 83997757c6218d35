package replay_test

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
)

// recordingSource is a Source that records which of Range and
// RangeBorrowed replay read through.
type recordingSource struct {
	*evlog.Log
	calls []string
}

func (s *recordingSource) Range(ctx context.Context, from, to uint64) iter.Seq2[event.Envelope, error] {
	s.calls = append(s.calls, "Range")
	return s.Log.Range(ctx, from, to)
}

func (s *recordingSource) RangeBorrowed(ctx context.Context, from, to uint64) iter.Seq2[event.Envelope, error] {
	s.calls = append(s.calls, "RangeBorrowed")
	return s.Log.RangeBorrowed(ctx, from, to)
}

// plainSource hides RangeBorrowed: a Source that cannot lend.
type plainSource struct{ replay.Source }

// Run reads through RangeBorrowed exactly when the spec says NoCopy and
// the source can lend, reads through Range otherwise, and computes the
// same state either way (with and without a snapshot).
func TestRunNoCopyReadsBorrowed(t *testing.T) {
	dir := t.TempDir()
	l := openRW(t, dir, evlog.Options{})
	tm := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 40 {
		appendItems(t, l, []string{"a", "b", "c"}[i%3], tm.Add(time.Duration(i)*time.Second), item{Name: "sku", Qty: i})
	}
	events := readAll(t, l)
	store := snapshots(t, l)
	saveStats(t, store, l.LogID(), statsSubject, events, 25)
	want := refStats(events, len(events))
	for _, opts := range []replay.Options{{}, {NoSnapshot: true}} {
		for _, tc := range []struct {
			name  string
			spec  replay.Spec[stats, event.Envelope]
			plain bool
			calls []string
		}{
			{"copy", statsSpec, false, []string{"Range"}},
			{"nocopy", statsSpecNoCopy, false, []string{"RangeBorrowed"}},
			{"nocopy/plain source", statsSpecNoCopy, true, nil},
		} {
			rec := &recordingSource{Log: l}
			var src replay.Source = rec
			if tc.plain {
				src = plainSource{l}
			}
			p, err := replay.MakePlan(t.Context(), src, store, statsSubject, replay.Latest(), opts)
			if err != nil {
				t.Fatal(err)
			}
			rec.calls = nil // MakePlan reads the snapshot's anchor through Range
			res, err := replay.Run(t.Context(), src, p, tc.spec)
			if err != nil {
				t.Fatalf("%s %+v: %v", tc.name, opts, err)
			}
			if diff := cmp.Diff(want, res.State, stateCmp); diff != "" {
				t.Errorf("%s %+v: state differs from the reference (-want +got):\n%s", tc.name, opts, diff)
			}
			if diff := cmp.Diff(tc.calls, rec.calls); diff != "" {
				t.Errorf("%s %+v: reads (-want +got):\n%s", tc.name, opts, diff)
			}
		}
	}
}
