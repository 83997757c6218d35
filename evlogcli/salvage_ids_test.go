package evlogcli

import (
	"path/filepath"
	"testing"

	"github.com/evlog/evlog"
)

// TestSalvageKeepsPlaceholderIDs: an append with event IDs, its stream
// deleted and compacted (a placeholder keeps each ID), then salvaged: a
// client's retry of that append against NEWDIR must write nothing, as it
// writes nothing against DIR (TestDedupeRetryAfterRedaction).
//
// Known gap (docs/CLI.md, salvage: "Nor does it hold the IDs of the
// events left out"): salvage does not carry the placeholders' IDs yet, so
// the retry writes the deleted events again. Skipped until it does;
// without the Skip it fails: "the retry of a deleted, compacted append
// against the salvaged log wrote 2 events (seqs 3..4), want none".
func TestSalvageKeepsPlaceholderIDs(t *testing.T) {
	t.Skip("salvage does not carry placeholders' IDs into NEWDIR yet (the retry writes 2 events); design pending")
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "log")
	l, err := evlog.Open(dir, evlog.Options{SegmentSize: evlog.MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	evs := []evlog.Envelope{{ID: "order-a", Type: "t", Data: mpStr("a")}, {ID: "order-b", Type: "t", Data: mpStr("b")}}
	if _, err := l.Append(ctx, "cart-1", evlog.ExpectNoStream, evs...); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.DeleteStream(ctx, "cart-1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{evlog.MinSegmentSize, 0} { // seal the segment holding them
		if _, err := l.Append(ctx, "pad-1", evlog.ExpectAny, evlog.Envelope{Type: "t", Data: make([]byte, n)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Compact(ctx, evlog.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "salvaged")
	mustRun(t, "salvage", dir, out)
	n, err := evlog.Open(out, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	before := n.LastSeq()
	if _, err := n.Append(ctx, "cart-1", evlog.ExpectNoStream, evs...); err != nil {
		t.Fatalf("the retry against NEWDIR: %v", err)
	}
	if after := n.LastSeq(); after != before {
		t.Errorf("the retry of a deleted, compacted append against the salvaged log wrote %d events (seqs %d..%d), want none: salvage lost the placeholders' IDs", after-before, before+1, after)
	}
}
