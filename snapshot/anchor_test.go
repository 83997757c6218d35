package snapshot

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
)

// Save records what Options.Anchor returns; Load and List return it; a
// caller's anchor that disagrees with the log's is refused; an Anchor
// error aborts the Save, leaving nothing behind.
func TestSaveRecordsAnchor(t *testing.T) {
	errRead := errors.New("read failed")
	anchors := map[uint64]uint64{3: 0xfeed, 4: 0} // seq 4: the log does not yield it
	mem := vfs.NewMem()
	s := newStore(t, mem, func(o *Options) {
		o.Anchor = func(_ context.Context, seq uint64) (uint64, error) {
			if seq == 9 {
				return 0, errRead
			}
			return anchors[seq], nil
		}
	})
	ctx := t.Context()
	for _, tc := range []struct {
		seq, callers, want uint64
		err                error
	}{
		{seq: 3, want: 0xfeed},
		{seq: 4, callers: 0, want: 0},
		{seq: 5, callers: 0x77, want: 0x77}, // the log has nothing to say: the caller's
		{seq: 6, callers: 0x77, want: 0x77},
	} {
		m := meta("cart/1", tc.seq)
		m.Anchor = tc.callers
		got, err := s.Save(ctx, m, []byte("state"))
		if err != nil {
			t.Fatalf("Save seq %d: %v", tc.seq, err)
		}
		if got.Anchor != tc.want {
			t.Errorf("Save seq %d: Anchor %#x, want %#x", tc.seq, got.Anchor, tc.want)
		}
		ms, err := s.List("cart/1")
		if err != nil {
			t.Fatal(err)
		}
		if last := ms[len(ms)-1]; last.Seq != tc.seq || last.Anchor != tc.want {
			t.Errorf("List: newest %v anchor %#x, want seq %d anchor %#x", last, last.Anchor, tc.seq, tc.want)
		}
	}

	anchors[7] = 0xfeed
	m := meta("cart/1", 7)
	m.Anchor = 0xbad
	if _, err := s.Save(ctx, m, []byte("state")); !errors.Is(err, ErrInvalid) {
		t.Errorf("Save with an anchor the log disagrees with: %v, want ErrInvalid", err)
	}
	if _, err := s.Save(ctx, meta("cart/1", 9), []byte("state")); !errors.Is(err, errRead) {
		t.Errorf("Save whose Anchor fails: %v, want %v", err, errRead)
	}
	for _, seq := range []uint64{7, 9} {
		if _, err := mem.Stat(FormatFileName("cart/1", seq)); err == nil {
			t.Errorf("a refused Save left %s", FormatFileName("cart/1", seq))
		}
	}
}

// AnchorOf tells apart events that differ in any one stored field, and is
// stable: it is part of the format.
func TestAnchorOf(t *testing.T) {
	base := event.Envelope{Seq: 7, Stream: "cart-1", Version: 3, Type: "added", SchemaVersion: 1, ID: "id-1",
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Meta: map[string]string{"a": "1", "b": "2"}, Data: []byte("payload")}
	a := AnchorOf(base)
	if a == 0 {
		t.Fatal("AnchorOf = 0")
	}
	same := base
	same.Meta = map[string]string{"b": "2", "a": "1"}
	same.Data = []byte("payload")
	if AnchorOf(same) != a {
		t.Error("AnchorOf depends on something but the event's content")
	}
	for name, mod := range map[string]func(*event.Envelope){
		"seq":     func(e *event.Envelope) { e.Seq++ },
		"stream":  func(e *event.Envelope) { e.Stream = "cart-2" },
		"version": func(e *event.Envelope) { e.Version++ },
		"type":    func(e *event.Envelope) { e.Type = "removed" },
		"schema":  func(e *event.Envelope) { e.SchemaVersion++ },
		"id":      func(e *event.Envelope) { e.ID = "" },
		"time":    func(e *event.Envelope) { e.Time = e.Time.Add(1) },
		"meta":    func(e *event.Envelope) { e.Meta = map[string]string{"a": "1", "b": "3"} },
		"no meta": func(e *event.Envelope) { e.Meta = nil },
		"data":    func(e *event.Envelope) { e.Data = []byte("payloae") },
		// Length prefixes: moving a byte from one field to the next is
		// another event.
		"boundary": func(e *event.Envelope) { e.Stream, e.Type = "cart-1a", "dded" },
	} {
		e := base
		mod(&e)
		if AnchorOf(e) == a {
			t.Errorf("%s: AnchorOf does not tell the events apart", name)
		}
	}
	// The format: never changes.
	if got, want := AnchorOf(base), uint64(anchorOfBase); got != want {
		t.Errorf("AnchorOf(base) = %#016x, want %#016x: the anchor is part of the snapshot format (version 2) and must never change", got, want)
	}
}

// anchorOfBase is AnchorOf(base) in TestAnchorOf, as format version 2 fixes it.
const anchorOfBase = 0x3ec42da0facb0b35

// Load compares every non-zero field of the Meta it is given with the
// file, so that a file replaced since it was listed is not taken for the
// one listed: the Anchor too (replay checks a candidate's anchor against
// the log, then loads it).
func TestLoadComparesAnchor(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	m := meta("cart/1", 3)
	m.Anchor = 0xaaaa
	saved, err := s.Save(t.Context(), m, []byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(t.Context(), saved); err != nil {
		t.Fatalf("Load of the listed snapshot: %v", err)
	}
	other := saved
	other.Anchor = 0xbbbb // the same snapshot but for the event it was folded up to
	if _, err := s.Load(t.Context(), other); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load with another anchor: %v, want ErrNotFound (the file holds another snapshot)", err)
	}
}
