package replay

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/snapshot"
)

// Fold folds one event into the state. It must be pure (no I/O) and
// deterministic: replaying the same events gives the same state, which is
// what makes snapshots safe.
type Fold[S, E any] func(S, E) S

// Spec is how to compute a state: its initial value, how events are
// decoded for the fold, the fold, and how the state is (de)serialised for
// snapshots.
type Spec[S, E any] struct {
	// Init returns the initial state (nil: the zero S).
	Init func() S
	// Decode turns a stored envelope into the fold's event type (for
	// E = event.Envelope use Raw). A decode error aborts the replay.
	Decode func(event.Envelope) (E, error)
	Fold   Fold[S, E]
	// EncodeState and DecodeState (de)serialise the state for snapshots;
	// nil means msgpack (github.com/vmihailenco/msgpack/v5); a state it
	// decodes must then nest at most event.MaxPayloadDepth deep (a deeper
	// one is refused, as hostile bytes, not decoded).
	EncodeState func(S) ([]byte, error)
	DecodeState func([]byte) (S, error)
	// NoCopy promises that neither Decode nor Fold keeps a reference to an
	// envelope's Data (or to anything aliasing it) after it returns: they
	// may read or decode it, and copy what they keep. Run then reads a
	// whole-log scope through BorrowingSource.RangeBorrowed when the
	// Source offers it, saving a copy and an allocation per event (what
	// dominates a short replay in a fresh process). Leave it false when
	// unsure: a broken promise silently corrupts the state.
	NoCopy bool
}

// Raw is the Decode of a fold over raw envelopes.
func Raw(e event.Envelope) (event.Envelope, error) { return e, nil }

// Result is a computed state and how it was computed.
type Result[S any] struct {
	State S
	Plan  *Plan
	// Seq is the last event folded into State (0: none); Time its recorded
	// time; Version, for a stream scope, its stream version.
	Seq     uint64
	Time    time.Time
	Version uint64
	// Applied is the number of events folded after the snapshot.
	Applied int
	// Unfolded lists seq ranges up to Seq holding no event folded into
	// State (snapshot.Meta.Unfolded; Save records it): from the first
	// event, the holes in what the source yielded (events gone before
	// the replay: expired, deleted), each widened up to the folded events
	// around it, the first snapshot.MaxUnfolded of them (later holes are
	// not recorded: their events count as folded, the safe side); from a
	// snapshot, the snapshot's (holes after it are errors or deletions).
	Unfolded snapshot.SeqRanges
	Elapsed  time.Duration
}

