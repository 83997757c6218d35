package evlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/evlog/evlog/event"
)

// Idempotent appends by event ID (Envelope.ID; docs/FORMAT.md "Event
// IDs"). The writer keeps an in-memory index of the IDs in the log (those
// of the last Options.DedupeWindow events), ID → seq, built on the first
// append carrying an ID by reading the log once, then kept up to date as
// groups commit. Every append — raw (AppendBatch) or typed (TypedLog,
// Typed) — goes through writer.dedupe before it is staged, and its IDs
// are entered into the index as it is staged (undone with it):
//
//   - an append none of whose IDs is known is written as usual; two events
//     of it with the same ID fail it with ErrDuplicateID;
//   - an append every event of which carries a known ID, the originals
//     being consecutive in the log, in the same streams and order, with
//     the same Type, SchemaVersion, Meta and Data, is a retry: it succeeds
//     without writing and returns the originals' positions;
//   - anything else holding a known ID fails with ErrDuplicateID and
//     writes nothing.

// ErrDuplicateID is matched by the error of an append holding an event
// whose ID the log already holds (within Options.DedupeWindow) but which
// is not a retry of the append that wrote it: only part of its events are
// already in the log, or one of them differs from its original (another
// stream, type, schema version, meta, data or order), or two events of
// the append share an ID. The error is a *DuplicateIDError. Nothing was
// written.
var ErrDuplicateID = errors.New("evlog: duplicate event ID")

// DuplicateIDError names the event of a rejected append whose ID is
// already taken. It matches ErrDuplicateID.
type DuplicateIDError struct {
	ID      string // the event ID
	Stream  string // the stream of the rejected event
	Index   int    // the event's index in its request's Events
	OrigSeq uint64 // seq of the event already holding the ID (0: another event of the same append)
	// OrigStream is the stream of the event at OrigSeq ("" when OrigSeq
	// is 0).
	OrigStream string
	Reason     string // what differs from a retry
}

func (e *DuplicateIDError) Error() string {
	where := "another event of the same append"
	if e.OrigSeq != 0 {
		where = fmt.Sprintf("the event at seq %d of stream %q", e.OrigSeq, e.OrigStream)
	}
	return fmt.Sprintf("%v: event %d of stream %q has ID %q, already used by %s (%s); nothing was written: a retry must re-send the original append unchanged (same streams, events, order and content); new events need new IDs",
		ErrDuplicateID, e.Index, e.Stream, e.ID, where, e.Reason)
}

// Unwrap returns ErrDuplicateID.
func (e *DuplicateIDError) Unwrap() error { return ErrDuplicateID }

// idIndex maps the IDs of the log's events (the last window of them) to
// their seqs. Owned by the writer goroutine.
type idIndex struct {
	m      map[string]uint64
	staged []string // IDs entered by the staged group, in order
	// order lists the committed IDs in seq order, for DedupeWindow's
	// eviction (nil without a window).
	order  []idSeq
	head   int
	window uint64 // 0: the whole log
}

type idSeq struct {
	id  string
	seq uint64
}

// lookup returns the seq of the event holding id, if it is within the
// window of a log whose last seq is last.
func (x *idIndex) lookup(id string, last uint64) (uint64, bool) {
	s, ok := x.m[id]
	if !ok || (x.window != 0 && s+x.window <= last) {
		return 0, false
	}
	return s, true
}

// stage enters id (of the staged event seq); false if the index holds it
// already (from the same append: dedupe found none before staging).
func (x *idIndex) stage(id string, seq uint64) bool {
	if _, ok := x.m[id]; ok {
		return false
	}
	x.m[id] = seq
	x.staged = append(x.staged, id)
	return true
}

// unstage removes the IDs staged from mark on.
func (x *idIndex) unstage(mark int) {
	for _, id := range x.staged[mark:] {
		delete(x.m, id)
	}
	clear(x.staged[mark:])
	x.staged = x.staged[:mark]
}

// commit keeps the staged IDs (their group is written; last is its last
// seq) and evicts those that left the window.
func (x *idIndex) commit(last uint64) {
	if x.window != 0 {
		for _, id := range x.staged {
			x.order = append(x.order, idSeq{id, x.m[id]})
		}
		x.evict(last)
	}
	clear(x.staged)
	x.staged = x.staged[:0]
}

