package evlog

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestDedupeRetryAfterRedaction: a retry of an append whose events all
// read as gone — deleted, truncated, expired by MaxAge or MaxCount — and
// were then replaced by placeholders (Compact) is still a retry, as it is
// before the compaction (TestDedupeRetryAfterDelete): it writes nothing and
// returns the original positions, in-process and after a reopen (the ID
// index then built from the compacted segments), whether the client
// re-sends its expectation or ExpectAny. A retry that wrote the events
// again would bring back data its owner deleted.
func TestDedupeRetryAfterRedaction(t *testing.T) {
	const secret = "SECRET-CART-PAYLOAD"
	type setup struct {
		retention map[string]Retention
		gone      func(t *testing.T, l *Log, advance func(time.Duration))
		// tombstoned: appends to the stream fail with ErrStreamDeleted
		// (a retry too, before the compaction as after it).
		tombstoned bool
	}
	for name, s := range map[string]setup{
		"deleted": {gone: func(t *testing.T, l *Log, _ func(time.Duration)) {
			if _, _, err := l.DeleteStream(t.Context(), "cart-1"); err != nil {
				t.Fatal(err)
			}
		}},
		"tombstoned": {tombstoned: true, gone: func(t *testing.T, l *Log, _ func(time.Duration)) {
			if _, err := l.TombstoneStream(t.Context(), "cart-1"); err != nil {
				t.Fatal(err)
			}
		}},
		"truncated": {gone: func(t *testing.T, l *Log, _ func(time.Duration)) {
			if _, err := l.TruncateStream(t.Context(), "cart-1", 3); err != nil {
				t.Fatal(err)
			}
		}},
		"expired MaxAge": {
			retention: map[string]Retention{"cart": {MaxAge: time.Hour}},
			gone:      func(t *testing.T, l *Log, advance func(time.Duration)) { advance(2 * time.Hour) },
		},
		"expired MaxCount": {
			retention: map[string]Retention{"cart": {MaxCount: 1}},
			gone: func(t *testing.T, l *Log, _ func(time.Duration)) {
				if _, err := l.Append(t.Context(), "cart-1", ExpectAny, Envelope{Type: "t"}); err != nil {
					t.Fatal(err)
				}
			},
		},
	} {
		for _, reopen := range []bool{false, true} {
			for exp, expName := range map[Expectation]string{ExpectNoStream: "unchanged", ExpectAny: "any"} {
				t.Run(fmt.Sprintf("%s/reopen=%v/expect=%s", name, reopen, expName), func(t *testing.T) {
					ctx := t.Context()
					now := t0
					opts := Options{SegmentSize: MinSegmentSize, Clock: func() time.Time { return now }, Retention: s.retention}
					mem := vfs.NewMem()
					l := openMem(t, mem, opts)
					defer func() { l.Close() }()
					evs := []Envelope{
						{ID: "order-a", Type: "t", Data: []byte("\xb3" + secret)},
						{ID: "order-b", Type: "t", Data: []byte("\xa1b")},
					}
					p1, err := l.Append(ctx, "cart-1", ExpectNoStream, evs...)
					if err != nil {
						t.Fatal(err)
					}
					s.gone(t, l, func(d time.Duration) { now = now.Add(d) })
					compactAway(t, l, mem, secret)
					if reopen {
						if err := l.Close(); err != nil {
							t.Fatal(err)
						}
						l = openMem(t, mem, opts)
					}
					last := l.LastSeq()
					p2, err := l.Append(ctx, "cart-1", exp, evs...)
					switch {
					case s.tombstoned && !errors.Is(err, ErrStreamDeleted):
						t.Fatalf("retry to a tombstoned stream after its events were compacted: %v, want ErrStreamDeleted", err)
					case s.tombstoned:
						p2 = p1
					case err != nil:
						t.Fatalf("retry after its events were made gone and compacted: %v, want the original position %+v", err, p1)
					}
					if diff := cmp.Diff(p1, p2); diff != "" || l.LastSeq() != last {
						t.Errorf("retry after its events were made gone and compacted returned %+v (first append: %+v) and the log grew from seq %d to %d: the gone events were written again", p2, p1, last, l.LastSeq())
					}
					for _, e := range readAll(t, l) {
						if e.ID == "order-a" || e.ID == "order-b" {
							t.Errorf("the gone event %s (seq %d) reads again after the retry", e.ID, e.Seq)
						}
					}
					if _, found := memBytes(t, mem, []byte(secret)); found {
						t.Error("the gone payload is on disk again after the retry")
					}
				})
			}
		}
	}
}

