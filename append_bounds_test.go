package evlog

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
)

// TestAppendRollsBeforeAFormatBound: SegmentSize alone does not keep a
// sealed segment within the bounds of the format (each footer frame at
// most the frame limit): tiny events in a large segment give one stream a
// postings frame, or many streams a name block, past it, and readers then
// refuse the sealed segment — the log no longer opens. The writer must
// roll first. The frame limit is lowered from 64 MiB to 2 KiB, so that
// segments of 64 KiB reach it (as segments of about 1 GiB of 30-byte
// events reach the real one).
func TestAppendRollsBeforeAFormatBound(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream func(batch, i int) string
		batch  int
		typed  bool
		// maxSegs: no more segments than this — the roll looks at the
		// names' real lengths near a bound, not at the longest allowed
		// (which would take one batch per segment here).
		maxSegs int
	}{
		{"one stream's postings", func(int, int) string { return "s" }, 50, false, 0},
		{"many streams' name block", func(b, i int) string { return fmt.Sprintf("%04d", b*10+i) }, 10, false, 300},
		{"many streams' name block, typed", func(b, i int) string { return fmt.Sprintf("%04d", b*10+i) }, 10, true, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restore := testhook.SetFrameLimit(2 << 10)
			defer restore()
			ctx := t.Context()
			mem := vfs.NewMem()
			opts := Options{SegmentSize: 64 << 10, Sync: SyncNever, Clock: fakeClock(t0, 0)}
			l := openMem(t, mem, opts)
			for b := range 6000 / tc.batch {
				var batch []AppendRequest
				for i := range tc.batch {
					s := tc.stream(b, i)
					if n := len(batch); n > 0 && batch[n-1].Stream == s {
						batch[n-1].Events = append(batch[n-1].Events, Envelope{Type: "e"})
						continue
					}
					batch = append(batch, AppendRequest{Stream: s, Expect: ExpectAny, Events: []Envelope{{Type: "e"}}})
				}
				if tc.typed {
					var parts []Batch[delPayload]
					for _, req := range batch {
						evs := make([]Event[delPayload], len(req.Events))
						for k := range evs {
							evs[k] = Event[delPayload]{Type: "e"}
						}
						parts = append(parts, Batch[delPayload]{Stream: req.Stream, Expect: ExpectAny, Events: evs})
					}
					if _, err := Typed[delPayload](l).AppendBatch(ctx, parts); err != nil {
						t.Fatal(err)
					}
				} else if _, err := l.AppendBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			want := readAll(t, l)
			segs, err := l.Segments()
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if len(segs) < 3 {
				t.Fatalf("%d segments: the case should roll", len(segs))
			}
			if tc.maxSegs > 0 && len(segs) > tc.maxSegs {
				t.Errorf("%d segments, want at most %d: the writer rolled as if every name were of the longest length", len(segs), tc.maxSegs)
			}
			r, err := openFS(mem, opts, false)
			if err != nil {
				t.Fatalf("reopen after %d segments: %v", len(segs), err)
			}
			defer r.Close()
			if diff := cmp.Diff(want, readAll(t, r)); diff != "" {
				t.Fatalf("events after reopening (-want +got):\n%s", diff)
			}
			rep, err := verifyFS(ctx, vfs.ReadOnly(mem))
			if err != nil || rep.Corrupt() {
				t.Fatalf("verify: %+v, %v", rep, err)
			}
		})
	}
}
