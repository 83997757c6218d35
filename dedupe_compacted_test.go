package evlog

import (
	"errors"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestDedupeRetryAfterCompactedDeletion pins what a retry of an append
// meets once Compact replaced its deleted events by placeholders (which
// hold no ID; docs/FORMAT.md "Event IDs"): with every event deleted it is
// a new append; with only some (a truncation inside the append) it fails
// with ErrDuplicateID and writes nothing — never a partial write, and never
// the deleted events written back beside their surviving originals.
func TestDedupeRetryAfterCompactedDeletion(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name    string
		delete  func(l *Log) error
		wantDup bool
	}{
		{"all deleted", func(l *Log) error { _, _, err := l.DeleteStream(ctx, "cart-1"); return err }, false},
		{"first truncated", func(l *Log) error { _, err := l.TruncateStream(ctx, "cart-1", 2); return err }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openMem(t, vfs.NewMem(), Options{SegmentSize: MinSegmentSize})
			defer l.Close()
			evs := []Envelope{idEv("a", "t", 'a'), idEv("b", "t", 'b')}
			if _, err := l.Append(ctx, "cart-1", ExpectNoStream, evs...); err != nil {
				t.Fatal(err)
			}
			if err := tc.delete(l); err != nil {
				t.Fatal(err)
			}
			// Seal the segment holding them, and compact it.
			if _, err := l.Append(ctx, "pad-1", ExpectAny, Envelope{Type: "t", Data: make([]byte, MinSegmentSize)}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(ctx, "pad-1", ExpectAny, Envelope{Type: "t"}); err != nil {
				t.Fatal(err)
			}
			rep, err := l.Compact(ctx, CompactOptions{})
			if err != nil || len(rep.Groups) == 0 || !rep.Groups[0].Redact {
				t.Fatalf("compaction: %+v %v, want a redaction", rep, err)
			}
			last := l.LastSeq()
			_, err = l.Append(ctx, "cart-1", ExpectAny, evs...)
			switch {
			case tc.wantDup && !errors.Is(err, ErrDuplicateID):
				t.Fatalf("retry: %v, want ErrDuplicateID", err)
			case tc.wantDup && l.LastSeq() != last:
				t.Fatalf("a refused retry wrote %d events", l.LastSeq()-last)
			case !tc.wantDup && (err != nil || l.LastSeq() != last+2):
				t.Fatalf("retry after its events were deleted and compacted: %v, log grew by %d, want a new append", err, l.LastSeq()-last)
			}
		})
	}
}
