package evlog

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

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
//
// The originals are read as recorded (writer.scan), deleted and expired
// ones included, so a retry never writes gone events back. A placeholder
// Compact left in place of a gone event keeps its ID (placeholderOf), so
// it still answers: it is compared on what it kept (stream, schema
// version, seq order), and the retry succeeds with the original positions
// — the same outcome as before the compaction.

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

// dedupe checks r's event IDs against the log before r is staged. It
// returns true when it finished r: a retry of an append in the log
// (success, with the original positions) or an ErrDuplicateID (or a read
// error). The common case, IDs the index does not hold, costs one hash
// and one probe per event (and stage another probe to enter it); a
// request without IDs, one pass over its envelopes.
func (w *writer) dedupe(r *request) bool {
	parts, hit := w.dedupeParts(r), false
	if w.ids != nil {
		w.ids.req, w.ids.hashes = nil, w.ids.hashes[:0]
	}
	k := 0 // events seen, this one included
scan:
	for i := range parts {
		for j := range w.partLen(r, i) {
			k++
			id := w.idAt(r, i, j)
			if id == "" {
				if w.ids != nil {
					w.ids.hashes = append(w.ids.hashes, 0)
				}
				continue
			}
			if w.ids == nil {
				x, err := w.buildIDs()
				if err != nil {
					r.finish(err)
					return true
				}
				w.ids = x
				// The events before this one carry no ID.
				w.ids.hashes = append(w.ids.hashes, make([]uint64, k-1)...)
			}
			h := w.ids.hash(id)
			w.ids.hashes = append(w.ids.hashes, h)
			// The filter's "maybe" (rarely a false positive) is
			// confirmed by the entries' hashes.
			if w.ids.has(h) {
				if w.ids.cands = w.ids.appendSeqs(w.ids.cands[:0], h); len(w.ids.cands) > 0 {
					hit = true
					break scan
				}
			}
		}
	}
	if !hit {
		if w.ids != nil {
			w.ids.req = r // stage enters the hashes computed here
		}
		return false
	}
	origs, seqs, err := w.resolveIDs(r)
	if err != nil {
		r.finish(err)
		return true
	}
	if !slices.ContainsFunc(seqs, func(s uint64) bool { return s != 0 }) {
		return false // hash collisions only
	}
	pos, err := w.retryPositions(r, origs, seqs)
	if err != nil {
		r.finish(err)
		return true
	}
	r.pos = pos
	r.finish(nil)
	return true
}

