package evlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// Expectation is an append's optimistic-concurrency condition on the
// current version of its stream: ExpectAny, ExpectNoStream or
// ExpectVersion(n).
type Expectation = event.Expectation

const (
	// ExpectAny appends whatever the stream's version.
	ExpectAny = event.ExpectAny
	// ExpectNoStream appends only to a stream without events.
	ExpectNoStream = event.ExpectNoStream
)

// ExpectVersion appends only if the stream's last event has version v.
func ExpectVersion(v uint64) Expectation { return event.ExpectVersion(v) }

// Envelope is an untyped event: its payload Data is msgpack bytes.
type Envelope = event.Envelope

// Position is an appended event's global Seq and its Version in its stream.
type Position = event.Position

// AppendRequest is one stream's part of an AppendBatch.
type AppendRequest struct {
	Stream string
	Expect Expectation
	Events []Envelope
}

// Append appends events to stream, atomically, if the stream's current
// version satisfies expect. It returns the position of the last event.
//
// Atomicity: all events of the call become visible and durable together,
// or none do; a crash during the write leaves none of them after recovery.
// On ErrVersionConflict (a *ConflictError carrying the actual version),
// ErrInvalid, ErrFutureTime, ErrTimeBackwards or ErrDuplicateID nothing is
// written.
//
// Fields: leave Seq, Version (and Stream) zero, they are assigned. The
// stream name and each event's Type must be printable UTF-8 — no control
// characters (NUL, tab, newline, …), line separators or bidirectional
// formatting characters (event.ValidName, docs/FORMAT.md "Names") — or
// the append fails with ErrInvalid. A zero Time is stamped from
// Options.Clock, clamped so that recorded times never decrease; an
// explicit Time earlier than the log's last recorded time is
// ErrTimeBackwards, one more than Options.MaxClockSkew (default 1 minute)
// ahead of Options.Clock is ErrFutureTime. A zero SchemaVersion is stored
// as 1.
//
// Durability: see SyncMode. With SyncAlways, Append returns nil only after
// an fsync covering the events completed; readers in other processes
// serve them once a mark records that fsync, which a lack of space can
// delay (see SyncAlways). An error matching
// ErrWriterFailed leaves the outcome unknown: the events may be in the log
// after it is reopened (see ErrWriterFailed).
//
// ctx bounds the wait until the writer takes the batch in (sequences it);
// after that Append waits for the outcome, so a nil error always means the
// events are in the log, and ctx.Err() means they are not.
//
// The events' Meta and Data are read during the call only; the caller may
// reuse them once Append returns.
//
// Idempotency (KurrentDB's rules for idempotent writes). Event IDs
// (Envelope.ID) are unique in the log, within Options.DedupeWindow:
//   - An append every event of which carries an ID the log holds, the
//     holders being consecutive events in the same streams and order with
//     the same Type, SchemaVersion (0 counting as 1), Meta and Data, is a
//     retry: it succeeds without writing anything and returns the
//     positions the holders got (as the first append returned them). It is
//     checked before the expectations and ErrTimeBackwards: a retry
//     succeeds whatever its expectation, and Time is not compared (a retry
//     re-sends the original's explicit time or a zero one).
//   - An append holding a known ID that is not such a retry — only part
//     of its events are in the log, or one differs from its holder
//     (another stream, type, schema version, meta, data or order) — or
//     holding one ID twice fails with ErrDuplicateID (a *DuplicateIDError
//     naming the ID, the stream and the holder's seq) and writes nothing.
//   - Events without an ID are never deduplicated.
//   - Deleted, truncated or expired events keep their IDs, also once
//     Compact has replaced them by placeholders (which keep the ID, seq,
//     stream, version, time and schema version, never the payload): a
//     retry of their append is recognised (it returns their positions and
//     writes nothing, never bringing deleted events back), before and
//     after the compaction. Against a placeholder only what it kept is
//     compared (stream, schema version, order), so an append of other
//     content reusing the IDs of compacted events also writes nothing.
//     An append to a tombstoned stream fails with ErrStreamDeleted, a
//     retry too. Placeholders written by an earlier evlog version hold no
//     ID: a retry of an append all of whose events such a version
//     compacted is a new append, one with only some of them fails with
//     ErrDuplicateID. IDs outlive the events' deletion: do not put
//     personal data in IDs.
//
// Typed appends (TypedLog) go through the same check. The first append
// carrying an ID after Open reads the IDs of the events in the window
// once (the whole log by default); later ones cost a hash look-up per
// event.
func (l *Log) Append(ctx context.Context, stream string, expect Expectation, events ...Envelope) (Position, error) {
	pos, err := l.AppendBatch(ctx, []AppendRequest{{Stream: stream, Expect: expect, Events: events}})
	if err != nil {
		return Position{}, err
	}
	return pos[0], nil
}

