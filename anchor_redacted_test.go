package evlog

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
)

// TestSnapshotAnchoredOnARedactedEvent: a snapshot records the anchor
// (snapshot.AnchorOf) of its last event; once that event has expired and
// Compact has replaced it by a placeholder, the log no longer holds what
// the anchor digests, and replay checks the snapshot by the event's time
// and stream, as AnchorEvent documents: the snapshot is still used and
// keeps the expired events' effect. (Comparing the anchor with the
// placeholder's would pass over every such snapshot.)
func TestSnapshotAnchoredOnARedactedEvent(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	l := openMem(t, vfs.NewMem(), Options{
		SegmentSize: MinSegmentSize,
		Clock:       func() time.Time { return time.Unix(0, now.Load()).UTC() },
		Retention:   map[string]Retention{"old": {MaxAge: time.Hour}},
	})
	defer l.Close()
	for _, s := range []string{"old-1", "old-2"} {
		if _, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "e", Data: []byte(s)}); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	subj := replay.Subject{Name: "view"}
	res, err := replay.State(ctx, l, snaps, subj, replay.Latest(), derivedSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	meta, _, err := replay.Save(ctx, snaps, l.LogID(), subj, derivedSpec, res)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Anchor == 0 {
		t.Fatal("the snapshot records no anchor")
	}
	// Seal the segment holding seqs 1 and 2, then let them expire and
	// have Compact redact them.
	for i := 0; len(l.v.segs) < 3; i++ {
		if _, err := l.Append(ctx, "keep-1", ExpectAny, Envelope{Type: "e", Data: derivedPayload("keep", i)}); err != nil {
			t.Fatal(err)
		}
	}
	now.Store(t0.Add(2 * time.Hour).UnixNano())
	if _, err := l.Compact(ctx, CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	e, anchor, found, err := l.AnchorEvent(ctx, meta.Seq)
	if err != nil || !found || e.Type != TypeRedacted || anchor != 0 {
		t.Fatalf("AnchorEvent(%d) = %+v, anchor %x, found %v, %v; want the redacted placeholder, anchor 0", meta.Seq, e, anchor, found, err)
	}
	res, err = replay.State(ctx, l, snaps, subj, replay.Latest(), derivedSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Snapshot == nil || res.Plan.Snapshot.Seq != meta.Seq {
		t.Fatalf("plan starts from snapshot %v (fallbacks %+v), want the one at seq %d", res.Plan.Snapshot, res.Plan.Fallbacks, meta.Seq)
	}
	if !slices.Equal(res.State[:2], []string{"old-1", "old-2"}) {
		t.Fatalf("state begins %q, want the expired events' effect kept", res.State[:min(2, len(res.State))])
	}
}