// resolveIDs returns, for each event of r in order, the seq of the event
// in the log holding its ID (0: none, or no ID), and the events read to
// find out, by seq.
func (w *writer) resolveIDs(r *request) (map[uint64]*Envelope, []uint64, error) {
	var env Envelope
	parts := w.dedupeParts(r)
	var cands []uint64
	collect := func() bool { // false: a candidate is staged
		cands = cands[:0]
		staged := false
		for i := range parts {
			for j := range w.partLen(r, i) {
				w.envelopeAt(r, i, j, &env)
				if env.ID == "" {
					continue
				}
				n := len(cands)
				cands = w.ids.appendSeqs(cands, w.ids.hash(env.ID))
				for _, s := range cands[n:] {
					staged = staged || s > w.lastSeq
				}
			}
		}
		return !staged
	}
	if !collect() {
		// The originals are in the staged group: write it first, to read
		// them back (and to answer only once they are committed).
		w.flush()
		if w.failed != nil {
			return nil, nil, w.failed
		}
		collect()
	}
	cands = slices.DeleteFunc(cands, func(s uint64) bool { return !w.ids.inWindow(s, w.lastSeq) })
	slices.Sort(cands)
	cands = slices.Compact(cands)
	// Read the candidates, in runs of nearby seqs (a retry's originals
	// are consecutive: one run).
	read := make(map[uint64]*Envelope, len(cands))
	for i := 0; i < len(cands); {
		j := i + 1
		for j < len(cands) && cands[j]-cands[j-1] <= 16 {
			j++
		}
		from, to := cands[i], cands[j-1]
		err := w.scan(from, to, func(e *Envelope) error {
			if _, ok := slices.BinarySearch(cands[i:j], e.Seq); ok {
				c := e.Clone()
				read[e.Seq] = &c
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("evlog: reading the events holding the IDs of an append: %w", err)
		}
		i = j
	}
	var seqs []uint64
	for i := range parts {
		for j := range w.partLen(r, i) {
			w.envelopeAt(r, i, j, &env)
			found := uint64(0)
			if env.ID != "" {
				var buf [4]uint64
				for _, s := range w.ids.appendSeqs(buf[:0], w.ids.hash(env.ID)) {
					if o := read[s]; o != nil && o.ID == env.ID && s > found {
						found = s // the newest holder (logs written before IDs were checked may hold an ID twice)
					}
				}
			}
			seqs = append(seqs, found)
		}
	}
	return read, seqs, nil
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
// idAt returns the ID of event j of part i of r, without building its
// envelope (the check asks it of every event, most often to find none).
func (w *writer) idAt(r *request, i, j int) string {
	if r.src != nil {
		return r.src.id(i, j)
	}
	return r.batch[i].Events[j].ID
}

func (w *writer) envelopeAt(r *request, i, j int, e *Envelope) {
	if r.src != nil {
		r.src.envelope(i, j, e)
		e.Stream, _, _ = r.src.part(i)
		return
	}
	*e = r.batch[i].Events[j]
	e.Stream = r.batch[i].Stream
}

// retryPositions checks that r, whose events' IDs resolveIDs found at
// seqs (some non-zero), is a retry of the events origs holds, and returns
// their positions (per part, its last event's); or a *DuplicateIDError.
func (w *writer) retryPositions(r *request, origs map[uint64]*Envelope, seqs []uint64) ([]Position, error) {
	var env Envelope
	parts := w.dedupeParts(r)
	dup := func(j int, seq uint64, reason string) *DuplicateIDError {
		e := &DuplicateIDError{ID: env.ID, Stream: env.Stream, Index: j, OrigSeq: seq, Reason: reason}
		if o := origs[seq]; o != nil {
			e.OrigStream = o.Stream
		}
		return e
	}
	partial := slices.Contains(seqs, 0)
	pos := make([]Position, parts)
	var data []byte
	k := 0
	for i := range parts {
		for j := range w.partLen(r, i) {
			w.envelopeAt(r, i, j, &env)
			s := seqs[k]
			k++
			switch {
			case s == 0:
				continue
			case partial:
				return nil, dup(j, s, "only part of the append's events are already in the log")
			case s != seqs[0]+uint64(k-1):
				return nil, dup(j, s, "the append's events are not in the same order as their originals")
			}
			if r.src != nil {
				var err error
				if data, err = w.encodeScratch(r, i, j, data[:0]); err != nil {
					return nil, fmt.Errorf("%w: encoding event %d (%s) of stream %q: %w", ErrInvalid, j, env.Type, env.Stream, err)
				}
				env.Data = data
			}
			o := origs[s]
			if reason := sameEvent(&env, o); reason != "" {
				return nil, dup(j, s, reason)
			}
			pos[i] = Position{Seq: o.Seq, Version: o.Version, Time: o.Time}
		}
	}
	return pos, nil
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
// explicit time or a zero one, which the first append stamped. When o is
// a placeholder (its event was deleted or expired, then compacted), only
// what it kept is compared: stream and schema version (the seq and ID
// were matched by the caller); its type, meta and data are gone.
func sameEvent(a, o *Envelope) string {
	sv := a.SchemaVersion
	if sv == 0 {
		sv = event.DefaultSchemaVersion
	}
	switch {
	case a.Stream != o.Stream:
		return fmt.Sprintf("the original is in stream %q", o.Stream)
	case sv != o.SchemaVersion:
		return fmt.Sprintf("the original has schema version %d, not %d", o.SchemaVersion, sv)
	case o.Type == TypeRedacted:
		return ""
	case a.Type != o.Type:
		return fmt.Sprintf("the original has type %q, not %q", o.Type, a.Type)
	case !maps.Equal(a.Meta, o.Meta):
		return "the original has other meta"
	case !bytes.Equal(a.Data, o.Data):
		return "the original has other data"
	}
	return ""
}

// noDedupe turns the ID check off: set only by BenchmarkAppendIDsNoDedupe
// (before opening a log), which measures what the check costs apart from
// the ID bytes themselves.
var noDedupe bool
