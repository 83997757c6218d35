package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// maxGlobalRetries bounds the attempts of one append that keeps losing the
// race for the end of the log to other writers (each loss means another
// append succeeded, so the log makes progress).
const maxGlobalRetries = 1000

// afterHeadsRead, when set (by tests only, before any append), runs in
// every append attempt right after the read of the heads (and maybe of
// the event at the log's last seq), before the watch is asked again: the
// moment an advisory of a replacement made during those reads arrives.
var afterHeadsRead func()

var (
	minTime = time.Unix(0, -1<<63).UTC()
	maxTime = time.Unix(0, 1<<63-1).UTC()
)

// Append appends events to stream, atomically, if the stream's current
// version satisfies expect, and returns the position of the last event.
// It has the contract of (*evlog.Log).Append, with these differences:
//
//   - At most MaxBatch events per call (ErrBatchTooLarge otherwise), each
//     small enough for one message: an event over the servers'
//     max_payload (1 MB by default), headers included, or whose headers
//     (type, ID and meta, escaped: up to three bytes per byte) exceed
//     64 KiB, is ErrInvalid.
//   - Config.MaxClockSkew and Config.Clock stand for
//     Options.MaxClockSkew and Options.Clock (ErrFutureTime).
//   - An event's ID is its message's Nats-Msg-Id (an event without one
//     gets a random Nats-Msg-Id; its ID stays empty, as on the file log).
//     IDs follow the file log's rules within the stream's duplicate window
//     (Config.Duplicates), not Options.DedupeWindow: an append every event
//     of which carries an ID, all of them held by one earlier append's
//     events (consecutive, in the same streams and order, with the same
//     type, schema version, meta and data; time aside), is a retry: it
//     succeeds without writing and returns their positions, whatever its
//     expectation, whatever was appended since and whatever later times
//     those appends recorded (its explicit times are not checked). An append holding a
//     known ID that is not such a retry, or holding one ID twice, fails
//     with an error matching evlog.ErrDuplicateID and evlog.ErrInvalid (a
//     *evlog.DuplicateIDError where the holder was found) and writes
//     nothing. The log finds the holders by reading: the streams' last
//     events first, else the appended streams' events stored within twice
//     the duplicate window (by the servers' clocks); a retry after the
//     window may be stored again, unless its expectation fails (a
//     conflict). An ID held by an event of a stream the append does not
//     name is found only by the server's refusal, which a failing
//     expectation or time check pre-empts: that append is a conflict or
//     ErrTimeBackwards, not ErrDuplicateID (nothing is written either
//     way).
//   - An append whose answer is lost (a timeout, a lost connection) or
//     cannot be parsed (jetstream.ErrInvalidJSAck,
//     jetstreamext.ErrInvalidBatchAck: the server may have committed it) is
//     retried with the same Nats-Msg-Ids (Config.Retries times); before
//     each resend it looks for its events among those appended to its
//     streams since the first attempt was sent (by the same rules), so it
//     is stored once even when the retry comes after the duplicate window
//     or after other writers appended. ErrUnknownOutcome means even that
//     did not settle it.
//   - An append reaching another stream than the log's (the servers route
//     its subjects elsewhere: an account subject mapping, a
//     misconfiguration) fails with ErrForeignStream, a *ForeignStreamError,
//     and is not retried: every message names the log's stream
//     (Nats-Expected-Stream), which another stream refuses, and an
//     acknowledgement from another stream is never taken for success.
//   - ctx bounds the whole append, retries included. Unlike the file log,
//     an append cut short by ctx after its events were sent cannot know
//     whether they were committed: the error then matches both
//     ErrUnknownOutcome and ctx.Err(). Before anything was sent it is
//     ctx.Err() alone.
//   - Durability is the servers': see README, "When one machine is not
//     enough".
func (l *Log) Append(ctx context.Context, stream string, expect event.Expectation, events ...event.Envelope) (event.Position, error) {
	pos, err := l.AppendBatch(ctx, []evlog.AppendRequest{{Stream: stream, Expect: expect, Events: events}})
	if err != nil {
		return event.Position{}, err
	}
	return pos[0], nil
}

// AppendBatch appends the events of several streams in one atomic batch
// (one JetStream atomic publish), each part with its own expectation: if
// any fails, nothing is written. As on the file log, a stream may appear
// in several requests: each one's expectation is checked against the
// stream's version after the requests before it. Everything Append
// documents applies.
func (l *Log) AppendBatch(ctx context.Context, batch []evlog.AppendRequest) ([]event.Position, error) {
	return l.appendBatch(ctx, batch, nil)
}