// Run executes a plan. When the plan's snapshot state does not decode
// (Spec.DecodeState, or msgpack) Run folds from the first event instead,
// with the snapshot added to the Fallbacks of the plan in the result (a
// copy: p is not modified) and a warning logged through the plan's
// Options.Logger. From a snapshot, Run fails with an
// *ExpiredUnfoldedError (ErrExpiredUnfolded) when an event of the
// subject's scope after the snapshot's seq reads as gone by retention
// (src is Expirations; it is asked only about the holes in what src
// yields: seqs for a whole-log subject, versions for a stream, and a
// stream's last versions when DeletedBefore says they are gone): the
// state would miss it silently. From the first event, events gone before
// the replay were never folded and are not missed.
func Run[S, E any](ctx context.Context, src Source, p *Plan, spec Spec[S, E]) (Result[S], error) {
	start := time.Now()
	res := Result[S]{Plan: p}
	if spec.Init != nil {
		res.State = spec.Init()
	}
	if p.Snapshot != nil {
		st, err := decodeState(spec, p.state)
		if err != nil {
			// Verified bytes that do not decode (a hostile file with
			// recomputed checksums, an encoder bug): a snapshot is an
			// optimisation, so fold from the events instead, and say so.
			// p is the caller's: the result gets a copy.
			p = p.withoutSnapshot("its state does not decode: " + err.Error())
			res.Plan = p
		} else {
			res.State, res.Seq, res.Time = st, p.Snapshot.Seq, p.Snapshot.Time
			res.Unfolded = p.Snapshot.Unfolded
			if p.Subject.Stream != "" {
				res.Version = p.FromVersion - 1
			}
		}
	}
	if p.FromSeq <= p.ToSeq {
		var events iter.Seq2[event.Envelope, error]
		if p.Subject.Stream != "" {
			events = src.Stream(ctx, p.Subject.Stream, p.FromVersion)
		} else if b, ok := src.(BorrowingSource); ok && spec.NoCopy {
			events = b.RangeBorrowed(ctx, p.FromSeq, p.ToSeq)
		} else {
			events = src.Range(ctx, p.FromSeq, p.ToSeq)
		}
		// From a snapshot, a hole in what the source yields (seqs, or a
		// stream's versions) may be events of the scope that expired
		// before they were folded: an error, never a silent gap
		// (checkUnfolded; from the first event, expired events were
		// never folded and are not missed).
		gaps := p.Snapshot != nil
		// From the first event, the holes are recorded instead
		// (Result.Unfolded): their events were not folded.
		var holes unfolded
		prevSeq, nextVersion := p.FromSeq-1, p.FromVersion
		inScope := p.Subject.Includes
		for env, err := range events {
			if err != nil {
				return res, fmt.Errorf("evlog/replay: reading events: %w", err)
			}
			hole := env.Seq > prevSeq+1
			if p.Subject.Stream != "" {
				hole = env.Version > nextVersion
			}
			if hole && gaps {
				if err := checkUnfolded(ctx, src, p, prevSeq+1, min(env.Seq-1, p.ToSeq), inScope); err != nil {
					return res, err
				}
			} else if hole {
				holes.add(min(env.Seq-1, p.ToSeq))
			}
			prevSeq, nextVersion = env.Seq, env.Version+1
			if env.Seq > p.ToSeq {
				break
			}
			if !p.Subject.Includes(env.Stream) {
				// evlog's own events (deletion markers), or events
				// outside the subject's categories: covered, not folded.
				res.Seq, res.Time = env.Seq, env.Time
				continue
			}
			e, err := spec.Decode(env)
			if err != nil {
				return res, fmt.Errorf("evlog/replay: decoding event %d: %w", env.Seq, err)
			}
			res.State = spec.Fold(res.State, e)
			res.Seq, res.Time, res.Version = env.Seq, env.Time, env.Version
			res.Applied++
			holes.folded(env.Seq)
		}
		if !gaps && prevSeq < p.ToSeq {
			// Trailing events gone (for a stream: of other streams, or
			// its last versions): nothing after prevSeq was folded.
			holes.add(p.ToSeq)
		}
		if !gaps {
			holes.clip(res.Seq)
			res.Unfolded = snapshot.MakeSeqRanges(holes.r...)
		}
		if gaps && p.Subject.Stream == "" && prevSeq < p.ToSeq {
			if err := checkUnfolded(ctx, src, p, prevSeq+1, p.ToSeq, inScope); err != nil {
				return res, err
			}
		}
		if gaps && p.Subject.Stream != "" && prevSeq < p.ToSeq {
			// The stream's last versions may have expired: only when the
			// source says versions from nextVersion on read as gone is
			// the rest of the log read.
			if d, ok := src.(StreamDeletions); ok {
				before, err := d.DeletedBefore(ctx, p.Subject.Stream)
				if err != nil {
					return res, fmt.Errorf("evlog/replay: reading the deletions of %s: %w", p.Subject.Stream, err)
				}
				if before > nextVersion {
					if err := checkUnfolded(ctx, src, p, prevSeq+1, p.ToSeq, inScope); err != nil {
						return res, err
					}
				}
			}
		}
	}
	if p.Subject.Stream != "" && p.Target.kind == targetLatest {
		// A stream whose first events were deleted: its version counts
		// them (the next append continues after them).
		if d, ok := src.(StreamDeletions); ok {
			before, err := d.DeletedBefore(ctx, p.Subject.Stream)
			if err != nil {
				return res, fmt.Errorf("evlog/replay: reading the deletions of %s: %w", p.Subject.Stream, err)
			}
			if before > 1 {
				res.Version = max(res.Version, before-1)
			}
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// unfolded collects the seq ranges a replay from the first event folded
// nothing in (Result.Unfolded).
type unfolded struct {
	r          []snapshot.SeqRange
	lastFolded uint64 // the seq of the last event folded (0: none)
}

// add records that no event was folded from after the last folded one
// through to: extending the last range when no event was folded since it
// began, else a new range (up to snapshot.MaxUnfolded: one not recorded
// counts as folded, the safe side).
func (u *unfolded) add(to uint64) {
	if to <= u.lastFolded {
		return
	}
	if n := len(u.r); n > 0 && u.r[n-1].From > u.lastFolded {
		u.r[n-1].To = max(u.r[n-1].To, to)
		return
	}
	if len(u.r) < snapshot.MaxUnfolded {
		u.r = append(u.r, snapshot.SeqRange{From: u.lastFolded + 1, To: to})
	}
}

// folded records the event at seq as folded.
func (u *unfolded) folded(seq uint64) { u.lastFolded = seq }

// clip bounds the ranges to the state's seq (the events after the last
// folded one are covered only up to it).
func (u *unfolded) clip(seq uint64) {
	for len(u.r) > 0 && u.r[len(u.r)-1].From > seq {
		u.r = u.r[:len(u.r)-1]
	}
	if n := len(u.r); n > 0 && u.r[n-1].To > seq {
		u.r[n-1].To = seq
	}
}

// StreamDeletions is implemented by a Source whose streams can be
// truncated, soft-deleted or bounded by retention (*evlog.Log):
// DeletedBefore returns the version below which the stream's events read
// as gone (0 or 1: none).
// Run reports the latest state of a stream subject at that version at
// least, so that an append expecting it continues the stream.
type StreamDeletions interface {
	DeletedBefore(ctx context.Context, stream string) (uint64, error)
}

// State plans and runs in one call.
func State[S, E any](ctx context.Context, src Source, snaps Snapshots, subj Subject, target Target, spec Spec[S, E], opts Options) (Result[S], error) {
	p, err := MakePlan(ctx, src, snaps, subj, target, opts)
	if err != nil {
		return Result[S]{}, err
	}
	return Run(ctx, src, p, spec)
}

// DecodeState deserialises a state as spec says (msgpack by default): how
// Run reads a snapshot's state.
func DecodeState[S, E any](spec Spec[S, E], b []byte) (S, error) { return decodeState(spec, b) }

func decodeState[S, E any](spec Spec[S, E], b []byte) (S, error) {
	if spec.DecodeState != nil {
		return spec.DecodeState(b)
	}
	var s S
	// The state is untrusted bytes from disk: bound its nesting and its
	// containers' lengths before msgpack/v5 recurses and allocates.
	if err := event.CheckMsgpack(b); err != nil {
		return s, err
	}
	err := msgpack.Unmarshal(b, &s)
	return s, err
}

// EncodeState serialises a state as spec says (msgpack by default).
func EncodeState[S, E any](spec Spec[S, E], s S) ([]byte, error) {
	if spec.EncodeState != nil {
		return spec.EncodeState(s)
	}
	return msgpack.Marshal(s)
}

// Saver stores snapshots (satisfied by *snapshot.Store, whose Save first
// makes the log durable through the snapshot's seq).
type Saver interface {
	Save(ctx context.Context, m snapshot.Meta, state []byte) (snapshot.Meta, error)
}

// Save snapshots a result's state under the subject, recording its
// scope (Scope.Digest). A result that folded
// no event (Seq 0) has nothing to snapshot and returns ok=false.
func Save[S, E any](ctx context.Context, s Saver, logID [16]byte, subj Subject, spec Spec[S, E], res Result[S]) (snapshot.Meta, bool, error) {
	if res.Seq == 0 {
		return snapshot.Meta{}, false, nil
	}
	b, err := EncodeState(spec, res.State)
	if err != nil {
		return snapshot.Meta{}, false, fmt.Errorf("evlog/replay: encoding the state of %s: %w", subj.Name, err)
	}
	m, err := s.Save(ctx, snapshot.Meta{Name: subj.Name, LogID: logID, Seq: res.Seq, Time: res.Time, SchemaVersion: subj.SchemaVersion, Scope: subj.Scope.Digest(), Unfolded: res.Unfolded}, b)
	if err != nil {
		return snapshot.Meta{}, false, err
	}
	return m, true, nil
}
