package evlog

import (
	"slices"
	"testing"

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
	l, snaps, expire := expiringView(t, Options{SegmentSize: MinSegmentSize}, "old-1", "old-2")
	metas, err := snaps.List(viewSubject.Name)
	if err != nil || len(metas) != 1 || metas[0].Anchor == 0 {
		t.Fatalf("snapshots %+v, %v: want one recording an anchor", metas, err)
	}
	meta := metas[0]
	// Seal the segment holding seqs 1 and 2, then let them expire and
	// have Compact redact them.
	for i := 0; len(l.v.segs) < 3; i++ {
		if _, err := l.Append(ctx, "keep-1", ExpectAny, Envelope{Type: "e", Data: derivedPayload("keep", i)}); err != nil {
			t.Fatal(err)
		}
	}
	expire()
	if _, err := l.Compact(ctx, CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	e, anchor, found, err := l.AnchorEvent(ctx, meta.Seq)
	if err != nil || !found || e.Type != TypeRedacted || anchor != 0 {
		t.Fatalf("AnchorEvent(%d) = %+v, anchor %x, found %v, %v; want the redacted placeholder, anchor 0", meta.Seq, e, anchor, found, err)
	}
	res, err := replay.State(ctx, l, snaps, viewSubject, replay.Latest(), derivedSpec, replay.Options{})
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