// appendBatch is AppendBatch; with freshMsgIDs, event j of request i gets
// the Nats-Msg-Id freshMsgIDs(i, j), its ID kept in its Evlog-Id header
// only: neither the server's duplicate detection nor the log's recognition
// of the caller's retries then relates it to events holding the same ID
// (Copy's way to store an ID the source holds twice). The append's own
// resends carry the same Nats-Msg-Ids, as always.
func (l *Log) appendBatch(ctx context.Context, batch []evlog.AppendRequest, freshMsgIDs func(i, j int) string) ([]event.Position, error) {
	if err := l.closedErr(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	reqs, n, err := l.check(batch, freshMsgIDs)
	if err != nil {
		return nil, err
	}
	a := &appendOp{l: l, reqs: reqs, n: n}
	for _, r := range reqs {
		a.callerIDs = a.callerIDs || r.callerIDs
		for _, e := range r.events {
			a.explicitTimes = a.explicitTimes || !e.Time.IsZero()
		}
	}
	return a.run(ctx)
}

// request is one validated part of a batch: its events are copies whose
// Stream and ID are set.
type request struct {
	stream    string
	expect    event.Expectation
	events    []event.Envelope
	msgIDs    []string // Nats-Msg-Id of each event: its ID, or a random one
	callerIDs bool     // the caller set the ID of an event
	// prev is the index of the batch's previous request for the same
	// stream (-1: none): this one's expectation is checked against the
	// stream's version after it, as the file log does.
	prev int
}

func (l *Log) check(batch []evlog.AppendRequest, freshMsgIDs func(i, j int) string) ([]request, int, error) {
	if len(batch) == 0 {
		return nil, 0, fmt.Errorf("%w: empty batch", evlog.ErrInvalid)
	}
	n := 0
	seen := map[string]int{} // stream -> its last request so far
	ids := map[string]bool{} // the IDs of the events checked so far
	var latest time.Time     // Clock() + MaxClockSkew, read once, when needed
	reqs := make([]request, len(batch))
	for i, req := range batch {
		if !req.Expect.Valid() {
			return nil, 0, fmt.Errorf("%w: invalid expectation %d for stream %q", evlog.ErrInvalid, int64(req.Expect), req.Stream)
		}
		if len(req.Events) == 0 {
			return nil, 0, fmt.Errorf("%w: no events for stream %q", evlog.ErrInvalid, req.Stream)
		}
		prev, ok := seen[req.Stream]
		if !ok {
			prev = -1
		}
		seen[req.Stream] = i
		n += len(req.Events)
		if n > MaxBatch {
			return nil, 0, fmt.Errorf("%w (%w): a JetStream atomic batch holds at most %d events; nothing was written", ErrBatchTooLarge, evlog.ErrInvalid, MaxBatch)
		}
		r := request{stream: req.Stream, expect: req.Expect, prev: prev, events: make([]event.Envelope, len(req.Events)), msgIDs: make([]string, len(req.Events))}
		for j, e := range req.Events {
			if e.Seq != 0 || e.Version != 0 {
				return nil, 0, fmt.Errorf("%w: event %d of stream %q has Seq or Version set; the log assigns them, leave them zero", evlog.ErrInvalid, j, req.Stream)
			}
			if e.Stream != "" && e.Stream != req.Stream {
				return nil, 0, fmt.Errorf("%w: event %d names stream %q inside a request for stream %q", evlog.ErrInvalid, j, e.Stream, req.Stream)
			}
			e.Stream = req.Stream
			if err := e.ValidateFields(); err != nil {
				return nil, 0, err
			}
			if !e.Time.IsZero() && (e.Time.Before(minTime) || e.Time.After(maxTime)) {
				return nil, 0, fmt.Errorf("%w: event %d of stream %q: time %v outside the years 1678-2262", evlog.ErrInvalid, j, req.Stream, e.Time)
			}
			if !e.Time.IsZero() && l.cfg.MaxClockSkew >= 0 {
				if latest.IsZero() {
					latest = l.cfg.Clock().Add(l.cfg.MaxClockSkew)
				}
				if e.Time.After(latest) {
					return nil, 0, &evlog.FutureTimeError{Stream: req.Stream, Index: j, Time: e.Time,
						Now: latest.Add(-l.cfg.MaxClockSkew), MaxSkew: l.cfg.MaxClockSkew}
				}
			}
			if e.SchemaVersion == 0 {
				e.SchemaVersion = event.DefaultSchemaVersion
			}
			size, hdr := l.messageSize(e)
			if hdr > math.MaxUint16 {
				return nil, 0, fmt.Errorf("%w: event %d of stream %q: its headers (type, ID and meta, escaped) are about %d bytes, over the %d a JetStream message carries; nothing was written",
					evlog.ErrInvalid, j, req.Stream, hdr, math.MaxUint16)
			}
			if limit := l.nc.MaxPayload(); limit > 0 && size > limit {
				return nil, 0, fmt.Errorf("%w: event %d of stream %q is about %d bytes as a message, over the servers' max_payload (%d); nothing was written",
					evlog.ErrInvalid, j, req.Stream, size, limit)
			}
			r.callerIDs = r.callerIDs || e.ID != "" && freshMsgIDs == nil
			if e.ID != "" {
				if ids[e.ID] {
					return nil, 0, fmt.Errorf("%w (%w)", &evlog.DuplicateIDError{ID: e.ID, Stream: req.Stream, Index: j,
						Reason: "two events of one append cannot share an ID"}, evlog.ErrInvalid)
				}
				ids[e.ID] = true
			}
			switch {
			case freshMsgIDs != nil:
				r.msgIDs[j] = freshMsgIDs(i, j)
			case e.ID == "":
				r.msgIDs[j] = newID()
			default:
				r.msgIDs[j] = e.ID
			}
			r.events[j] = e // Meta and Data are shared with the caller, read only
		}
		reqs[i] = r
	}
	return reqs, n, nil
}

// headerReserve is what messageSize counts for the headers set after the
// event's own (expected stream and sequences, batch ID, sequence and
// commit: about 300 bytes at most).
const headerReserve = 384

// messageSize returns upper bounds of the size, headers included, of the
// message carrying e (Stream and SchemaVersion set), as the client checks
// it against the servers' max_payload, and of its header block, which the
// server bounds by 64 KiB.
func (l *Log) messageSize(e event.Envelope) (size, header int64) {
	e.Version, e.Time = math.MaxUint64, time.Unix(0, math.MinInt64)
	m := l.encode(&e, e.ID)
	if e.ID == "" {
		m.Header.Set(jetstream.MsgIDHeader, newID())
	}
	n := len("NATS/1.0\r\n\r\n") + headerReserve
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return int64(n + len(m.Data)), int64(n)
}

// appendOp is one append in progress.
type appendOp struct {
	l    *Log
	reqs []request
	n    int
	// callerIDs: the caller set the ID of an event, so the append may be
	// a retry of an earlier call (if it holds only known IDs) or hold an
	// ID already taken (ErrDuplicateID), also before any attempt of this
	// call was sent.
	callerIDs     bool
	explicitTimes bool // an event carries its own Time
	unknown       bool // a previous attempt may have been committed
	// sentAfter holds, per part, the stream's last seq when the first
	// attempt was sent (nil before): a lost attempt's events, if
	// committed, are after it.
	sentAfter []uint64
}

// streamHead is the last event of a stream as the stream leader has it.
//
// For a stream's later request in a batch (request.prev >= 0) it is the
// stream's head as the requests before it leave it: the real head's seq
// and event, with the version those requests reach (repeat set).
type streamHead struct {
	seq, version uint64
	repeat       bool
	msgID        string // its Nats-Msg-Id, unescaped
	rawMsgID     string // its Nats-Msg-Id as stored
	time         time.Time
	event        event.Envelope // the event itself (Data included)
}

func (a *appendOp) run(ctx context.Context) ([]event.Position, error) {
	l := a.l
	lost := 0 // retries after a failure that may be transient
	// retry decides whether to try again after err, which left the
	// outcome open (sent) or was met before sending: timeouts, lost
	// connections and missing responders (a leader election) are retried,
	// Config.Retries times, with a growing pause; anything else ends the
	// append.
	retry := func(err error, sent bool) error {
		if sent {
			a.unknown = true
		}
		if !isUnknown(err) || ctx.Err() != nil {
			return a.failed(err)
		}
		if lost++; lost > l.cfg.Retries {
			if a.unknown {
				return fmt.Errorf("%w: %d attempts: %w", ErrUnknownOutcome, lost, err)
			}
			return fmt.Errorf("evlog/jetstream: append to %s: %d attempts: %w", l.streamName, lost, err)
		}
		l.logger.Warn("evlog/jetstream: append failed, retrying with the same event IDs", "stream", l.streamName, "attempt", lost, "sent", sent, "err", err)
		pause := min(100*time.Millisecond<<(lost-1), 2*time.Second)
		select {
		case <-ctx.Done():
			return a.failed(ctx.Err())
		case <-time.After(pause):
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		if attempt >= maxGlobalRetries {
			return nil, fmt.Errorf("evlog/jetstream: append lost the race for the end of the log %d times; retry later", attempt)
		}
		if err := ctx.Err(); err != nil {
			if a.unknown {
				return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
			}
			return nil, err
		}
		l.mu.Lock()
		endSeq, endID, endStream := l.lastSeq, l.lastID, l.lastStream
		l.mu.Unlock()
		need, token, trusted := l.watch.suspect()
		heads, end, err := a.headsAndEnd(ctx, need, endSeq, endID, endStream)
		if afterHeadsRead != nil {
			afterHeadsRead()
		}
		if err != nil {
			if rerr := retry(err, false); rerr != nil {
				return nil, rerr
			}
			continue
		}
		// After a lost attempt, look for it before sending again (also
		// when the expectations hold, as ExpectAny's always do): the
		// server recognises a resent Nats-Msg-Id only within the
		// duplicate window, and the retry may come later.
		if a.unknown {
			pos, dup, err := a.recogniseSince(ctx, heads, false)
			if err != nil {
				if rerr := retry(err, false); rerr != nil {
					return nil, rerr
				}
				continue
			}
			if pos != nil {
				return pos, nil
			}
			if dup != nil {
				return nil, a.failed(dup)
			}
		}
		l.mu.Lock()
		lastSeq, lastTime, lastID := l.lastSeq, l.lastTime, l.lastID
		l.mu.Unlock()
		// The append is pinned to lastSeq (build): check that the event
		// there is still the one this Log saw, or a stream replaced by
		// one ending at the same seq would take it (when the watch is
		// suspect; a head ending there is compared always). The read
		// made with the heads is of no use if the Log learnt of a later
		// end meanwhile (its own append, a refresh), and neither is a
		// head if the watch moved during the heads' reads (an advisory
		// came, perhaps of a replacement made after them): checkEnd
		// reads again.
		need, token2, trusted2 := l.watch.suspect()
		moved := token2 != token || trusted2 != trusted
		if moved || lastSeq != endSeq || lastID != endID {
			end = nil
		}
		evidence := heads
		if moved {
			evidence = nil
		}
		if err := a.checkEnd(ctx, evidence, end, need, lastSeq, lastID); err != nil {
			if rerr := retry(err, false); rerr != nil {
				return nil, rerr
			}
			continue
		}
		if need {
			l.watch.verified(token2, trusted2)
		}
		// Expectations and times are checked locally, part by part as the
		// file log checks them: a conflict needs no round trip.
		msgs, err := a.build(heads, lastSeq, lastTime)
		if errors.Is(err, evlog.ErrVersionConflict) && a.explicitTimes {
			// The times of the requests before the conflicting one were
			// checked against what this Log knows of the log's end,
			// which other writers may have moved: check them against
			// the leader's, so the error is the file log's.
			if rerr := l.refresh(ctx); rerr != nil {
				if rerr := retry(rerr, false); rerr != nil {
					return nil, rerr
				}
				continue
			}
			l.mu.Lock()
			lastSeq, lastTime = l.lastSeq, l.lastTime
			l.mu.Unlock()
			msgs, err = a.build(heads, lastSeq, lastTime)
		}
		if (errors.Is(err, evlog.ErrVersionConflict) || errors.Is(err, evlog.ErrTimeBackwards)) && a.callerIDs && !a.unknown {
			// As on the file log, the IDs are checked first: the append
			// may be the caller's retry of one already in the log (whose
			// expectations and explicit times later appends passed), or
			// hold an ID already taken.
			pos, dup, rerr := a.recogniseSince(ctx, heads, false)
			switch {
			case rerr != nil:
				if rerr := retry(rerr, false); rerr != nil {
					return nil, rerr
				}
				continue
			case pos != nil:
				return pos, nil
			case dup != nil:
				return nil, dup
			}
		}
		if err != nil {
			return nil, err
		}
		if a.sentAfter == nil {
			a.sentAfter = make([]uint64, len(a.reqs))
			for i := range a.reqs {
				a.sentAfter[i] = heads[i].seq
			}
		}
		last, dup, err := a.publish(ctx, msgs)
		switch code := apiCode(err); {
		case err == nil && !dup:
			return a.done(last, msgs)
		case err == nil && dup, code == codeBatchDuplicateID, code == codeDuplicateConflict:
			// A message ID seen before: ours from a lost attempt or the
			// caller's earlier call, or reused for another event.
			var (
				pos    []event.Position
				dupErr error
				rerr   error
			)
			if err == nil && len(msgs) == 1 {
				// The server named the holder's seq: look there.
				pos, dupErr, rerr = a.verify(ctx, last, last, 0, 0, last)
			} else {
				var heads []streamHead
				if heads, rerr = a.heads(ctx); rerr == nil {
					pos, dupErr, rerr = a.recogniseSince(ctx, heads, true)
				}
			}
			switch {
			case rerr != nil:
				if rerr := retry(rerr, false); rerr != nil {
					return nil, rerr
				}
				continue
			case pos != nil:
				return pos, nil
			case dupErr != nil:
				return nil, a.failed(dupErr)
			case code == codeDuplicateConflict:
				// The holder is still being stored (perhaps our lost
				// attempt): look again.
				if rerr := retry(err, false); rerr != nil {
					return nil, rerr
				}
				continue
			}
			return nil, a.failed(fmt.Errorf("%w (%w): an event ID of this append is held by another event within the log's duplicate window (%v); nothing was written: a retry must re-send the original append unchanged (same streams, events, order and content); new events need new IDs",
				evlog.ErrDuplicateID, evlog.ErrInvalid, max(l.cfg.Duplicates, l.duplicates)))
		case code == codeWrongLastSeq || code == codeWrongLastSeqConstant:
			// Another writer appended first (to the log or to one of our
			// streams): re-read and decide again.
			if err := l.refresh(ctx); err != nil {
				if rerr := retry(err, false); rerr != nil {
					return nil, rerr
				}
			}
			continue
		case isUnknown(err):
			if rerr := retry(err, true); rerr != nil {
				return nil, rerr
			}
			continue
		case code == codeStreamNotMatch:
			// Another stream got the append and refused it: retrying
			// would go the same way.
			return nil, a.failed(fmt.Errorf("%w (%w)", &ForeignStreamError{Stream: l.streamName}, err))
		case errors.Is(err, ErrForeignStream):
			return nil, a.failed(err)
		case code == codeBatchTooLarge:
			return nil, a.failed(fmt.Errorf("%w: the server refused %d events in one batch (%w)", ErrBatchTooLarge, a.n, err))
		case code != 0:
			// This attempt was refused, but a lost earlier one may yet
			// be committed.
			return nil, a.failed(fmt.Errorf("evlog/jetstream: append to %s: %w", l.streamName, err))
		case ctx.Err() != nil:
			// The caller gave up while the append was (maybe) on its way.
			return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
		default:
			return nil, a.failed(err)
		}
	}
}

// failed wraps an error that ends the append: after a lost attempt the
// outcome is unknown.
func (a *appendOp) failed(err error) error {
	if a.unknown {
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	return err
}

// isUnknown reports whether err leaves the outcome of a sent append open,
// or is a transient refusal worth retrying: a timeout, a lost connection,
// no responders, an answer that cannot be parsed (jetstream.ErrInvalidJSAck,
// jetstreamext.ErrInvalidBatchAck: the server may have committed the
// append all the same), a 503 from JetStream (no leader or quorum for now,
// as during an election), or a duplicate Nats-Msg-Id whose holder is still
// being stored.
func isUnknown(err error) bool {
	if api := apiError(err); api != nil && (api.Code == 503 || api.ErrorCode == codeUnavailable || api.ErrorCode == codeDuplicateConflict) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrInvalidJSAck) || errors.Is(err, jetstreamext.ErrInvalidBatchAck) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting)
}

// head returns the last event of stream (zero if none) from the leader.
func (l *Log) head(ctx context.Context, stream string) (streamHead, error) {
	m, found, err := l.getMsg(ctx, 0, l.subject(stream))
	if err != nil || !found {
		return streamHead{}, err
	}
	e, err := l.decode(m.Subject, m.Seq, m.hdr, m.Data)
	if err != nil {
		return streamHead{}, err
	}
	msgID, err := unescape(m.hdr.Get(jetstream.MsgIDHeader))
	if err != nil {
		return streamHead{}, fmt.Errorf("evlog/jetstream: message %d of %s: Nats-Msg-Id: %w", m.Seq, l.streamName, err)
	}
	return streamHead{seq: e.Seq, version: e.Version, msgID: msgID, rawMsgID: m.hdr.Get(jetstream.MsgIDHeader), time: e.Time, event: e}, nil
}

// heads returns the head of each request's stream (see streamHead).
func (a *appendOp) heads(ctx context.Context) ([]streamHead, error) {
	out := make([]streamHead, len(a.reqs))
	for i, r := range a.reqs {
		if r.prev >= 0 {
			h := out[r.prev]
			h.version += uint64(len(a.reqs[r.prev].events))
			h.repeat = true
			out[i] = h
			continue
		}
		h, err := a.l.head(ctx, r.stream)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// recogniseSince is recognise searching where the append may be: after
// a lost attempt, among the events since it was sent; when the caller set
// IDs or the server reported a duplicate (dup), also among those stored
// within the duplicate window (the caller's earlier call).
func (a *appendOp) recogniseSince(ctx context.Context, heads []streamHead, dup bool) ([]event.Position, error, error) {
	if !a.unknown && !a.callerIDs {
		return nil, nil, nil // the IDs identify nothing: no need to look
	}
	from := uint64(0)
	if a.unknown {
		from = a.sentAfter[0] + 1
	}
	if dup || a.callerIDs {
		ws, err := a.l.windowStart(ctx)
		if err != nil {
			return nil, nil, err
		}
		if from == 0 || ws < from {
			from = ws
		}
	}
	return a.recognise(ctx, heads, from)
}

// recognise reports whether this append is already in the log (a lost
// attempt of it, or the caller's earlier call with the same IDs), and if
// so returns the positions its events got. It is consulted only when the
// IDs identify something: after a lost attempt, or when the caller set
// IDs (an event without one gets a fresh Nats-Msg-Id per call, so the
// caller's retry of an append holding one can never match, but an ID it
// holds may be taken: dup). An append is in the log when all its events
// are, as one atomic batch stores them: at consecutive seqs, in its
// streams and order, with the same Nats-Msg-Ids and content (type, schema
// version, meta, data; time aside). It finds them from a part whose
// stream ends with that part's last event or, when from is not 0, from
// the first event with seq in [from, its head] of a part's stream that
// holds one of the part's Nats-Msg-Ids, and checks every event.
//
// dup is set when an event holding one of the append's IDs was found but
// the append is not in the log (only some of its events are, or they
// differ): the append is no retry and must not be sent (the server would
// refuse it as a duplicate within its window, and store it twice after).
func (a *appendOp) recognise(ctx context.Context, heads []streamHead, from uint64) (pos []event.Position, dup error, err error) {
	if !a.unknown && !a.callerIDs {
		return nil, nil, nil
	}
	to := uint64(0) // no event of the append is after the newest head
	for _, h := range heads {
		to = max(to, h.seq)
	}
	end := 0 // flat index after part i
	for i, r := range a.reqs {
		end += len(r.events)
		last := len(r.events) - 1
		h := heads[i]
		if h.seq == 0 || h.msgID != r.msgIDs[last] || h.seq < uint64(end) {
			continue
		}
		return a.verify(ctx, h.seq-uint64(end-1), to, i, last, h.seq)
	}
	if from == 0 {
		return nil, nil, nil
	}
	first := 0 // flat index of part i's first event
	for i, r := range a.reqs {
		if heads[i].seq >= from {
			ids := make(map[string]int, len(r.msgIDs))
			for j, id := range r.msgIDs {
				ids[id] = j
			}
			seq, j, found, err := a.l.findID(ctx, r.stream, from, heads[i].seq, ids)
			if err != nil {
				return nil, nil, err
			}
			if found {
				if k := uint64(first + j); seq > k {
					return a.verify(ctx, seq-k, to, i, j, seq)
				}
				pos, dup := a.notRetry(i, j, seq, "the append's earlier events cannot be before it")
				return pos, dup, nil
			}
		}
		first += len(r.events)
	}
	return nil, nil, nil
}

// notRetry is the error of an append holding an ID of the log's event at
// seq (its event j of part i) which is not a retry, for reason.
func (a *appendOp) notRetry(i, j int, seq uint64, reason string) ([]event.Position, error) {
	r := a.reqs[i]
	d := &evlog.DuplicateIDError{ID: r.events[j].ID, Stream: r.stream, Index: j, OrigSeq: seq, OrigStream: r.stream, Reason: reason}
	if d.ID == "" {
		d.ID = r.msgIDs[j] // a lost attempt's own Nats-Msg-Id
	}
	return nil, fmt.Errorf("%w (%w)", d, evlog.ErrInvalid)
}

// verify reports whether the append is stored at seqs [start,
// start+a.n-1] (reading no further than to), event j of part i (its
// anchor) having been found at seq anchor. If not, dup names the anchor
// and what differs.
func (a *appendOp) verify(ctx context.Context, start, to uint64, i, j int, anchor uint64) (pos []event.Position, dup error, err error) {
	l := a.l
	notRetry := func(reason string) ([]event.Position, error, error) {
		pos, dup := a.notRetry(i, j, anchor, reason)
		return pos, dup, nil
	}
	pos = make([]event.Position, len(a.reqs))
	part, k := 0, 0 // the next event to match: event k of part part
	var (
		reason string
		herr   error
	)
	err = l.read(ctx, start, min(start+uint64(a.n)-1, to), "", func(e event.Envelope, h nats.Header) bool {
		r := a.reqs[part]
		id, err := unescape(h.Get(jetstream.MsgIDHeader))
		if err != nil {
			herr = fmt.Errorf("evlog/jetstream: message %d of %s: Nats-Msg-Id: %w", e.Seq, l.streamName, err)
			return false
		}
		if id != r.msgIDs[k] || e.Stream != r.stream {
			reason = fmt.Sprintf("seq %d (stream %q) holds another event where the append's event %d of stream %q would be: only part of the append's events are in the log, or not in its order", e.Seq, e.Stream, k, r.stream)
			return false
		}
		if reason = differs(e, r.events[k]); reason != "" {
			reason = fmt.Sprintf("event %d of stream %q, at seq %d: %s", k, r.stream, e.Seq, reason)
			return false
		}
		if k++; k == len(r.events) {
			pos[part] = event.Position{Seq: e.Seq, Version: e.Version, Time: e.Time}
			part, k = part+1, 0
		}
		return part < len(a.reqs)
	})
	if herr != nil {
		return nil, nil, herr
	}
	if err != nil && err != errStop {
		return nil, nil, err
	}
	if reason != "" {
		return notRetry(reason)
	}
	if part < len(a.reqs) {
		return notRetry("only part of the append's events are in the log")
	}
	return pos, nil, nil
}

// findID returns the first event of stream with seq in [from, to] whose
// Nats-Msg-Id is in ids, and that ID's value in ids.
func (l *Log) findID(ctx context.Context, stream string, from, to uint64, ids map[string]int) (seq uint64, j int, found bool, err error) {
	var herr error
	err = l.read(ctx, from, to, l.subject(stream), func(e event.Envelope, h nats.Header) bool {
		id, err := unescape(h.Get(jetstream.MsgIDHeader))
		if err != nil {
			herr = fmt.Errorf("evlog/jetstream: message %d of %s: Nats-Msg-Id: %w", e.Seq, l.streamName, err)
			return false
		}
		if j, found = ids[id]; found {
			seq = e.Seq
			return false
		}
		return true
	})
	if herr != nil {
		return 0, 0, false, herr
	}
	if err != nil && err != errStop {
		return 0, 0, false, err
	}
	return seq, j, found, nil
}

// windowStart returns a seq at or below the first event the server may
// still hold in its duplicate tracking: the first event stored (by the
// servers' clocks) less than twice the duplicate window before the log's
// last event (the margin covers a new leader's clock running behind); 1
// if the servers cannot tell.
func (l *Log) windowStart(ctx context.Context) (uint64, error) {
	m, found, err := l.getMsg(ctx, 0, l.prefix+">")
	if err != nil || !found {
		return 1, err
	}
	window := max(l.cfg.Duplicates, l.duplicates)
	since := m.Time.Add(-2 * window)
	rctx, cancel := l.bound(ctx)
	defer cancel()
	msgs, err := jetstreamext.GetBatch(rctx, l.js, l.streamName, 1, jetstreamext.GetBatchStartTime(since))
	if err != nil {
		return 0, fmt.Errorf("evlog/jetstream: finding the start of %s's duplicate window: %w", l.streamName, err)
	}
	for m, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("evlog/jetstream: finding the start of %s's duplicate window: %w", l.streamName, err)
		}
		return m.Sequence, nil
	}
	return 1, nil // a replica that has not caught up: search everything
}

// differs says how the stored event differs from ev, the event an append
// carries ("": the same event). Time is not compared: a retry re-sends an
// explicit time or a zero one, which the first attempt stamped.
func differs(stored, ev event.Envelope) string {
	switch {
	case stored.Stream != ev.Stream:
		return fmt.Sprintf("the original is in stream %q", stored.Stream)
	case stored.ID != ev.ID:
		return fmt.Sprintf("the original has ID %q", stored.ID)
	case stored.Type != ev.Type:
		return fmt.Sprintf("the original has type %q, not %q", stored.Type, ev.Type)
	case stored.SchemaVersion != ev.SchemaVersion:
		return fmt.Sprintf("the original has schema version %d, not %d", stored.SchemaVersion, ev.SchemaVersion)
	case !maps.Equal(stored.Meta, ev.Meta):
		return "the original has other meta"
	case !bytes.Equal(stored.Data, ev.Data):
		return "the original has other data"
	}
	return ""
}

// endRead is the answer to the read of the message at the log's last seq
// that headsAndEnd makes beside the heads' reads.
type endRead struct {
	m     *rawMsg
	found bool
}

// headsAndEnd returns the heads (see heads) and, when checkEnd will need
// it, the log's message at seq (end; nil when not read), read
// concurrently with the heads, so that both cost one round trip of
// latency, not two in series. It is needed when the watch is suspect
// (need) and seq and id name an event the Log saw (seq not 0, id not "")
// whose stream (stream, as far as the Log knows) is not one of the
// append's: otherwise a head ends at seq and checkEnd needs no request.
// The first read to fail cancels the others; its error is returned.
// Nothing outlives the call.
func (a *appendOp) headsAndEnd(ctx context.Context, need bool, seq uint64, id, stream string) ([]streamHead, *endRead, error) {
	if !need || seq == 0 || id == "" || slices.ContainsFunc(a.reqs, func(r request) bool { return r.stream == stream }) {
		heads, err := a.heads(ctx)
		return heads, nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type result struct {
		end endRead
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, found, err := a.l.getMsg(ctx, seq, "")
		if err != nil {
			cancel(err)
		}
		done <- result{endRead{m, found}, err}
	}()
	heads, err := a.heads(ctx)
	if err != nil {
		cancel(err)
	}
	r := <-done
	switch {
	case r.err != nil && (err == nil || context.Cause(ctx) == r.err):
		return nil, nil, r.err // the end's read failed first
	case err != nil:
		return nil, nil, err
	}
	return heads, &r.end, nil
}

// checkEnd returns nil if the log's event at lastSeq is the one this Log
// saw there (Nats-Msg-Id lastID; "": nothing to check), read from a head
// at that seq if there is one, else, if read (the watch is suspect), from
// end (the message at lastSeq as headsAndEnd read it), else from the
// stream leader (one request: the Log learnt of a later end meanwhile, or
// of the event's stream wrongly, or the watch turned suspect). Without a
// head there and read false, it returns nil: the watch saw no sign of a
// replacement (see watch). heads must have been read after the watch last
// moved. Otherwise the stream was replaced (deletes and purges are
// denied, so the event cannot have gone or changed in the stream this Log
// saw), and it returns what refresh finds: a *StreamReplacedError.
//
// The append's expectation on the log's last seq (build) catches a
// replacement ending elsewhere; this catches one ending at lastSeq, up to
// the moment of the read: a replacement between it and the commit is not
// seen. The server could check it atomically for a single message
// (Nats-Expected-Last-Msg-Id; JetStream refuses it in an atomic batch),
// but it checks that header as each replica applies the message, against
// a last message ID a replica caught up from a peer does not update
// (nats-server v2.15.2, processCatchupMsg), so on a replicated stream one
// replica could refuse what the others store: not used.
func (a *appendOp) checkEnd(ctx context.Context, heads []streamHead, end *endRead, read bool, lastSeq uint64, lastID string) error {
	if lastSeq == 0 || lastID == "" {
		return nil
	}
	for _, h := range heads {
		if h.seq == lastSeq {
			if h.rawMsgID == lastID {
				return nil
			}
			return a.l.refresh(ctx)
		}
	}
	if !read {
		return nil
	}
	if end == nil {
		m, found, err := a.l.getMsg(ctx, lastSeq, "")
		if err != nil {
			return err
		}
		end = &endRead{m, found}
	}
	if end.found && end.m.hdr.Get(jetstream.MsgIDHeader) == lastID {
		return nil
	}
	return a.l.refresh(ctx)
}

// build checks each part's expectation against heads and its events'
// explicit times against the log's last time (part by part, in the order
// the file log checks them: a *event.ConflictError or ErrTimeBackwards),
// assigns versions and times and encodes the messages, with the
// expectations that make the commit conditional: the log's last seq (so
// that recorded times never decrease) on the first message, and each
// stream's last seq on its first message. That the event at lastSeq is
// the one this Log saw there is checked before (checkEnd), not by the
// server: see checkEnd.
func (a *appendOp) build(heads []streamHead, lastSeq uint64, lastTime time.Time) ([]*nats.Msg, error) {
	now := a.l.cfg.Clock()
	at := lastTime
	msgs := make([]*nats.Msg, 0, a.n)
	for i, r := range a.reqs {
		if !r.expect.Check(heads[i].version) {
			return nil, &event.ConflictError{Stream: r.stream, Expected: r.expect, Actual: heads[i].version}
		}
		for j := range r.events {
			e := r.events[j] // a copy
			e.Version = heads[i].version + uint64(j) + 1
			switch {
			case e.Time.IsZero():
				if now.After(at) {
					at = now
				}
				e.Time = at
			case e.Time.Before(at):
				return nil, fmt.Errorf("%w: event %d of stream %q is at %v, the log's last recorded time is %v",
					evlog.ErrTimeBackwards, j, r.stream, e.Time.UTC(), at.UTC())
			default:
				at = e.Time
			}
			m := a.l.encode(&e, r.msgIDs[j])
			m.Header.Set(jetstream.ExpectedStreamHeader, a.l.streamName)
			if len(msgs) == 0 {
				m.Header.Set(jetstream.ExpectedLastSeqHeader, fmt.Sprint(lastSeq))
			}
			if j == 0 && !heads[i].repeat {
				// (A later request for the stream is pinned by its
				// first request's expectation.)
				m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(heads[i].seq))
			}
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// publish sends the messages: one as a plain publish, more as an atomic
// batch. It returns the seq of the last one, and whether the server
// reported a duplicate. Every message names the log's stream
// (Nats-Expected-Stream, set by build), so a stream the servers route the
// log's subjects to instead refuses it; an acknowledgement from another
// stream all the same (a server ignoring the header) is a
// *ForeignStreamError, never success.
func (a *appendOp) publish(ctx context.Context, msgs []*nats.Msg) (last uint64, dup bool, err error) {
	ctx, cancel := a.l.bound(ctx)
	defer cancel()
	if len(msgs) == 1 {
		ack, err := a.l.js.PublishMsg(ctx, msgs[0], jetstream.WithRetryAttempts(0))
		if err != nil {
			return 0, false, err
		}
		if ack.Stream != a.l.streamName {
			return 0, false, &ForeignStreamError{Stream: a.l.streamName, Other: ack.Stream, Seq: ack.Sequence, Stored: true}
		}
		return ack.Sequence, ack.Duplicate, nil
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, a.l.js, msgs)
	if err != nil {
		return 0, false, err
	}
	if ack.Stream != a.l.streamName {
		return 0, false, &ForeignStreamError{Stream: a.l.streamName, Other: ack.Stream, Seq: ack.Sequence, Stored: true}
	}
	return ack.Sequence, false, nil
}

// done turns a committed append into positions and advances what the Log
// knows of the end of the log.
func (a *appendOp) done(last uint64, msgs []*nats.Msg) ([]event.Position, error) {
	first := last - uint64(len(msgs)) + 1
	pos := make([]event.Position, len(a.reqs))
	k := 0
	var t time.Time
	for i, r := range a.reqs {
		k += len(r.events)
		m := msgs[k-1]
		e, err := a.l.decode(m.Subject, first+uint64(k-1), m.Header, nil)
		if err != nil {
			return nil, err
		}
		pos[i] = event.Position{Seq: e.Seq, Version: e.Version, Time: e.Time}
		t = e.Time
		a.l.learn(r.stream, e.Version, e.Seq)
	}
	l := a.l
	l.mu.Lock()
	if last > l.lastSeq {
		l.lastSeq, l.lastTime, l.lastID = last, t, msgs[len(msgs)-1].Header.Get(jetstream.MsgIDHeader)
		l.lastStream = a.reqs[len(a.reqs)-1].stream
	}
	l.mu.Unlock()
	return pos, nil
}
