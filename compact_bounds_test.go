package evlog

import (
	"testing"

	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
)

// TestCompactCompressedPostingsBound: compressed inputs count as the bytes
// they take on disk, so repeated compaction with Compress merges far more
// events under TargetSize than a plain segment holds. One stream's
// postings frame in the merged output then grows past the frame bound
// readers accept; the output must be cut before that (not written,
// refused by its own verification, and the same group planned again at
// every compaction). The bound is lowered from 64 MiB to 4 KiB to reach
// it with kilobytes.
func TestCompactCompressedPostingsBound(t *testing.T) {
	const limit = 4 << 10
	restore := testhook.SetFrameLimit(limit)
	t.Cleanup(restore)
	ctx := t.Context()
	mem := vfs.NewMem()
	opts := Options{SegmentSize: 16 << 10, Sync: SyncNever, Clock: fakeClock(t0, 0), MaxClockSkew: NoClockSkewLimit}
	l := openMem(t, mem, opts)
	defer l.Close()
	evs := make([]Envelope, 50)
	for i := range evs {
		evs[i] = Envelope{Type: "e"}
	}
	for range 120 { // 6000 events of one stream: some 20 plain segments
		if _, err := l.Append(ctx, "s", ExpectAny, evs...); err != nil {
			t.Fatal(err)
		}
	}
	want := readAll(t, l)
	// Each plain segment compressed alone (its postings, some 700 bytes,
	// within the bound), then the compressed ones merged.
	for i := range 3 {
		rep, err := l.Compact(ctx, CompactOptions{Compress: true, TargetSize: 16 << 10})
		if err != nil {
			t.Fatalf("compaction %d: %v", i, err)
		}
		t.Logf("compaction %d: %d -> %d segments", i, rep.SegmentsBefore, rep.SegmentsAfter)
		if i == 1 && rep.SegmentsAfter >= rep.SegmentsBefore {
			t.Fatalf("compaction %d merged nothing (%d segments before, %d after)", i, rep.SegmentsBefore, rep.SegmentsAfter)
		}
	}
	if diff := envsDiffExact(want, readAll(t, l)); diff != "" {
		t.Fatalf("events changed (-want +got):\n%s", diff)
	}
	rep, err := verifyFS(ctx, vfs.ReadOnly(mem))
	if err != nil || rep.Corrupt() {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}
