package evlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestVerifyReportsBadMarker: a deletion marker that checksums but does
// not decode fails every read of the log, so Verify reports it as
// corruption naming its segment file and frame offset (as the read path
// does), whether the marker lies in the newest segment or in a sealed one.
// The log's other events still count.
func TestVerifyReportsBadMarker(t *testing.T) {
	tests := []struct {
		name         string
		after        int // events of ~2 KiB appended after the marker
		wantEvents   uint64
		wantSegments int
	}{
		{"newest segment", 0, 5, 1},
		{"sealed segment", 3, 8, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem, want := memLogWithBadMarker(t, tc.after)
			rep, err := verifyFS(t.Context(), vfs.ReadOnly(mem))
			if err != nil {
				t.Fatal(err)
			}
			type finding struct {
				Kind   FindingKind
				File   string
				Offset int64
			}
			var got []finding
			for _, f := range rep.Findings {
				got = append(got, finding{f.Kind, f.File, f.Offset})
				if !errors.Is(f.Err, ErrCorrupt) {
					t.Errorf("finding %v: Err %v does not match ErrCorrupt", f, f.Err)
				}
			}
			if d := cmp.Diff([]finding{{FindingCorrupt, want.File, want.Offset}}, got); d != "" {
				t.Errorf("findings %v (-want +got):\n%s", rep.Findings, d)
			}
			if !rep.Corrupt() || rep.Events != tc.wantEvents || rep.Segments != tc.wantSegments {
				t.Errorf("Corrupt() = %v, Events = %d, Segments = %d; want true, %d, %d", rep.Corrupt(), rep.Events, rep.Segments, tc.wantEvents, tc.wantSegments)
			}
		})
	}
}

// TestVerifyBesideWriterWithMarkers: now that Verify decodes deletion
// markers, it must still never report a state a writer passes through:
// beside a writer appending, deleting, truncating and tombstoning streams
// (markers in the newest segment, in sealed ones and, after compaction,
// in compressed ones), with rolls and compactions, every round is clean.
// It asserts only what must always hold, whatever the interleaving.
func TestVerifyBesideWriterWithMarkers(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
	defer w.Close()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stop() // the reader stops when the writer is done
		for i := range 300 {
			s := fmt.Sprintf("s-%d", i%3)
			var err error
			switch i % 10 {
			case 3:
				_, err = w.TruncateStream(ctx, s, 2)
			case 6:
				_, _, err = w.DeleteStream(ctx, s)
			case 9:
				_, err = w.TombstoneStream(ctx, fmt.Sprintf("gone-%d", i))
			default:
				evs := make([]Envelope, 5)
				for j := range evs {
					evs[j] = Envelope{Type: "t", Data: make([]byte, 80)}
				}
				_, err = w.Append(ctx, s, ExpectAny, evs...)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; wctx.Err() == nil; i++ {
			if _, err := w.Compact(ctx, CompactOptions{TargetSize: 64 << 10, Compress: i%2 == 1}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	ro := vfs.ReadOnly(mem)
	for round := 0; wctx.Err() == nil || round < 3; round++ {
		rep, err := besideWriter(ro, func(*segment.Dir) (VerifyReport, error) { return verifyFS(ctx, ro) },
			func(r VerifyReport, err error) bool { return err != nil || r.Corrupt() })
		if err != nil || rep.Corrupt() {
			t.Errorf("round %d: verify beside the writer: %v %v", round, rep.Findings, err)
		}
	}
	wg.Wait()
}
