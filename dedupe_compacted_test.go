package evlog

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestDedupeRetryAfterCompactedDeletion pins what an append reusing the
// IDs of events deleted and then replaced by placeholders (Compact) meets
// (docs/FORMAT.md "Event IDs"). A placeholder keeps its event's ID,
// stream and schema version, not its type, meta or data: a retry (all or
// only some of the events deleted) succeeds with the original positions
// and writes nothing; reusing the IDs in another stream, or with other
// content for an event that was not deleted, fails with ErrDuplicateID;
// other content for a deleted event cannot be told from a retry. A log
// compacted by a version whose placeholders kept no ID
// (placeholdersWithoutID) answers as it did then: a new append when every
// event was deleted, ErrDuplicateID when only some were.
func TestDedupeRetryAfterCompactedDeletion(t *testing.T) {
	ctx := t.Context()
	const secret = "SECRET-PAYLOAD-A"
	evs := []Envelope{{ID: "a", Type: "t", Data: []byte("\xb0" + secret)}, idEv("b", "t", 'b')}
	deleteAll := func(l *Log) error { _, _, err := l.DeleteStream(ctx, "cart-1"); return err }
	truncateFirst := func(l *Log) error { _, err := l.TruncateStream(ctx, "cart-1", 2); return err }
	const (
		retry = iota // the original position, nothing written
		dup          // ErrDuplicateID, nothing written
		fresh        // written as a new append
	)
	for _, tc := range []struct {
		name        string
		delete      func(l *Log) error
		oldVersion  bool // placeholders without ID
		stream      string
		evs         []Envelope
		want        int
		wantOrigSeq uint64 // of the *DuplicateIDError
	}{
		{"all deleted", deleteAll, false, "cart-1", evs, retry, 0},
		{"first truncated", truncateFirst, false, "cart-1", evs, retry, 0},
		{"all deleted, another stream", deleteAll, false, "cart-2", evs, dup, 1},
		{"all deleted, other data", deleteAll, false, "cart-1", []Envelope{idEv("a", "u", 'x'), idEv("b", "u", 'y')}, retry, 0},
		{"first truncated, the kept event's data differs", truncateFirst, false, "cart-1", []Envelope{evs[0], idEv("b", "t", 'y')}, dup, 2},
		{"all deleted, old placeholders", deleteAll, true, "cart-1", evs, fresh, 0},
		{"first truncated, old placeholders", truncateFirst, true, "cart-1", evs, dup, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.oldVersion {
				placeholdersWithoutID = true
				defer func() { placeholdersWithoutID = false }()
			}
			mem := vfs.NewMem()
			l := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
			defer l.Close()
			p1, err := l.Append(ctx, "cart-1", ExpectNoStream, evs...)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.delete(l); err != nil {
				t.Fatal(err)
			}
			compactAway(t, l, mem, secret)
			last := l.LastSeq()
			p2, err := l.Append(ctx, tc.stream, ExpectAny, tc.evs...)
			switch tc.want {
			case retry:
				if err != nil || !cmp.Equal(p1, p2) || l.LastSeq() != last {
					t.Fatalf("retry: %+v, %v, and the log grew by %d; want the original position %+v and nothing written", p2, err, l.LastSeq()-last, p1)
				}
			case dup:
				de, ok := errors.AsType[*DuplicateIDError](err)
				if !ok || de.OrigSeq != tc.wantOrigSeq {
					t.Fatalf("append: %v, want a *DuplicateIDError naming seq %d", err, tc.wantOrigSeq)
				}
				if l.LastSeq() != last {
					t.Fatalf("a refused append wrote %d events", l.LastSeq()-last)
				}
			case fresh:
				if err != nil || l.LastSeq() != last+2 {
					t.Fatalf("append: %v, log grew by %d, want a new append", err, l.LastSeq()-last)
				}
			}
			rep, err := verifyFS(ctx, vfs.ReadOnly(mem))
			if err != nil || rep.Corrupt() {
				t.Fatalf("verify after the compaction: %+v, %v", rep, err)
			}
		})
	}
}