// AppendBatch appends the events of several streams in one atomic batch,
// each part with its own expectation: if any expectation fails, nothing is
// written (the error names the stream). It returns, per request, the
// position of its last event. Everything Append documents applies.
func (l *Log) AppendBatch(ctx context.Context, batch []AppendRequest) ([]Position, error) {
	return l.appendBatch(ctx, batch, false)
}

// appendBatch is AppendBatch; copied says the events are copied as they
// are from an existing log (evlogctl salvage, through internal/copyhook),
// which may hold what an older evlog accepted and refuses now: event
// types starting with "$", and stream names and types outside the name
// rule (event.ValidName).
func (l *Log) appendBatch(ctx context.Context, batch []AppendRequest, copied bool) ([]Position, error) {
	if l.readOnly {
		return nil, ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size, n, ids, err := l.checkBatchAs(batch, copied)
	if err != nil {
		return nil, err
	}
	if err := l.checkBatchDeleted(ctx, batch, copied); err != nil { // deletion.go
		return nil, err
	}
	r := &request{batch: batch, size: size, events: n, noIDs: !ids, done: make(chan struct{})}
	if err := l.w.submit(ctx, r); err != nil {
		return nil, err
	}
	return r.pos, nil
}

// Sync makes every event appended so far durable (under any SyncMode),
// and writes (and fsyncs) a mark that an earlier lack of space skipped.
// When that mark still cannot be written, Sync returns nil all the same:
// the events are durable, and only readers in other processes wait for
// the mark, which the writer keeps retrying on its own while idle (at
// most a second apart; see SyncAlways) and writes with the next group,
// Close or Open. A call that must not return before such readers serve
// everything appended (a snapshot Save, Subscription.Ack, Backup, Close)
// fails instead, matching syscall.ENOSPC.
func (l *Log) Sync(ctx context.Context) error {
	if l.readOnly {
		return ErrReadOnly
	}
	r := &request{sync: true, done: make(chan struct{})}
	return l.w.submit(ctx, r)
}

// syncMarked is Sync for syncThrough and Subscription.Ack: it also makes
// sure the last group's mark is on disk (and fsynced), so that a reader in
// another process serves every event appended so far, also after a power
// loss, and fails (matching syscall.ENOSPC) when that mark cannot be
// written.
func (l *Log) syncMarked(ctx context.Context) error {
	if l.readOnly {
		return ErrReadOnly
	}
	r := &request{sync: true, marked: true, done: make(chan struct{})}
	return l.w.submit(ctx, r)
}

// checkFuture fails with a *FutureTimeError when t, the explicit time of
// event i of stream, is more than Options.MaxClockSkew ahead of the
// clock; *latest caches Clock() + MaxClockSkew for a batch (zero: not read
// yet).
func (l *Log) checkFuture(latest *time.Time, stream string, i int, t time.Time) error {
	if t.IsZero() || l.opts.MaxClockSkew < 0 {
		return nil
	}
	if latest.IsZero() {
		*latest = l.opts.Clock().Add(l.opts.MaxClockSkew)
	}
	if t.After(*latest) {
		return &FutureTimeError{Stream: stream, Index: i, Time: t, Now: latest.Add(-l.opts.MaxClockSkew), MaxSkew: l.opts.MaxClockSkew}
	}
	return nil
}

// checkBatch validates a batch before it is queued and returns an upper
// bound of its encoded size, its number of events and whether any of them
// carries an ID.
func (l *Log) checkBatch(batch []AppendRequest) (size, n int, ids bool, err error) {
	return l.checkBatchAs(batch, false)
}

// checkBatchAs is checkBatch; copied says the events are copied as they
// are from an existing log, whose stream names and types an older evlog
// stored without the name rule: they are checked against the limits only
// (event.Envelope.ValidateLimits), not against event.ValidName.
func (l *Log) checkBatchAs(batch []AppendRequest, copied bool) (size, n int, ids bool, err error) {
	if len(batch) == 0 {
		return 0, 0, false, fmt.Errorf("%w: empty batch", ErrInvalid)
	}
	var latest time.Time // Clock() + MaxClockSkew, read once, when needed
	for _, req := range batch {
		if !req.Expect.Valid() {
			return 0, 0, false, fmt.Errorf("%w: invalid expectation %d for stream %q", ErrInvalid, int64(req.Expect), req.Stream)
		}
		if len(req.Events) == 0 {
			return 0, 0, false, fmt.Errorf("%w: no events for stream %q", ErrInvalid, req.Stream)
		}
		for i := range req.Events {
			e := req.Events[i] // a copy: the caller's value is never modified
			if e.Seq != 0 || e.Version != 0 {
				return 0, 0, false, fmt.Errorf("%w: event %d of stream %q has Seq or Version set; the log assigns them, leave them zero", ErrInvalid, i, req.Stream)
			}
			if e.Stream != "" && e.Stream != req.Stream {
				return 0, 0, false, fmt.Errorf("%w: event %d names stream %q inside a request for stream %q", ErrInvalid, i, e.Stream, req.Stream)
			}
			e.Stream = req.Stream
			if copied {
				err = e.ValidateLimits()
			} else {
				err = e.ValidateFields()
			}
			if err != nil {
				return 0, 0, false, err
			}
			if !e.Time.IsZero() && (e.Time.Before(segment.MinTime) || e.Time.After(segment.MaxTime)) {
				return 0, 0, false, fmt.Errorf("%w: event %d of stream %q: time %v outside the years 1678-2262", ErrInvalid, i, req.Stream, e.Time)
			}
			if err := l.checkFuture(&latest, req.Stream, i, e.Time); err != nil {
				return 0, 0, false, err
			}
			// Upper bound: assigned fields at their widest.
			e.Seq, e.Version, e.SchemaVersion, e.Time = math.MaxUint64, math.MaxUint64, math.MaxUint32, time.Unix(0, math.MinInt64)
			es := segment.EncodedSize(&e)
			if es > l.opts.MaxEventSize {
				return 0, 0, false, fmt.Errorf("%w: event %d of stream %q encodes to %d bytes, over MaxEventSize (%d)", ErrInvalid, i, req.Stream, es, l.opts.MaxEventSize)
			}
			size += es
			n++
			ids = ids || e.ID != ""
		}
	}
	size += len(batch) * segment.CommitFrameSize
	if size > l.opts.MaxBatchSize {
		return 0, 0, false, fmt.Errorf("%w: batch of %d events encodes to about %d bytes, over MaxBatchSize (%d); split it", ErrInvalid, n, size, l.opts.MaxBatchSize)
	}
	return size, n, ids, nil
}

// ErrFutureTime is matched by the error of an append holding an event
// whose explicit Time is more than Options.MaxClockSkew ahead of the log's
// clock (a *FutureTimeError, which also matches ErrInvalid). Nothing was
// written.
var ErrFutureTime = errors.New("evlog: event time is too far in the future")

// FutureTimeError names the event of a rejected append whose explicit Time
// is too far ahead of the log's clock. It matches ErrFutureTime and
// ErrInvalid.
type FutureTimeError struct {
	Stream  string        // the event's stream
	Index   int           // the event's index in its request's Events
	Time    time.Time     // its explicit time
	Now     time.Time     // the log's clock when the append was checked
	MaxSkew time.Duration // Options.MaxClockSkew
}

func (e *FutureTimeError) Error() string {
	return fmt.Sprintf("%v: event %d of stream %q has time %s, %v ahead of the log's clock (%s), more than MaxClockSkew (%v); nothing was written: fix the event's time or the clock, or leave Time zero to have it stamped",
		ErrFutureTime, e.Index, e.Stream, e.Time.UTC().Format(time.RFC3339Nano), e.Time.Sub(e.Now), e.Now.UTC().Format(time.RFC3339Nano), e.MaxSkew)
}

// Unwrap returns ErrFutureTime.
func (e *FutureTimeError) Unwrap() error { return ErrFutureTime }

// Is makes the error match ErrInvalid too.
func (e *FutureTimeError) Is(target error) bool { return target == ErrInvalid }
