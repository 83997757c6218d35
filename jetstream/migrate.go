package jetstream

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// CopySource is what Copy and Checksum read: *evlog.Log and *Log both
// serve it.
type CopySource interface {
	LastSeq() uint64
	Range(ctx context.Context, from, to uint64) iter.Seq2[event.Envelope, error]
}

// CopyTarget is what Copy writes: *evlog.Log and *Log both serve it.
type CopyTarget interface {
	CopySource
	AppendBatch(ctx context.Context, batch []evlog.AppendRequest) ([]event.Position, error)
}

// CopyReport says what Copy did.
type CopyReport struct {
	// Resumed is the target's last seq when Copy started (0: empty).
	Resumed uint64
	// Copied is the number of events Copy appended; Last the source's last
	// seq when it started, which the target now ends at.
	Copied, Last uint64
	// Events and Checksum are the verification: both logs hold Events
	// events through Last whose Checksum agrees.
	Events   uint64
	Checksum [32]byte
}

// copyBatch bounds the events per append (JetStream's atomic batch limit).
const copyBatch = MaxBatch

// Copy copies a log between backends (the file log and JetStream, either
// way), preserving each event's seq, stream, version, type, schema version,
// ID, meta, recorded time and payload bytes. The target must be empty or
// hold a prefix of the source written by an earlier Copy (it is then
// resumed after its last event, which is compared with the source's
// first); nothing else may append to it meanwhile: every append is
// checked to land at the source's seq and version. It ends with a
// verification, counts and a checksum over every event of both logs.
// progress, if not nil, is called after each appended batch with the
// last seq copied.
//
// A log may hold one event ID more than once: stored again after its
// duplicate window, which both backends allow. Copy keeps such events in
// separate appends; the target's duplicate detection may still take the
// repeat for a retry of the first or refuse its ID (nothing is written
// either way, also when that append's answer was lost and it ends in
// ErrUnknownOutcome as well). A JetStream target then stores that batch
// again under fresh Nats-Msg-Ids, derived from each event's seq and ID, so
// that a resend of any of its messages, by the append's own retries or by
// a resumed Copy, carries the same one (each event's ID is kept, in its
// Evlog-Id header; only the duplicate detection of a later append reusing
// those IDs no longer covers them). This is safe even when the refused
// attempt's outcome is unknown: every append of Copy is conditional on the
// target's last seq and each stream's version, so at most one of the two
// is stored, at the source's positions. A file-log target cannot: Copy fails with an error
// matching evlog.ErrDuplicateID; copy into a file log opened with an
// Options.DedupeWindow (in events) smaller than the distance between the
// two, and resume. Snapshots are not copied: take them again on the
// target (a snapshot names its log's ID, which differs).
func Copy(ctx context.Context, dst CopyTarget, src CopySource, progress func(seq uint64)) (CopyReport, error) {
	rep := CopyReport{Last: src.LastSeq(), Resumed: dst.LastSeq()}
	if rep.Resumed > rep.Last {
		return rep, fmt.Errorf("evlog/jetstream: copy: the target holds %d events, the source %d: not a copy of it", rep.Resumed, rep.Last)
	}
	// The target numbers events contiguously: a source with holes (or
	// records of system streams: deletion markers, retention) cannot be copied with its seqs, so refuse it
	// before appending anything, also when resuming (the source may have
	// deleted events since the earlier run).
	if err := checkHoles(ctx, src, rep.Last, rep.Resumed); err != nil {
		return rep, err
	}
	if rep.Resumed > 0 {
		a, err := one(ctx, src, rep.Resumed)
		if err != nil {
			return rep, err
		}
		b, err := one(ctx, dst, rep.Resumed)
		if err != nil {
			return rep, err
		}
		if digest(a) != digest(b) {
			return rep, fmt.Errorf("evlog/jetstream: copy: event %d of the target differs from the source's: the target is not a copy of it; use an empty target", rep.Resumed)
		}
	}
	var (
		batch   []evlog.AppendRequest
		pending []event.Envelope    // the source events in batch, in order
		seqs    [][]uint64          // the source seq of each event of batch
		index   = map[string]int{}  // stream -> its request in batch
		ids     = map[string]bool{} // the event IDs in batch
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		through := pending[len(pending)-1].Seq
		pos, err := dst.AppendBatch(ctx, batch)
		if l, ok := dst.(*Log); ok && (idHeld(batch, pending, pos, err) || errors.Is(err, evlog.ErrDuplicateID)) {
			// Nothing was written (or, the answer lost, may yet be: the
			// expectations let at most one of the two appends in): an ID
			// of the batch is one the target already holds, which the
			// source holds twice. Store the events again under fresh
			// message IDs, keeping their IDs.
			pos, err = l.appendBatch(ctx, batch, func(i, j int) string {
				return copyMsgID(seqs[i][j], batch[i].Events[j].ID)
			})
		}
		if err != nil {
			if errors.Is(err, evlog.ErrDuplicateID) && !errors.Is(err, ErrUnknownOutcome) {
				return fmt.Errorf("evlog/jetstream: copy: appending through seq %d: %w; %s", through, err, heldTwiceHint)
			}
			return fmt.Errorf("evlog/jetstream: copy: appending through seq %d: %w", through, err)
		}
		for i, r := range batch {
			want := lastOf(pending, r.Stream)
			switch {
			case pos[i].Seq < want.Seq:
				return fmt.Errorf("%w: copy: appending through seq %d: the target took the events of %q for a retry of those it holds through seq %d with the same IDs and wrote nothing; %s",
					evlog.ErrDuplicateID, through, r.Stream, pos[i].Seq, heldTwiceHint)
			case pos[i].Seq != want.Seq || pos[i].Version != want.Version:
				return fmt.Errorf("evlog/jetstream: copy: %q landed at seq %d version %d, the source has %d/%d: another writer appended to the target; start again on an empty target",
					r.Stream, pos[i].Seq, pos[i].Version, want.Seq, want.Version)
			}
		}
		rep.Copied += uint64(len(pending))
		if progress != nil {
			progress(pending[len(pending)-1].Seq)
		}
		batch, pending, seqs = batch[:0], pending[:0], seqs[:0]
		clear(index)
		clear(ids)
		return nil
	}
	if rep.Resumed < rep.Last {
		for e, err := range src.Range(ctx, rep.Resumed+1, rep.Last) {
			if err != nil {
				return rep, fmt.Errorf("evlog/jetstream: copy: reading the source: %w", err)
			}
			i, ok := index[e.Stream]
			// A stream appears once per batch, and its events must stay in
			// seq order with the others': start a new batch when the
			// stream was seen before but is not the last request. An ID
			// the log holds twice (stored again after the duplicate
			// window) must not appear twice in one append either.
			if ok && i != len(batch)-1 || len(pending) == copyBatch || e.ID != "" && ids[e.ID] {
				if err := flush(); err != nil {
					return rep, err
				}
				ok = false
			}
			if e.ID != "" {
				ids[e.ID] = true
			}
			c := e.Clone()
			pending = append(pending, c)
			c.Seq, c.Version = 0, 0
			if !ok {
				index[e.Stream] = len(batch)
				expect := evlog.ExpectVersion(e.Version - 1)
				batch = append(batch, evlog.AppendRequest{Stream: e.Stream, Expect: expect})
				seqs = append(seqs, nil)
			}
			r := &batch[index[e.Stream]]
			r.Events = append(r.Events, c)
			seqs[index[e.Stream]] = append(seqs[index[e.Stream]], e.Seq)
		}
		if err := flush(); err != nil {
			return rep, err
		}
	}
	n1, s1, err := Checksum(ctx, src, rep.Last)
	if err != nil {
		return rep, err
	}
	n2, s2, err := Checksum(ctx, dst, rep.Last)
	if err != nil {
		return rep, err
	}
	if n1 != n2 || s1 != s2 {
		return rep, fmt.Errorf("evlog/jetstream: copy: verification failed: the source has %d events (checksum %x), the target %d (%x)", n1, s1[:8], n2, s2[:8])
	}
	rep.Events, rep.Checksum = n1, s1
	return rep, nil
}