func (x *idIndex) evict(last uint64) {
	for x.head < len(x.order) && x.order[x.head].seq+x.window <= last {
		e := x.order[x.head]
		if x.m[e.id] == e.seq {
			delete(x.m, e.id)
		}
		x.order[x.head] = idSeq{}
		x.head++
	}
	if x.head > 1024 && x.head > len(x.order)/2 {
		n := copy(x.order, x.order[x.head:])
		clear(x.order[n:])
		x.order, x.head = x.order[:n], 0
	}
}

// buildIDs reads the IDs of the events in the window into a new index.
func (w *writer) buildIDs() (*idIndex, error) {
	x := &idIndex{m: make(map[string]uint64), window: uint64(w.opts.DedupeWindow)}
	from := uint64(1)
	if x.window != 0 && w.lastSeq > x.window {
		from = w.lastSeq - x.window + 1
	}
	if w.lastSeq < from {
		return x, nil
	}
	err := w.l.scan(context.Background(), from, w.lastSeq, func(e *Envelope) error {
		if e.ID != "" {
			x.m[e.ID] = e.Seq // the newest holder of an ID written before IDs were checked
			if x.window != 0 {
				x.order = append(x.order, idSeq{e.ID, e.Seq})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evlog: indexing the log's event IDs: %w", err)
	}
	return x, nil
}

// dedupe checks r's event IDs against the log before r is staged. It
// returns true when it finished r: a retry of an append in the log
// (success, with the original positions) or an ErrDuplicateID (or a read
// error). Requests without IDs cost one pass over their envelopes.
func (w *writer) dedupe(r *request) bool {
	var env Envelope
	parts, withID := w.dedupeParts(r), false
	for i := range parts {
		for j := range w.partLen(r, i) {
			w.envelopeAt(r, i, j, &env)
			if env.ID != "" {
				withID = true
				break
			}
		}
	}
	if !withID {
		return false
	}
	if w.ids == nil {
		x, err := w.buildIDs()
		if err != nil {
			r.finish(err)
			return true
		}
		w.ids = x
	}
	for attempt := 0; ; attempt++ {
		hits, staged := 0, false
		for i := range parts {
			for j := range w.partLen(r, i) {
				w.envelopeAt(r, i, j, &env)
				if env.ID == "" {
					continue
				}
				if s, ok := w.ids.lookup(env.ID, w.lastSeq); ok {
					hits++
					staged = staged || s > w.lastSeq
				}
			}
		}
		if hits == 0 {
			return false
		}
		if !staged || attempt > 0 {
			break
		}
		// The originals are in the staged group: write it first, to read
		// them back (and then answer only once they are committed).
		w.flush()
		if w.failed != nil {
			r.finish(w.failed)
			return true
		}
	}
	pos, err := w.retryPositions(r)
	if err != nil {
		r.finish(err)
		return true
	}
	r.pos = pos
	r.finish(nil)
	return true
}

func (w *writer) dedupeParts(r *request) int {
	if r.src != nil {
		return r.src.parts()
	}
	return len(r.batch)
}

func (w *writer) partLen(r *request, i int) int {
	if r.src != nil {
		_, _, n := r.src.part(i)
		return n
	}
	return len(r.batch[i].Events)
}

// envelopeAt sets e from event j of part i of r, except a typed event's
// Data.
func (w *writer) envelopeAt(r *request, i, j int, e *Envelope) {
	if r.src != nil {
		r.src.envelope(i, j, e)
		e.Stream, _, _ = r.src.part(i)
		return
	}
	*e = r.batch[i].Events[j]
	e.Stream = r.batch[i].Stream
}

// retryPositions checks that r, which holds known IDs, is a retry of
// events in the log, and returns their positions (per part, its last
// event's), or a *DuplicateIDError.
func (w *writer) retryPositions(r *request) ([]Position, error) {
	var env Envelope
	parts := w.dedupeParts(r)
	first, k := uint64(0), uint64(0)
	dup := func(i, j int, seq uint64, reason string) *DuplicateIDError {
		return &DuplicateIDError{ID: env.ID, Stream: env.Stream, Index: j, OrigSeq: seq, Reason: reason}
	}
	// IDs: all known, naming consecutive events.
	var firstErr *DuplicateIDError
	for i := range parts {
		for j := range w.partLen(r, i) {
			w.envelopeAt(r, i, j, &env)
			s, ok := uint64(0), false
			if env.ID != "" {
				s, ok = w.ids.lookup(env.ID, w.lastSeq)
			}
			switch {
			case !ok && firstErr == nil:
				firstErr = dup(i, j, 0, "")
			case ok && k == 0:
				first = s
			case ok && s != first+k && firstErr == nil:
				firstErr = dup(i, j, s, "the append's events are not in the same order as their originals")
			}
			k++
		}
	}
	if firstErr != nil && firstErr.Reason == "" {
		// A partial overlap: name the first known ID.
		for i := range parts {
			for j := range w.partLen(r, i) {
				w.envelopeAt(r, i, j, &env)
				if s, ok := w.ids.lookup(env.ID, w.lastSeq); env.ID != "" && ok {
					e := dup(i, j, s, "only part of the append's events are already in the log")
					return nil, w.nameOrig(e)
				}
			}
		}
	}
	if firstErr != nil {
		return nil, w.nameOrig(firstErr)
	}
	// Content: read the originals.
	origs := make([]Envelope, 0, k)
	err := w.l.scan(context.Background(), first, first+k-1, func(e *Envelope) error {
		c := e.Clone()
		origs = append(origs, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evlog: reading the originals of a retried append: %w", err)
	}
	if uint64(len(origs)) != k {
		return nil, fmt.Errorf("evlog: reading the originals of a retried append: found %d of the %d events from seq %d", len(origs), k, first)
	}
	pos := make([]Position, parts)
	n := 0
	var data []byte
	for i := range parts {
		for j := range w.partLen(r, i) {
			w.envelopeAt(r, i, j, &env)
			if r.src != nil {
				var err error
				if data, err = w.encodeScratch(r, i, j, data[:0]); err != nil {
					return nil, fmt.Errorf("%w: encoding event %d (%s) of stream %q: %w", ErrInvalid, j, env.Type, env.Stream, err)
				}
				env.Data = data
			}
			o := &origs[n]
			if reason := sameEvent(&env, o); reason != "" {
				e := dup(i, j, o.Seq, reason)
				e.OrigStream = o.Stream
				return nil, e
			}
			pos[i] = Position{Seq: o.Seq, Version: o.Version, Time: o.Time}
			n++
		}
	}
	return pos, nil
}

// nameOrig fills in e.OrigStream by reading the event at e.OrigSeq (best
// effort: the error is what matters).
func (w *writer) nameOrig(e *DuplicateIDError) *DuplicateIDError {
	if e.OrigSeq == 0 {
		return e
	}
	_ = w.l.scan(context.Background(), e.OrigSeq, e.OrigSeq, func(o *Envelope) error {
		e.OrigStream = o.Stream
		return nil
	})
	return e
}

// encodeScratch encodes the payload of typed event j of part i of r into
// dst, as stage encodes it into the group buffer.
func (w *writer) encodeScratch(r *request, i, j int, dst []byte) (_ []byte, err error) {
	w.penc.configure()
	w.penc.w.b = dst
	defer func() {
		if p := recover(); p != nil {
			w.penc.reset()
			err = fmt.Errorf("payload encoder panicked: %v", p)
		}
	}()
	err = r.src.encode(w.penc.enc, i, j)
	dst, w.penc.w.b = w.penc.w.b, nil
	return dst, err
}

// sameEvent says how the appended event a differs from the stored o ("":
// a retry of it). Time is not compared: a retry re-sends the original's
// explicit time or a zero one, which the first append stamped.
func sameEvent(a, o *Envelope) string {
	sv := a.SchemaVersion
	if sv == 0 {
		sv = event.DefaultSchemaVersion
	}
	switch {
	case a.Stream != o.Stream:
		return fmt.Sprintf("the original is in stream %q", o.Stream)
	case a.Type != o.Type:
		return fmt.Sprintf("the original has type %q, not %q", o.Type, a.Type)
	case sv != o.SchemaVersion:
		return fmt.Sprintf("the original has schema version %d, not %d", o.SchemaVersion, sv)
	case !maps.Equal(a.Meta, o.Meta):
		return "the original has other meta"
	case !bytes.Equal(a.Data, o.Data):
		return "the original has other data"
	}
	return ""
}