// compactAway seals the active segment of l (written with SegmentSize
// MinSegmentSize) and compacts, and checks that a redaction removed
// secret from the files.
func compactAway(t *testing.T, l *Log, mem *vfs.Mem, secret string) {
	t.Helper()
	ctx := t.Context()
	if _, err := l.Append(ctx, "pad-1", ExpectAny, Envelope{Type: "t", Data: make([]byte, MinSegmentSize)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "pad-1", ExpectAny, Envelope{Type: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, found := memBytes(t, mem, []byte(secret)); !found {
		t.Fatal("the payload is not on disk before Compact: the test cannot tell")
	}
	rep, err := l.Compact(ctx, CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	redacted := false
	for _, g := range rep.Groups {
		redacted = redacted || g.Redact
	}
	if !redacted {
		t.Fatalf("Compact redacted nothing: %+v", rep)
	}
	if _, found := memBytes(t, mem, []byte(secret)); found {
		t.Fatal("the gone payload is still on disk after Compact")
	}
}

// TestPlaceholderKeepsID: the placeholder Compact leaves of a gone event
// keeps its ID (and seq, stream, version, time, schema version), none of
// its type, meta or data; the compacted segment's ID table lists the ID
// at its seq, which is what the ID index is built from at Open; and
// AnchorEvent, the one reader that returns gone events, returns no ID.
func TestPlaceholderKeepsID(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{SegmentSize: MinSegmentSize, Clock: func() time.Time { return t0 }})
	defer l.Close()
	const secret = "SECRET-CART-PAYLOAD"
	orig := Envelope{ID: "order-a", Type: "t", SchemaVersion: 3, Meta: map[string]string{"who": "someone"}, Data: []byte("\xb3" + secret)}
	if _, err := l.Append(ctx, "cart-1", ExpectNoStream, orig); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.DeleteStream(ctx, "cart-1"); err != nil {
		t.Fatal(err)
	}
	compactAway(t, l, mem, secret)
	var got *Envelope
	for _, e := range readAllIncludingGone(t, l) {
		if e.Seq == 1 {
			got = &e
		}
	}
	want := Envelope{Seq: 1, Stream: "cart-1", Version: 1, Type: TypeRedacted, SchemaVersion: 3, ID: "order-a", Time: t0}
	if diff := cmp.Diff(&want, got, envCmp...); diff != "" {
		t.Errorf("placeholder of seq 1 (-want +got):\n%s", diff)
	}
	l.mu.RLock()
	v := l.v
	v.ref()
	l.mu.RUnlock()
	defer v.unref()
	inTable := false
	for _, s := range v.segs {
		if !s.Sealed || s.FirstSeq() > 1 {
			continue
		}
		ids, ok, err := s.IDTable(nil)
		if err != nil || !ok {
			t.Fatalf("%s: ID table %v, %v", s.Name, ok, err)
		}
		for _, e := range ids {
			inTable = inTable || e.Seq == 1 && e.Hash == segment.IDHash("order-a")
		}
	}
	if !inTable {
		t.Error("the compacted segment's ID table does not list the placeholder's ID")
	}
	e, _, found, err := l.AnchorEvent(ctx, 1)
	if err != nil || !found || e.ID != "" || e.Meta != nil || e.Data != nil {
		t.Errorf("AnchorEvent(1) = %+v, %v, %v: want the placeholder without ID, meta or data", e, found, err)
	}
}

// TestDedupeRetryAfterRedactionRestored: a backup copies the placeholders
// with their IDs, so in a log restored from it a retry of an append whose
// events were deleted and compacted before the backup still writes
// nothing and returns the original position.
func TestDedupeRetryAfterRedactionRestored(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "log")
	opts := Options{SegmentSize: MinSegmentSize}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	evs := []Envelope{idEv("order-a", "t", 'a'), idEv("order-b", "t", 'b')}
	p1, err := l.Append(ctx, "cart-1", ExpectNoStream, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.DeleteStream(ctx, "cart-1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{MinSegmentSize, 0} { // seal the segment holding them
		if _, err := l.Append(ctx, "pad-1", ExpectAny, Envelope{Type: "t", Data: make([]byte, n)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Compact(ctx, CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(t.TempDir(), "backup")
	if _, err := l.Backup(ctx, bdir, BackupOptions{NoLink: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rdir := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(ctx, bdir, rdir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(rdir, opts); err != nil {
		t.Fatal(err)
	}
	last := l.LastSeq()
	p2, err := l.Append(ctx, "cart-1", ExpectNoStream, evs...)
	if err != nil || !cmp.Equal(p1, p2) || l.LastSeq() != last {
		t.Fatalf("retry in the restored log: %+v, %v, and the log grew by %d; want the original position %+v and nothing written", p2, err, l.LastSeq()-last, p1)
	}
}