// copyMsgID is the fresh Nats-Msg-Id Copy gives the event at seq with ID
// id: the same in every attempt and every run of Copy, and unique in the
// target, whose seqs are the source's.
func copyMsgID(seq uint64, id string) string {
	sum := sha256.Sum256([]byte(id))
	return fmt.Sprintf("evlog-copy-%d-%x", seq, sum[:8])
}

// heldTwiceHint explains an event ID the target refuses to store again.
const heldTwiceHint = "the source holds an event ID of this batch more than once (stored again after its duplicate window, as both backends allow), " +
	"and the target's duplicate detection still covers the first: copy into a JetStream log, or into a file log opened with a DedupeWindow " +
	"(in events) smaller than the distance between the two; the target holds the events before this batch"

// idHeld reports whether the append of batch (the source's events pending)
// wrote nothing because the target holds one of its IDs: it failed with
// evlog.ErrDuplicateID (its outcome known), or succeeded at positions
// before the source's, as the target's own for a retry of events it holds.
func idHeld(batch []evlog.AppendRequest, pending []event.Envelope, pos []event.Position, err error) bool {
	if err != nil {
		return errors.Is(err, evlog.ErrDuplicateID) && !errors.Is(err, ErrUnknownOutcome)
	}
	for i, r := range batch {
		if pos[i].Seq < lastOf(pending, r.Stream).Seq {
			return true
		}
	}
	return false
}

