package evlog

import (
	"fmt"
	"testing"

	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestCompactRedactBounds: compaction that redacts deleted events into
// placeholders plans its outputs on an estimate of what the placeholders
// take (redactedExtent), not on what they take once written. With the
// frame limit lowered from 64 MiB to 2 KiB, so that the outputs reach it
// with kilobytes, every compaction of a log with deletions must succeed,
// the log must verify, and its events must read the same (the deleted
// ones gone). The events are as small as an event gets, so that a
// placeholder ("$redacted", no data) is larger than the event it
// replaces; the kept and deleted streams interleave, so that redaction
// changes the kept streams' postings deltas too.
func TestCompactRedactBounds(t *testing.T) {
	restore := testhook.SetFrameLimit(2 << 10)
	t.Cleanup(restore)
	type row struct {
		name     string
		streams  []string
		events   int
		segSize  int64
		compress bool
		// merged: the log is compacted before the deletion, so that the
		// segments redacted are already merged up to the bound.
		merged bool
		delete func(t *testing.T, l *Log)
	}
	var rows []row
	for _, merged := range []bool{false, true} {
		for _, compress := range []bool{false, true} {
			name := fmt.Sprintf("merged=%v/compress=%v", merged, compress)
			four := []string{"a-1", "b-1", "c-1", "d-1"}
			// Three streams whose names make an event frame some 41
			// bytes: the kept stream's postings deltas (three frames) are
			// one-byte uvarints, which two placeholders in between (8
			// bytes longer each) make two-byte ones.
			three := []string{"aaaaaaa-1", "bbbbbbb-1", "ccccccc-1"}
			rows = append(rows,
				row{name: name + "/delete", streams: four, events: 4000, segSize: 8 << 10, compress: compress, merged: merged, delete: deleteStreams("b-1", "d-1")},
				row{name: name + "/truncate", streams: four, events: 4000, segSize: 8 << 10, compress: compress, merged: merged, delete: truncateStream("a-1", 400)},
				row{name: name + "/deltas grow", streams: three, events: 9000, segSize: 16 << 10, compress: compress, merged: merged, delete: deleteStreams("bbbbbbb-1", "ccccccc-1")})
		}
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			mem := vfs.NewMem()
			l := openMem(t, mem, Options{SegmentSize: tc.segSize, Sync: SyncNever, Clock: fakeClock(t0, 0), MaxClockSkew: NoClockSkewLimit})
			defer l.Close()
			var batch []AppendRequest
			for i := range tc.events {
				batch = append(batch, AppendRequest{Stream: tc.streams[i%len(tc.streams)], Expect: ExpectAny, Events: []Envelope{{Type: "e"}}})
				if len(batch) == 60 {
					if _, err := l.AppendBatch(ctx, batch); err != nil {
						t.Fatal(err)
					}
					batch = nil
				}
			}
			if tc.merged {
				for i := range 2 {
					if _, err := l.Compact(ctx, CompactOptions{Compress: tc.compress, TargetSize: 1 << 20}); err != nil {
						t.Fatalf("compaction %d before the deletion: %v", i, err)
					}
				}
			}
			tc.delete(t, l)
			want := readAll(t, l)
			if len(want) >= tc.events {
				t.Fatalf("%d events read after the deletion: nothing was deleted", len(want))
			}
			for i := range 3 {
				before := extents(t, mem)
				rep, err := l.Compact(ctx, CompactOptions{Compress: tc.compress, TargetSize: 1 << 20})
				if err != nil {
					t.Fatalf("compaction %d: %v", i, err)
				}
				after := extents(t, mem)
				for _, g := range rep.Groups {
					// The planner's bound of the output must bound it.
					var bound segment.Extent
					for j, in := range g.Inputs {
						e := before[in]
						if g.Redact {
							e = redactedExtent(e)
						}
						if j == 0 {
							bound = e
						} else {
							bound = bound.Merge(e)
						}
					}
					if got := after[g.Output]; got.Records > bound.Records || got.Postings > bound.Postings || got.Events != bound.Events {
						t.Errorf("compaction %d: %s (redact %v) has extent %+v, beyond the planner's bound %+v", i, g.Output, g.Redact, got, bound)
					}
				}
				redact := 0
				for _, g := range rep.Groups {
					if g.Redact {
						redact++
					}
				}
				t.Logf("compaction %d: %d -> %d segments, %d groups redacting", i, rep.SegmentsBefore, rep.SegmentsAfter, redact)
				if i == 0 && redact == 0 {
					t.Fatalf("compaction %d redacted nothing: %+v", i, rep.Groups)
				}
				if diff := envsDiffExact(want, readAll(t, l)); diff != "" {
					t.Fatalf("compaction %d: events changed (-want +got):\n%s", i, diff)
				}
				vrep, err := verifyFS(ctx, vfs.ReadOnly(mem))
				if err != nil || vrep.Corrupt() {
					t.Fatalf("compaction %d: verify: %+v, %v", i, vrep, err)
				}
			}
		})
	}
}

func deleteStreams(names ...string) func(*testing.T, *Log) {
	return func(t *testing.T, l *Log) {
		for _, s := range names {
			if _, _, err := l.DeleteStream(t.Context(), s); err != nil {
				t.Fatal(fmt.Errorf("deleting %s: %w", s, err))
			}
		}
	}
}

func truncateStream(name string, before uint64) func(*testing.T, *Log) {
	return func(t *testing.T, l *Log) {
		if _, err := l.TruncateStream(t.Context(), name, before); err != nil {
			t.Fatal(err)
		}
	}
}

// extents returns the extent of every sealed segment of fsys, by name.
func extents(t *testing.T, fsys vfs.FS) map[string]segment.Extent {
	t.Helper()
	dir, err := segment.ReadDir(fsys)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]segment.Extent{}
	for _, f := range dir.Segments {
		s, err := segment.Open(vfs.ReadOnly(fsys), f.Name)
		if err != nil {
			t.Fatal(err)
		}
		if s.Sealed {
			if out[f.Name], err = s.Extent(); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
	}
	return out
}