func lastOf(es []event.Envelope, stream string) event.Envelope {
	for _, e := range slices.Backward(es) {
		if e.Stream == stream {
			return e
		}
	}
	return event.Envelope{}
}

func one(ctx context.Context, l CopySource, seq uint64) (event.Envelope, error) {
	for e, err := range l.Range(ctx, seq, seq) {
		return e, err
	}
	return event.Envelope{}, fmt.Errorf("evlog/jetstream: copy: event %d is missing", seq)
}

// Checksum returns the number of events with seq in [1, to] and a SHA-256
// over all of them, each encoded canonically: seq, stream, version, type,
// schema version, ID, recorded time (Unix ns), meta sorted by key, payload.
// Two logs with the same checksum hold the same events.
func Checksum(ctx context.Context, l CopySource, to uint64) (uint64, [32]byte, error) {
	h := sha256.New()
	var n uint64
	for e, err := range l.Range(ctx, 1, to) {
		if err != nil {
			return n, [32]byte{}, err
		}
		if e.Seq != n+1 {
			return n, [32]byte{}, fmt.Errorf("evlog/jetstream: checksum: seq %d follows %d", e.Seq, n)
		}
		d := digest(e)
		h.Write(d[:])
		n++
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return n, sum, nil
}

// digest is the SHA-256 of one event's canonical encoding.
func digest(e event.Envelope) [32]byte {
	h := sha256.New()
	var b [8]byte
	u := func(v uint64) { binary.BigEndian.PutUint64(b[:], v); h.Write(b[:]) }
	s := func(v string) { u(uint64(len(v))); h.Write([]byte(v)) }
	u(e.Seq)
	s(e.Stream)
	u(e.Version)
	s(e.Type)
	u(uint64(e.SchemaVersion))
	s(e.ID)
	u(uint64(e.Time.UnixNano()))
	u(uint64(len(e.Meta)))
	for _, k := range slices.Sorted(maps.Keys(e.Meta)) {
		s(k)
		s(e.Meta[k])
	}
	u(uint64(len(e.Data)))
	h.Write(e.Data)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}
